"""Caps on what an unauthenticated or runaway client can make a node hold.

WebSocket connections that have not joined a room are capped per source
address and in total, and closed when they have not joined in time; the
rooms one node hosts are capped too. Every refusal carries a clear code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from sfu.participant import Role
from signaling.client_errors import ClientError
from tests.conftest import RunningServer

StartServer = Callable[..., Awaitable[RunningServer]]


@contextlib.asynccontextmanager
async def source(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session whose connections come from ``address`` (any 127.x works on Linux)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def refused(session: aiohttp.ClientSession, server: RunningServer) -> tuple[int, object]:
    """The status of a refused WebSocket upgrade, and the error code in the refusal's body."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as handshake:
        await session.ws_connect(server.ws_url)
    async with session.get(server.server.make_url("/ws")) as resp:
        body = await resp.json()
        assert resp.status == handshake.value.status
        assert body["type"] == "error" and body["message"]
    return handshake.value.status, body["code"]


async def join(ws: aiohttp.ClientWebSocketResponse, token: str) -> dict[str, object]:
    await ws.send_json({"type": "join", "id": 1, "token": token, "auto_subscribe": False})
    while True:
        reply: dict[str, object] = json.loads((await ws.receive(timeout=5)).data)
        if reply.get("ref") == 1:
            return reply


async def test_unjoined_connections_are_capped_per_address_and_in_total(
    server_factory: StartServer,
) -> None:
    server = await server_factory(
        server={"max_unjoined_per_address": 3, "max_unjoined_connections": 5}
    )
    async with source("127.0.0.1") as a, source("127.0.0.2") as b, source("127.0.0.3") as c:
        from_a = [await a.ws_connect(server.ws_url) for _ in range(3)]
        assert await refused(a, server) == (429, "too_many_connections")
        from_b = [await b.ws_connect(server.ws_url) for _ in range(2)]
        assert await refused(c, server) == (503, "too_many_connections")
        # a connection that joins no longer counts: its slot is free again
        joined = await join(from_a[0], server.token("cap-1", "doctor", Role.SPECIALIST))
        assert joined["type"] == "joined"
        from_c = await c.ws_connect(server.ws_url)
        assert await refused(a, server) == (503, "too_many_connections")
        # nor does one that closed
        await from_b.pop().close()
        from_a.append(await a.ws_connect(server.ws_url))
        assert await refused(a, server) == (429, "too_many_connections")
        # the refused attempts disturbed nobody
        await from_a[0].send_json({"type": "ping", "id": 2})
        assert json.loads((await from_a[0].receive(timeout=5)).data) == {"type": "pong", "ref": 2}
        for ws in [*from_a, *from_b, from_c]:
            await ws.close()
        # all slots are back
        again = [await a.ws_connect(server.ws_url) for _ in range(3)]
        for ws in again:
            await ws.close()


async def test_default_unjoined_cap_is_generous_but_real(server: RunningServer) -> None:
    limit = server.config.server.max_unjoined_per_address
    assert 16 <= limit <= 64
    async with source("127.0.0.1") as session:
        sockets = [await session.ws_connect(server.ws_url) for _ in range(limit)]
        assert await refused(session, server) == (429, "too_many_connections")
        for ws in sockets:
            await ws.close()


async def test_unjoined_socket_is_closed_at_the_join_deadline(
    server_factory: StartServer,
) -> None:
    server = await server_factory(server={"join_timeout": 0.5, "max_unjoined_per_address": 1})
    async with source("127.0.0.1") as session:
        # a joined connection is not affected by the deadline
        member = await session.ws_connect(server.ws_url)
        assert (await join(member, server.token("deadline", "nurse", Role.HEALTH_WORKER)))[
            "type"
        ] == "joined"
        idle = await session.ws_connect(server.ws_url)
        opened = time.monotonic()
        # pings keep nothing alive: only a join does
        await idle.send_json({"type": "ping", "id": 1})
        assert json.loads((await idle.receive(timeout=5)).data) == {"type": "pong", "ref": 1}
        error = json.loads((await idle.receive(timeout=5)).data)
        assert error["type"] == "error" and error["code"] == "join_timeout", error
        closing = await idle.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert idle.close_code == 1008
        assert closing.extra == "join_timeout"
        assert 0.4 < time.monotonic() - opened < 5
        # its slot is free again (the cap is 1 per address here)
        second = await session.ws_connect(server.ws_url)
        await asyncio.sleep(0.7)  # past the deadline for the first one
        await member.send_json({"type": "ping", "id": 3})
        assert json.loads((await member.receive(timeout=5)).data) == {"type": "pong", "ref": 3}
        for ws in (member, idle, second):
            await ws.close()


async def test_new_rooms_are_refused_once_the_node_hosts_max_rooms(
    server_factory: StartServer,
) -> None:
    server = await server_factory(rooms={"max_rooms": 2})
    doctor = server.client(server.token("ward-1", "doctor", Role.SPECIALIST))
    nurse = server.client(server.token("ward-1", "nurse", Role.HEALTH_WORKER))
    late = server.client(server.token("ward-3", "late", Role.SPECIALIST))
    try:
        await doctor.connect()
        await doctor.join()
        async with aiohttp.ClientSession() as http:
            creator = server.token("ward-2", "admin", Role.SPECIALIST)
            headers = {"Authorization": f"Bearer {creator}"}
            async with http.post(server.server.make_url("/api/rooms/ward-2"), headers=headers) as r:
                assert r.status == 201
            third = server.token("ward-3", "admin", Role.SPECIALIST)
            headers = {"Authorization": f"Bearer {third}"}
            async with http.post(server.server.make_url("/api/rooms/ward-3"), headers=headers) as r:
                assert r.status == 503
                assert (await r.json())["code"] == "too_many_rooms"
        await late.connect()
        with pytest.raises(ClientError) as refusal:
            await late.join()
        assert refusal.value.code == "too_many_rooms"
        assert set(server.rooms.rooms) == {"dev/ward-1", "dev/ward-2"}
        # rooms already hosted still take participants
        await nurse.connect()
        await nurse.join()
        assert len(server.room("ward-1").participants) == 2
        # once the empty ward-2 closes (rooms.empty_timeout is 1 s in tests), ward-3 fits;
        # the refused connection may simply try again
        deadline = time.monotonic() + 5
        while "dev/ward-2" in server.rooms.rooms and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await late.join()
        assert set(server.rooms.rooms) == {"dev/ward-1", "dev/ward-3"}
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave(), late.leave())
