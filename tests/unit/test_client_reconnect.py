"""Unit tests for signaling/client_reconnect.py: ConsultClient's reconnection.

``Host`` stands in for the client (signaling/client.py implements
``ReconnectHost``): it records what the reconnection asked of it, and each
join answers from a script.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from signaling.client_errors import ClientError, Event
from signaling.client_reconnect import Reconnection, ReconnectPolicy, Tracks

QUICK = ReconnectPolicy(
    enabled=True, entry_url="ws://a/ws", fallback_urls=("ws://b/ws",), delay=0.001, max_delay=0.002
)


class Host:
    def __init__(self, joins: list[str | Exception]) -> None:
        self.state = "active"
        self.url = ""
        self.calls: list[str] = []
        self.woken: list[Event | None] = []
        self.republished: list[Tracks] = []
        self.done = asyncio.Event()  # reconnected, or given up
        self._joins = joins

    async def reopen(self, url: str) -> None:
        self.url = url
        self.calls.append(f"open {url}")

    async def drop_connection(self) -> None:
        self.calls.append("drop")

    async def join(self) -> Event:
        self.calls.append("join")
        outcome = self._joins.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        self.state = outcome
        return {"type": "joined", "state": outcome}

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        self.state = "active"  # admitted at once
        assert predicate()

    async def publish(self, tracks: Tracks, video_codec: str | None = None) -> dict[str, str]:
        self.republished.append(list(tracks))
        return {}

    def wake(self, event: Event | None = None) -> None:
        self.woken.append(event)
        if self.state == "closed" or (event or {}).get("type") == "reconnected":
            self.done.set()


def reconnection(host: Host, policy: ReconnectPolicy = QUICK) -> Reconnection:
    made = Reconnection(host, policy)
    made.joined()
    return made


async def finished(host: Host) -> None:
    await asyncio.wait_for(host.done.wait(), 5)


def test_policy_entries_take_turns_and_delays_double_up_to_the_cap() -> None:
    assert [QUICK.entry(n) for n in (1, 2, 3)] == ["ws://a/ws", "ws://b/ws", "ws://a/ws"]
    assert ReconnectPolicy(entry_url="ws://a/ws").entry(7) == "ws://a/ws"
    policy = ReconnectPolicy(delay=0.25, max_delay=2.0)
    delays = [policy.delay]
    for _ in range(5):
        delays.append(policy.next_delay(delays[-1]))
    assert delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


async def test_armed_once_joined_and_enabled_until_leaving() -> None:
    host = Host([])
    made = Reconnection(host, QUICK)
    armed = [made.armed]  # never joined: a lost connection just closes
    made.joined()
    armed.append(made.armed)
    made.leaving()
    armed.append(made.armed)
    assert armed == [False, True, False]
    assert not reconnection(host, ReconnectPolicy(entry_url="ws://a/ws")).armed  # not enabled


async def test_reconnects_to_the_suggested_node_and_republishes() -> None:
    host = Host(["active"])
    made = reconnection(host)
    tracks: Any = [("camera-track", "camera")]
    made.published(tracks)
    made.suggest("ws://c/ws")
    made.start("disconnected")
    assert host.state == "reconnecting"
    made.start("connection_failed")  # one at a time: this one is not started
    await finished(host)
    assert host.calls == ["drop", "open ws://c/ws", "join"]
    assert host.republished == [tracks] and made.reconnections == 1
    assert host.woken[-1] == {"type": "reconnected", "attempts": 1, "url": "ws://c/ws"}
    await made.close()


async def test_failed_attempts_go_round_the_entries_then_the_lobby_is_waited() -> None:
    host = Host([ClientError("room_full", "full"), OSError("refused"), "lobby"])
    made = reconnection(host)
    made.start("disconnected")
    await finished(host)
    opened = [c for c in host.calls if c.startswith("open")]
    assert opened == ["open ws://a/ws", "open ws://b/ws", "open ws://a/ws"]
    assert host.calls.count("drop") == 3  # once at the start, once per failure
    assert host.state == "active" and made.reconnections == 1
    assert host.republished == []  # nothing was published


async def test_a_refused_token_ends_it_and_so_does_running_out_of_attempts() -> None:
    host = Host([ClientError("token_used", "used")])
    made = reconnection(host)
    made.start("disconnected")
    await finished(host)
    assert host.state == "closed" and host.calls.count("join") == 1 and made.reconnections == 0

    host = Host([ClientError("room_full", "full")] * 3)
    made = reconnection(
        host, ReconnectPolicy(enabled=True, entry_url="ws://a/ws", attempts=3, delay=0)
    )
    made.start("disconnected")
    await finished(host)
    assert host.state == "closed" and host.calls.count("join") == 3


async def test_close_cancels_a_reconnection_under_way() -> None:
    host = Host([])
    blocked = asyncio.Event()

    async def never_opens(url: str) -> None:
        await blocked.wait()

    host.reopen = never_opens  # type: ignore[method-assign]
    made = reconnection(host)
    made.start("disconnected")
    await asyncio.sleep(0.01)
    assert host.calls == ["drop"]
    await made.close()
    assert not made.armed and host.calls == ["drop"] and not host.done.is_set()


async def test_a_failed_republish_does_not_publish_the_tracks_twice_later() -> None:
    """The client remembers tracks as it publishes them; before, an attempt whose
    republish failed left them remembered and the next attempt added them again."""
    host = Host(["active", "active"])
    made = reconnection(host)
    track = object()
    made.published([(track, "microphone")])  # type: ignore[list-item]
    failures = [ClientError("publish_failed", "no answer")]

    async def publish(tracks: Tracks, video_codec: str | None = None) -> dict[str, str]:
        made.published(tracks)  # what ConsultClient.publish does first
        host.republished.append(list(tracks))
        if failures:
            raise failures.pop()
        return {}

    host.publish = publish  # type: ignore[method-assign]
    made.start("disconnected")
    await finished(host)
    assert made.reconnections == 1
    assert len(host.republished) == 2
    assert made.tracks == [(track, "microphone")]  # once, not twice
