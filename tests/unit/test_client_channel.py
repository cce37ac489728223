"""Unit tests for signaling/client_channel.py: ConsultClient's WebSocket channel.

A scripted aiohttp WebSocket stands in for the server: each test's
``script`` receives the messages the channel sent and answers as it likes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from signaling.client_channel import RequestChannel
from signaling.client_errors import ClientError, Event

Script = Callable[[web.WebSocketResponse], Awaitable[None]]


class Recorder:
    """The client side of the channel: what it handed over and when it was lost."""

    def __init__(self) -> None:
        self.handled: list[Event] = []
        self.lost = 0

    async def on_event(self, event: Event) -> None:
        self.handled.append(event)

    def on_lost(self) -> None:
        self.lost += 1


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    servers: list[TestServer] = []

    async def start(script: Script) -> str:
        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await script(ws)
            return ws

        app = web.Application()
        app.router.add_get("/ws", handler)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/ws")).replace("http", "ws", 1)

    yield start
    for server in servers:
        await server.close()


async def replies_in_reverse(ws: web.WebSocketResponse) -> None:
    first: Any = await ws.receive_json()
    second: Any = await ws.receive_json()
    await ws.send_json({"type": "hello"})  # an event that answers nothing
    await ws.send_json({"type": "error", "ref": second["id"], "code": "nope", "message": "no"})
    await ws.send_json({"type": "ack", "ref": first["id"], "echo": first["what"]})
    await ws.receive()  # until the client closes


async def test_replies_find_their_requests_by_ref_and_errors_raise(serve: Any) -> None:
    recorder = Recorder()
    channel = RequestChannel(await serve(replies_in_reverse), recorder.on_event, recorder.on_lost)
    await channel.open(channel.url)
    assert channel.is_open
    first = asyncio.create_task(channel.request({"type": "ping", "what": "first"}))
    await asyncio.sleep(0)  # the first request goes out first
    with pytest.raises(ClientError) as refused:
        await channel.request({"type": "ping", "what": "second"})
    assert refused.value.code == "nope" and refused.value.event["ref"] == 2
    assert (await first)["echo"] == "first"
    kinds = ["hello", "error", "ack"]
    assert [e["type"] for e in channel.events] == kinds
    await channel.wait_until(lambda: len(recorder.handled) == 3)
    assert [e["type"] for e in recorder.handled] == kinds  # the client saw each, in order
    await channel.close()
    assert (channel.is_open, recorder.lost) == (False, 0)  # closed on purpose: not "lost"


async def hangs_up_after_one_request(ws: web.WebSocketResponse) -> None:
    await ws.receive_json()
    await ws.close()


async def test_a_connection_the_server_ends_is_lost_and_its_requests_fail(serve: Any) -> None:
    recorder = Recorder()
    url = await serve(hangs_up_after_one_request)
    channel = RequestChannel(url, recorder.on_event, recorder.on_lost)
    await channel.open(url)
    with pytest.raises(ClientError) as closed:
        await channel.request({"type": "ping"})
    assert closed.value.code == "closed"
    await channel.wait_until(lambda: recorder.lost == 1)
    await channel.close()
    assert recorder.lost == 1


async def test_an_event_handled_while_the_channel_closes_ends_quietly(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing while an event is handled (a subscriber offer being answered) stops the
    handling first: before, the handler went on during the close, its answer hit the closed
    channel (AssertionError) and the read loop logged a traceback."""
    handling, proceed = asyncio.Event(), asyncio.Event()
    sent: list[str] = []

    async def offers(ws: web.WebSocketResponse) -> None:
        await ws.send_json({"type": "subscriber_offer"})
        await ws.receive()

    channel: RequestChannel

    async def answer_late(event: Event) -> None:
        handling.set()
        await proceed.wait()  # the answer is ready only once the close has begun
        await channel.send_json({"type": "subscriber_answer"})
        sent.append("answer")

    url = await serve(offers)
    channel = RequestChannel(url, answer_late, lambda: None)
    await channel.open(url)
    await asyncio.wait_for(handling.wait(), 5)
    with caplog.at_level("DEBUG", logger="signaling.client_channel"):
        closing = asyncio.create_task(channel.close())
        await asyncio.sleep(0)
        proceed.set()
        await closing
        await asyncio.sleep(0.1)
    assert sent == []
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


async def test_sending_on_a_closed_channel_is_a_clear_error(serve: Any) -> None:
    channel = RequestChannel(await serve(replies_in_reverse), Recorder().on_event, lambda: None)
    await channel.open(channel.url)
    await channel.close()
    for send in (
        channel.send_json({"type": "ping"}),
        channel.send_str("{}"),
        channel.request({"type": "ping"}),
    ):
        with pytest.raises(ClientError) as closed:
            await send
        assert closed.value.code == "closed"


async def test_wait_event_and_wake(serve: Any) -> None:
    async def announces(ws: web.WebSocketResponse) -> None:
        await ws.send_json({"type": "state", "n": 1})
        await ws.send_json({"type": "state", "n": 2})
        await ws.receive()

    recorder = Recorder()
    url = await serve(announces)
    channel = RequestChannel(url, recorder.on_event, recorder.on_lost)
    await channel.open(url)
    second = await channel.wait_event("state", where=lambda e: e["n"] == 2)
    assert second["n"] == 2
    # a client-side event is recorded and wakes the waiters
    waiter = asyncio.create_task(channel.wait_event("reconnected", timeout=5))
    await asyncio.sleep(0)
    channel.wake({"type": "reconnected", "attempts": 1})
    assert (await waiter)["attempts"] == 1
    with pytest.raises(TimeoutError):
        await channel.wait_event("never", timeout=0.05)
    await channel.close()
    await channel.close()  # twice is harmless
