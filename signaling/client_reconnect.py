"""ConsultClient's reconnection after a lost connection (node gone or draining).

Connect again (to the node the server suggested in ``reconnect``, else to
the URL the client started with, then its ``fallback_urls`` in turn: any
node of the cluster will do), join with the
same token (redirects followed) and, for a single-use token, the resume
secret of the first ``joined``, wait in the lobby if the role waits there,
and republish the same tracks. Delays grow from ``reconnect_delay`` to
``max_reconnect_delay``; fatal join errors (a refused token) end it.

``Reconnection`` keeps what that needs (the policy, the tracks to republish,
the suggested node, whether the client has joined or is leaving) and owns
the task that runs it; it drives the client through ``ReconnectHost`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiortc.mediastreams import MediaStreamTrack

from sfu.media import Source
from signaling.client_errors import FATAL_JOIN_ERRORS, ClientError, Event

logger = logging.getLogger(__name__)

Tracks = list[tuple[MediaStreamTrack, Source]]


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Whether, where to and how patiently the client reconnects."""

    enabled: bool = False
    entry_url: str = ""  # where reconnections start (any node of the cluster)
    # more entry points, tried in turn when reconnecting (the first may be gone)
    fallback_urls: tuple[str, ...] = ()
    attempts: int = 30
    delay: float = 0.25  # before the second attempt; doubles up to max_delay
    max_delay: float = 2.0

    def entry(self, attempt: int) -> str:
        """The URL of attempt ``attempt`` (from 1) when no node was suggested."""
        entries = [self.entry_url, *self.fallback_urls]
        return entries[(attempt - 1) % len(entries)]

    def next_delay(self, delay: float) -> float:
        return min(delay * 2, self.max_delay)


class ReconnectHost(Protocol):
    """The client as its reconnection drives it."""

    state: str

    @property
    def url(self) -> str: ...

    async def reopen(self, url: str) -> None:
        """Open a new WebSocket to ``url``."""

    async def drop_connection(self) -> None:
        """Close the WebSocket on purpose and forget the media of the lost connection."""

    async def join(self) -> Event: ...

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None: ...

    async def publish(self, tracks: Tracks, video_codec: str | None = None) -> dict[str, str]: ...

    def wake(self, event: Event | None = None) -> None:
        """Wake the client's waiters, recording a client-side ``event`` first if given."""


class Reconnection:
    """Restores a lost connection of its host, in a task of its own."""

    def __init__(self, host: ReconnectHost, policy: ReconnectPolicy) -> None:
        self.policy = policy
        self.reconnections = 0  # connections restored
        self._host = host
        self._joined_once = False
        self._leaving = False
        self._hint: str | None = None  # a node the server suggested reconnecting to
        self._publishing: Tracks = []  # republished after reconnecting
        self._task: asyncio.Task[None] | None = None

    @property
    def armed(self) -> bool:
        """A lost connection is to be restored: enabled, joined once, not leaving."""
        return self.policy.enabled and not self._leaving and self._joined_once

    def joined(self) -> None:
        self._joined_once = True

    def leaving(self) -> None:
        """The client leaves: no reconnection from now on."""
        self._leaving = True

    def published(self, tracks: Tracks) -> None:
        """Tracks the client publishes: republish them after reconnecting."""
        self._publishing.extend(tracks)

    @property
    def tracks(self) -> Tracks:
        """The tracks republished after a reconnection."""
        return list(self._publishing)

    def suggest(self, url: str | None) -> None:
        """The node the server suggested (``reconnect`` event) for the next attempt."""
        self._hint = url

    def start(self, reason: str) -> None:
        """Reconnect now, unless a reconnection is already under way."""
        if self._task is None or self._task.done():
            self._host.state = "reconnecting"
            self._task = asyncio.get_running_loop().create_task(self._run(reason))

    async def close(self) -> None:
        """Stop for good: no reconnection follows and one under way is cancelled."""
        self._leaving = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, reason: str) -> None:
        host, policy = self._host, self.policy
        republish = list(self._publishing)
        self._publishing.clear()
        await host.drop_connection()
        host.wake()
        delay = policy.delay
        for attempt in range(1, policy.attempts + 1):
            url = self._hint or policy.entry(attempt)
            self._hint = None
            try:
                await host.reopen(url)
                joined = await host.join()
                if joined["state"] == "lobby":
                    await host.wait_until(lambda: host.state in ("active", "denied", "closed"), 600)
                if host.state != "active":
                    raise ClientError(host.state, "not admitted after reconnecting")
                if republish:
                    # (a failed attempt's publish may have remembered them already)
                    self._publishing.clear()
                    await host.publish(republish)
            except (ClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                code = getattr(exc, "code", type(exc).__name__)
                logger.info("reconnect attempt %d (%s) failed: %s", attempt, reason, code)
                await host.drop_connection()
                if code in FATAL_JOIN_ERRORS:
                    break
                host.state = "reconnecting"
                await asyncio.sleep(delay)
                delay = policy.next_delay(delay)
                continue
            self.reconnections += 1
            host.wake({"type": "reconnected", "attempts": attempt, "url": host.url})
            return
        host.state = "closed"
        host.wake()
