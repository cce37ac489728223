"""HTTP side: TLS, origins, health, and creating a room by API."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from benchmarks.server_process import ServerProcess
from sfu.participant import Role
from signaling.app import SESSIONS
from signaling.client import ConsultClient
from signaling.config import Secret
from signaling.thin_stream import CONGESTION_CONTROL, TCP_THIN_LINEAR_TIMEOUTS
from signaling.tokens import mint_token
from tests.conftest import RunningServer
from tests.helpers.tls import self_signed


async def test_tls_serves_https_and_wss_when_a_certificate_is_configured(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = ServerProcess(config={"server": {"tls_cert": str(cert), "tls_key": str(key)}})
    context = ssl.create_default_context(cafile=str(cert))
    try:
        await server.start(ssl_context=context)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{server.port}/healthz", ssl=context) as resp:
                assert resp.status == 200
            # plain HTTP is not served on the TLS port
            try:
                async with http.get(f"http://127.0.0.1:{server.port}/healthz") as resp:
                    assert resp.status != 200
            except aiohttp.ClientError:
                pass
            secret = Secret(server.secret_file.read_text().strip())
            token = mint_token(secret, room="tls", identity="dr", role=Role.SPECIALIST)
            async with http.ws_connect(f"wss://127.0.0.1:{server.port}/ws", ssl=context) as ws:
                await ws.send_json({"type": "join", "token": token, "id": 1})
                joined = await ws.receive_json(timeout=5)
                assert joined["type"] == "joined" and joined["ref"] == 1
    finally:
        server.stop()


async def test_allowed_origins_and_same_origin(server_factory: Callable[..., object]) -> None:
    server: RunningServer = await server_factory(  # type: ignore[operator]
        server={"allowed_origins": ["https://portal.hospital-a.example"]}
    )
    url = server.server.make_url("/healthz")
    async with aiohttp.ClientSession() as http:
        for origin, status in (
            ("https://portal.hospital-a.example", 200),
            (f"http://{url.host}:{url.port}", 200),  # same origin
            ("https://portal.hospital-b.example", 403),
        ):
            async with http.get(url, headers={"Origin": origin}) as resp:
                assert resp.status == status, origin
        async with http.options(
            server.server.make_url("/api/rooms/x"),
            headers={"Origin": "https://portal.hospital-a.example"},
        ) as resp:
            assert resp.status == 204
            assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
            assert (
                resp.headers["Access-Control-Allow-Origin"] == "https://portal.hospital-a.example"
            )
        async with http.ws_connect(
            server.ws_url, headers={"Origin": "https://portal.hospital-a.example"}
        ) as ws:
            await ws.send_json({"type": "ping", "id": 9})
            assert (await ws.receive_json(timeout=5)) == {"type": "pong", "ref": 9}


async def test_dns_rebinding_origin_is_refused_even_when_host_matches(
    server_factory: Callable[..., object],
) -> None:
    """Origin is compared with the server's own origins, never with the Host header."""
    server: RunningServer = await server_factory(  # type: ignore[operator]
        server={"public_origins": ["https://media.hospital-a.example"]}
    )
    url = server.server.make_url("/healthz")
    port = url.port
    async with aiohttp.ClientSession() as http:
        for origin, host, status in (
            # a rebinding page: its name now resolves to this server
            (f"http://evil.example:{port}", f"evil.example:{port}", 403),
            (f"http://EVIL.example:{port}", f"evil.example:{port}", 403),
            # the server's own address, but not its scheme (no TLS here)
            (f"https://127.0.0.1:{port}", f"127.0.0.1:{port}", 403),
            (f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", 200),
            (f"http://localhost:{port}", f"localhost:{port}", 200),
            # the configured public origin, however the proxy names the Host
            ("https://media.hospital-a.example", "media.hospital-a.example", 200),
            ("https://media.hospital-a.example:443", "10.0.0.5:8080", 200),
            ("http://media.hospital-a.example", "media.hospital-a.example", 403),
            ("null", f"127.0.0.1:{port}", 403),
        ):
            headers = {"Origin": origin, "Host": host}
            async with http.get(url, headers=headers) as resp:
                assert resp.status == status, (origin, host, resp.status)
                if status == 403:
                    assert (await resp.json())["code"] == "origin_not_allowed"
        # the WebSocket upgrade is refused the same way, before any session exists
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(
                server.ws_url,
                headers={"Origin": f"http://evil.example:{port}", "Host": f"evil.example:{port}"},
            )
        assert refused.value.status == 403
        assert not server.app[SESSIONS]


async def test_room_created_by_api_then_joined_and_expires_unused(
    server_factory: Callable[..., object],
) -> None:
    server: RunningServer = await server_factory(rooms={"empty_timeout": 0.5})  # type: ignore[operator]
    url = server.server.make_url("/api/rooms/ward-3")
    async with aiohttp.ClientSession() as http:
        async with http.post(url) as resp:
            assert resp.status == 401
        patient = server.token("ward-3", "p1", Role.PATIENT)
        async with http.post(url, headers={"Authorization": f"Bearer {patient}"}) as resp:
            assert resp.status == 403 and (await resp.json())["code"] == "forbidden"
        other = server.token("ward-9", "dr", Role.SPECIALIST)
        async with http.post(url, headers={"Authorization": f"Bearer {other}"}) as resp:
            assert resp.status == 403 and (await resp.json())["code"] == "wrong_room"
        doctor = server.token("ward-3", "dr", Role.SPECIALIST)
        async with http.post(url, headers={"Authorization": f"Bearer {doctor}"}) as resp:
            assert resp.status == 201
            assert await resp.json() == {"room": "ward-3", "participants": 0}
        async with http.get(server.server.make_url("/readyz")) as resp:
            assert (await resp.json())["rooms"] == 1
    client = ConsultClient(server.ws_url, doctor, ice_addresses=["127.0.0.1"])
    await client.connect()
    await client.join()
    await client.leave()
    await asyncio.sleep(0.9)
    assert "dev/ward-3" not in server.rooms.rooms
    # a room created by API and never joined also goes away
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, headers={"Authorization": f"Bearer {doctor}"}) as resp,
    ):
        assert resp.status == 201
    await asyncio.sleep(0.9)
    assert "dev/ward-3" not in server.rooms.rooms


