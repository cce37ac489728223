"""The admin API, readiness and cluster metrics of a single node (no Redis)."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from sfu.participant import Role
from tests.conftest import RunningServer

ADMIN = "admin-secret-for-tests"


async def test_rooms_nodes_readyz_and_metrics(server_factory: Callable[..., object]) -> None:
    server: RunningServer = await server_factory(admin={"token": ADMIN})  # type: ignore[operator]
    url = server.server.make_url
    doctor = server.client(server.token("ward-7", "dr", Role.SPECIALIST))
    await doctor.connect()
    await doctor.join()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url("/api/rooms")) as resp:
                assert resp.status == 401
            async with http.get(url("/api/rooms"), headers={"Authorization": "Bearer x"}) as resp:
                assert resp.status == 403 and (await resp.json())["code"] == "forbidden"
            async with http.get(url("/api/rooms"), headers=admin) as resp:
                (room,) = (await resp.json())["rooms"]
            assert room["room"] == "ward-7" and room["participants"] == 1
            node = room["node"]

            # one room: the admin token, or a join token for it with the admit grant
            nurse = server.token("ward-7", "nurse", Role.HEALTH_WORKER)
            patient = server.token("ward-7", "pat", Role.PATIENT)
            other = server.token("ward-8", "dr2", Role.SPECIALIST)
            for token, status in ((ADMIN, 200), (nurse, 200), (patient, 403), (other, 403)):
                headers = {"Authorization": f"Bearer {token}"}
                async with http.get(url("/api/rooms/ward-7"), headers=headers) as resp:
                    assert resp.status == status, token
            async with http.get(url("/api/rooms/nowhere"), headers=admin) as resp:
                assert resp.status == 404

            async with http.get(url("/api/cluster/nodes"), headers=admin) as resp:
                body = await resp.json()
            assert body["self"] == node and [n["id"] for n in body["nodes"]] == [node]
            assert body["nodes"][0]["rooms"] == 1 and body["nodes"][0]["participants"] == 1

            async with http.get(url("/readyz")) as resp:
                ready = await resp.json()
            assert ready["node"] == node and ready["placement"] == "active"
            assert "redis" not in ready
            async with http.get(url("/metrics")) as resp:
                text = await resp.text()
            assert f'digiclinic_node_info{{node_id="{node}"}} 1.0' in text
            assert 'digiclinic_placement_state{state="active"} 1.0' in text
            assert "digiclinic_redis_connected" not in text
    finally:
        await doctor.leave()


async def test_admin_api_is_closed_without_an_admin_token(
    server_factory: Callable[..., object],
) -> None:
    server: RunningServer = await server_factory()  # type: ignore[operator]
    async with aiohttp.ClientSession() as http:
        for method, path in (("GET", "/api/rooms"), ("POST", "/api/admin/drain")):
            headers = {"Authorization": "Bearer anything"}
            async with http.request(method, server.server.make_url(path), headers=headers) as r:
                assert r.status == 403
