"""RedisPlacement against a real redis-server, several placements in one process."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from sfu.peer import MediaSettings
from sfu.room import RoomSettings
from sfu.room_manager import RoomManager
from signaling.config import ClusterConfig, Secret
from signaling.placement import NodeIdentity, PlacementState
from signaling.redis_placement import RedisPlacement
from tests.functional.cluster_helpers import needs_redis
from tests.helpers.redis_server import RedisProcess

pytestmark = needs_redis


@pytest.fixture
async def redis() -> AsyncIterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    yield server
    server.close()


def make_node(redis: RedisProcess, node_id: str, **cluster: object) -> RedisPlacement:
    config = dataclasses.replace(
        ClusterConfig(
            redis_url=Secret(redis.url),
            secret=Secret("s"),
            heartbeat_interval=0.2,
            node_ttl=1.0,
            room_lease=5.0,
        ),
        **cluster,
    )
    rooms = RoomManager(RoomSettings(), MediaSettings())
    return RedisPlacement(
        NodeIdentity(node_id, f"ws://{node_id}/ws", ("127.0.0.1",), 100), rooms, config
    )


async def test_fifty_simultaneous_placements_agree_on_one_node(redis: RedisProcess) -> None:
    nodes = [make_node(redis, n) for n in ("a", "b", "c")]
    await asyncio.gather(*(n.start() for n in nodes))
    try:
        for round_ in range(5):
            room = f"room-{round_}"
            results = await asyncio.gather(*(nodes[i % 3].place(room) for i in range(50)))
            assert len({r.node_id for r in results}) == 1, results
            owner = results[0].node_id
            # the owner's placements are local, everyone else's redirect to its URL
            assert all(r.local == (i % 3 == "abc".index(owner)) for i, r in enumerate(results))
            assert {r.url for r in results if not r.local} <= {f"ws://{owner}/ws"}
        # the rooms were spread: a burst bumps the chosen node's room count at once
        owners = {(await nodes[0].place(f"room-{i}")).node_id for i in range(5)}
        assert len(owners) == 3
    finally:
        await asyncio.gather(*(n.close() for n in nodes))


async def test_a_gone_node_is_replaced_and_a_draining_one_never_chosen(
    redis: RedisProcess,
) -> None:
    a, b = make_node(redis, "a"), make_node(redis, "b")
    await asyncio.gather(a.start(), b.start())
    gone: list[str] = []

    async def node_gone(node_id: str) -> None:
        gone.append(node_id)

    b._on_node_gone = node_gone
    c = make_node(redis, "c")
    try:
        await a.drain()
        assert a.state is PlacementState.DRAINING
        for i in range(4):
            assert (await a.place(f"r{i}")).node_id == "b"
        # b dies without a word (its key expires); a was drained: nobody can take rooms
        await b._redis.delete(b._node_key("b"))
        b_task = b._task
        assert b_task is not None
        b_task.cancel()
        await c.start()
        c._on_node_gone = node_gone
        placed = await c.place("r0")
        assert placed.node_id == "c" and placed.local and gone == ["b"]
    finally:
        await asyncio.gather(a.close(), b.close(), c.close())


async def test_redis_outage_and_a_room_taken_meanwhile(redis: RedisProcess) -> None:
    a, b = make_node(redis, "a"), make_node(redis, "b")
    await asyncio.gather(a.start(), b.start())
    conflicts: list[str] = []
    a.on_conflict = conflicts.append
    try:
        assert await a._place_on("ward", "a") == ("a", "")  # a hosts it, whatever the load
        a._hosted.add("ward")
        a._rooms.get_or_create("ward")
        redis.stop()
        await asyncio.sleep(0.5)
        assert a.redis_connected is False and a.state is PlacementState.DEGRADED
        assert (await a.place("ward")).local  # hosted here: no Redis needed
        with pytest.raises(Exception, match="Redis is unreachable"):
            await a.place("new-room")
        # from here a's heartbeats are driven by hand: its own loop, reconnecting as soon as
        # Redis is back, raced b for the room (and won 4 times in 5 on a busy machine)
        a_task = a._task
        assert a_task is not None
        a_task.cancel()
        redis.start()  # empty
        await b._heartbeat_once()
        assert (await b.place("ward")).node_id == "b"  # b got there first
        await b._heartbeat_once()
        await a._heartbeat_once()
        assert a.state is PlacementState.ACTIVE and a.redis_connected
        assert conflicts == ["ward"]  # a sends its participants over to b
    finally:
        await a._rooms.close()
        await asyncio.gather(a.close(), b.close())


async def test_a_node_at_its_max_rooms_gets_no_new_room(redis: RedisProcess) -> None:
    """Before, a full node could be chosen: the join got too_many_rooms and the room
    stayed registered to it until its lease ran out. Now another node takes it."""
    a, b = make_node(redis, "a"), make_node(redis, "b")
    a._rooms.max_rooms = 1
    a._rooms.get_or_create("r0")  # a is full; b is busier, so a looks the better choice
    for i in range(3):
        b._rooms.get_or_create(f"busy{i}")
    await asyncio.gather(a.start(), b.start())
    try:
        for i in range(1, 4):
            placed = await a.place(f"r{i}")
            assert placed.node_id == "b" and not placed.local, placed
        (a_info,) = [n for n in await b.nodes() if n.id == "a"]
        assert a_info.max_rooms == 1 and a_info.room_full
        # b asked for a new room: it does not send it to the full a either
        assert (await b.place("r9")).node_id == "b"
        assert {r.room: r.node for r in await b.rooms()}.get("r1") == "b"
    finally:
        await asyncio.gather(a._rooms.close(), b._rooms.close())
        await asyncio.gather(a.close(), b.close())
