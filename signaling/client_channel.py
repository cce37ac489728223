"""ConsultClient's WebSocket request/reply channel (one WebSocket at a time).

Sends messages, matches each reply to its request by ``ref`` (the request's
``id``), keeps every server event in order (``events``), hands each one to
the client (``on_event``) and wakes whoever waits for a change
(``wait_until``). A WebSocket that ends without being closed here is
reported (``on_lost``); the requests still waiting then get a ``closed``
error. The reader task is owned here and cancelled on close.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable

import aiohttp

from signaling.client_errors import ClientError, Event

logger = logging.getLogger(__name__)

MAX_MESSAGE_SIZE = 4 * 1024 * 1024


class RequestChannel:
    """The client's WebSocket: requests, replies, events and waiting for changes."""

    def __init__(
        self,
        url: str,
        on_event: Callable[[Event], Awaitable[None]],
        on_lost: Callable[[], None],
    ) -> None:
        self.url = url  # the node connected to (or about to be)
        self.events: list[Event] = []
        self.frames: list[bytes] = []  # binary frames received (capture chunks)
        self._on_event = on_event
        self._on_lost = on_lost
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Event]] = {}
        self._changed = asyncio.Event()

    @property
    def is_open(self) -> bool:
        return self._ws is not None and not self._ws.closed

    async def open(self, url: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.url = url
        ws = await self._session.ws_connect(url, max_msg_size=MAX_MESSAGE_SIZE)
        self._ws = ws
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(ws))

    async def close_ws(self) -> None:
        """Close the WebSocket on purpose (redirect, reconnection): ``on_lost`` is not called."""
        ws, reader = self._ws, self._reader
        self._ws, self._reader = None, None
        if reader is not None:  # first: no event is handled half-way through the close
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if ws is not None:
            await ws.close()

    async def close(self) -> None:
        """Close the WebSocket and the HTTP session."""
        await self.close_ws()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open_ws(self) -> aiohttp.ClientWebSocketResponse:
        """The WebSocket to send on; ClientError ``closed`` once the channel was closed."""
        if self._ws is None:
            raise ClientError("closed", "the connection is closed")
        return self._ws

    async def send_str(self, data: str) -> None:
        await self._open_ws().send_str(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._open_ws().send_bytes(data)

    async def send_json(self, message: Event) -> None:
        """Send a message that wants no reply (no ``id``)."""
        await self._open_ws().send_json(message)

    async def request(self, message: Event, timeout: float = 20.0) -> Event:
        """Send a message and wait for the reply that carries its id as ``ref``."""
        ws = self._open_ws()
        msg_id = next(self._ids)
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            await ws.send_json({**message, "id": msg_id})
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(msg_id, None)
        if reply.get("type") == "error":
            raise ClientError(reply.get("code", "?"), reply.get("message", ""), reply)
        return reply

    def wake(self, event: Event | None = None) -> None:
        """Wake the waiters, recording a client-side ``event`` first if given."""
        if event is not None:
            self.events.append(event)
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                if predicate():
                    return
                await self._changed.wait()

    async def wait_event(
        self, kind: str, timeout: float = 10.0, where: Callable[[Event], bool] | None = None
    ) -> Event:
        found: list[Event] = []

        def seen() -> bool:
            for e in self.events:
                if e.get("type") == kind and (where is None or where(e)):
                    found.append(e)
                    return True
            return False

        await self.wait_until(seen, timeout)
        return found[0]

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    self.frames.append(msg.data)
                    self._changed.set()
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = msg.json()
                self.events.append(event)
                ref = event.get("ref")
                future = self._pending.get(ref) if isinstance(ref, int) else None
                if future is not None and not future.done():
                    future.set_result(event)
                await self._on_event(event)
                for single in expand_participants_changed(event):  # a large room's batch
                    self.events.append(single)
                    await self._on_event(single)
                self._changed.set()
        except aiohttp.ClientConnectionError:
            logger.debug("connection closed while handling an event")
        except Exception as exc:
            if ws is self._ws:
                logger.exception("client read loop failed")
            else:  # closed while an event was being handled (an offer answered as we left)
                logger.debug("event handling cut short by close: %r", exc)
        finally:
            if ws is self._ws:
                self._on_lost()
            for future in self._pending.values():
                if not future.done():
                    future.set_result({"type": "error", "code": "closed", "message": "closed"})
            self._changed.set()


def expand_participants_changed(event: Event) -> list[Event]:
    """A large room's ``participants_changed`` as the one-by-one events a consult gets.

    Joined first, then left (docs/protocol.md); empty for any other event.
    The caller skips its own arrival if it cares (a test client does not).
    """
    if event.get("type") != "participants_changed":
        return []
    joined = event.get("joined")
    left = event.get("left")
    singles: list[Event] = [
        {"type": "participant_joined", "participant": info}
        for info in (joined if isinstance(joined, list) else [])
        if isinstance(info, dict)
    ]
    singles += [
        {"type": "participant_left", **entry}
        for entry in (left if isinstance(left, list) else [])
        if isinstance(entry, dict)
    ]
    return singles