async def test_metrics_expose_the_documented_series(server: RunningServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.server.make_url("/metrics")) as resp,
    ):
        text = await resp.text()
    for name in (
        "digiclinic_rooms",
        "digiclinic_participants",
        "digiclinic_producers",
        "digiclinic_consumers",
        "digiclinic_rtp_packets_in_total",
        "digiclinic_rtp_packets_out_total",
        "digiclinic_rtp_bytes_in_total",
        "digiclinic_rtp_bytes_out_total",
        "digiclinic_nacks_total",
        "digiclinic_retransmissions_total",
        "digiclinic_keyframe_requests_total",
        "digiclinic_join_seconds_bucket",
    ):
        assert f"\n{name}" in text, name


async def test_widget_modules_load_cross_origin_only_for_allowed_portals(
    server_factory: Callable[..., object],
) -> None:
    server: RunningServer = await server_factory(  # type: ignore[operator]
        server={"allowed_origins": ["https://portal.hospital-a.example"]}
    )
    module = server.server.make_url("/client/widget/digiclinic-consult.js")
    embed = server.server.make_url("/client/widget/embed.html")
    async with aiohttp.ClientSession() as http:
        headers = {"Origin": "https://portal.hospital-a.example"}
        async with http.get(module, headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == headers["Origin"]
        evil = {"Origin": "https://evil.example"}
        # a refused portal gets, for the entry module, an element that says why (refused.js)
        async with http.get(module, headers=evil) as resp:
            assert resp.status == 200
            body = await resp.text()
            assert "origin_not_allowed" in body and "ConsultSession" not in body
            assert resp.headers["Cache-Control"] == "no-store"
        # and nothing else of the web client but the strings
        library = server.server.make_url("/client/digiclinic-client.js")
        async with http.get(library, headers=evil) as resp:
            assert resp.status == 403
        async with http.get(embed, headers=evil) as resp:
            assert resp.status == 403
        strings = server.server.make_url("/client/i18n/catalogue.js")
        async with http.get(strings, headers=evil) as resp:
            assert resp.status == 200
        async with http.post(module, headers=evil) as resp:
            assert resp.status == 403
        async with http.get(embed) as resp:
            csp = resp.headers["Content-Security-Policy"]
            assert csp == "frame-ancestors 'self' https://portal.hospital-a.example"


async def test_signalling_socket_is_a_thin_tcp_stream(
    server_factory: Callable[..., object],
) -> None:
    """A lost message is sent again at a linear timeout, not after doubling ones (thin_stream)."""
    server: RunningServer = await server_factory()  # type: ignore[operator]
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url):
        for _ in range(50):
            if server.app[SESSIONS]:
                break
            await asyncio.sleep(0.02)
        (session,) = server.app[SESSIONS]
        sock = session.ws._req.transport.get_extra_info("socket")  # type: ignore[union-attr]
        assert sock.getsockopt(socket.IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        algorithm = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
        assert algorithm.rstrip(b"\0") == CONGESTION_CONTROL
