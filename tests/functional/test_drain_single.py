"""Draining without Redis: one process, SIGTERM and the admin API."""

from __future__ import annotations

import asyncio
import signal

import aiohttp

from benchmarks.server_process import ServerProcess
from sfu.participant import Role
from signaling.client import ClientError, ConsultClient
from signaling.config import Secret
from signaling.tokens import mint_token

ADMIN = "single-admin-token"


async def test_sigterm_tells_clients_to_reconnect_then_exits_cleanly() -> None:
    server = ServerProcess(config={"admin": {"token": ADMIN}})
    await server.start()
    secret = Secret(server.secret_file.read_text().strip())
    token = mint_token(secret, room="solo", identity="dr", role=Role.SPECIALIST)
    client = ConsultClient(server.ws_url, token, ice_addresses=["127.0.0.1"])
    try:
        await client.connect()
        await client.join()
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        event = await client.wait_event("reconnect", timeout=10)
        assert event["reason"] == "node_draining" and "url" not in event
        assert await asyncio.to_thread(server.proc.wait, 10) == 0
    finally:
        await client.close()
        server.stop()


async def test_admin_drain_refuses_new_rooms_and_readyz_says_draining() -> None:
    server = ServerProcess(config={"admin": {"token": ADMIN}})
    await server.start()
    secret = Secret(server.secret_file.read_text().strip())
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/api/admin/drain") as resp:
                assert resp.status == 401
            headers = {"Authorization": "Bearer wrong"}
            async with http.post(f"{server.url}/api/admin/drain", headers=headers) as resp:
                assert resp.status == 403
            headers = {"Authorization": f"Bearer {ADMIN}"}
            async with http.post(f"{server.url}/api/admin/drain", headers=headers) as resp:
                assert resp.status == 200 and (await resp.json())["state"] == "draining"
            async with http.get(f"{server.url}/readyz") as resp:
                assert resp.status == 503 and (await resp.json())["placement"] == "draining"
        token = mint_token(secret, room="late", identity="dr", role=Role.SPECIALIST)
        client = ConsultClient(server.ws_url, token, ice_addresses=["127.0.0.1"])
        await client.connect()
        try:
            await client.join()
            raise AssertionError("a draining server took a new room")
        except ClientError as exc:
            assert exc.code == "placement_unavailable"
        finally:
            await client.close()
    finally:
        server.stop()
