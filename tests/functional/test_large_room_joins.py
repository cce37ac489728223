"""A large room hears of arrivals and departures in batches (sfu/announcements.py).

Real server, real WebSocket clients; rooms.announce_batch_from is lowered
so that a handful of clients make a "large" room.
"""

from __future__ import annotations

import asyncio

from sfu.participant import Role
from tests.conftest import RunningServer


async def test_a_join_storm_is_announced_in_a_few_messages(server_factory: object) -> None:
    server: RunningServer = await server_factory(rooms={"announce_batch_from": 3})  # type: ignore[operator]
    clients = [
        server.client(server.token("lecture", f"s{i}", Role.OBSERVER, name=f"student{i}"))
        for i in range(8)
    ]
    try:
        for client in clients[:2]:  # a small room: one message per arrival, as before
            await client.connect()
            await client.join()
        await clients[0].wait_event("participant_joined")
        storm = clients[2:]
        await asyncio.gather(*(c.connect() for c in storm))
        await asyncio.gather(*(c.join() for c in storm))
        first = clients[0]
        # the first client learns of all six newcomers, told in batches, not one by one
        newcomers = {f"student{i}" for i in range(2, 8)}

        def names() -> set[str]:
            return {
                e["participant"]["name"]
                for e in first.events
                if e.get("type") == "participant_joined"
            }

        await first.wait_until(lambda: newcomers <= names(), timeout=5)
        batches = [e for e in first.events if e.get("type") == "participants_changed"]
        assert 1 <= len(batches) < len(storm)
        # a departure in a large room comes in a batch too, and is applied after arrivals
        await clients[7].leave()
        await first.wait_event(
            "participant_left", where=lambda e: e.get("participant_id") is not None, timeout=5
        )
        assert len([e for e in first.events if e.get("type") == "participants_changed"]) > len(
            batches
        )
    finally:
        await asyncio.gather(*(c.leave() for c in clients[:7]), return_exceptions=True)
