"""``digiclinic serve --workers 2``: two worker processes behind one public port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from benchmarks.server_process import free_port
from benchmarks.workers_process import consecutive_free_ports
from sfu.participant import Role
from signaling.client import ConsultClient
from signaling.config import AuthConfig
from signaling.tokens import dev_secret, mint_token
from tests.functional.cluster_helpers import ADMIN, FAST, needs_redis, pythonpath
from tests.helpers.redis_server import RedisProcess

pytestmark = needs_redis


async def _nodes(http: aiohttp.ClientSession, url: str) -> list[dict[str, object]]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    try:
        async with http.get(f"{url}/api/cluster/nodes", headers=headers) as resp:
            if resp.status == 200:
                return list((await resp.json())["nodes"])
    except aiohttp.ClientError:
        pass
    return []


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
async def test_workers_share_one_port_and_both_host_rooms(tmp_path: Path) -> None:
    cores = os.cpu_count() or 1
    redis = RedisProcess()
    redis.start()
    port, base = free_port(), consecutive_free_ports(os.cpu_count() or 1)
    secret_file = tmp_path / "dev-secret"
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {"dev_secret_file": str(secret_file)},
        # one media port per worker, each one the OS chooses
        "media": {"ice_addresses": ["127.0.0.1"], "udp_port": 0},
        "cluster": {"redis_url": redis.url, "node_id": "box", **FAST},
        "admin": {"token": ADMIN},
        "logging": {"level": "WARNING"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "signaling", "--config", str(tmp_path / "config.yaml")]
    # --workers alone: one worker per core (two on the 2-core machines this runs on)
    command += ["serve", "--worker-port-base", str(base), "--workers"]
    env = {**os.environ, "PYTHONPATH": pythonpath()}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    clients: list[ConsultClient] = []
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while len(await _nodes(http, url)) < cores:
                assert proc.poll() is None, "the supervisor exited"
                assert time.monotonic() < deadline, "two workers did not register"
                await asyncio.sleep(0.2)
            nodes = await _nodes(http, url)
        assert {n["id"] for n in nodes} == {f"box-w{i}" for i in range(cores)}
        assert {n["url"] for n in nodes} == {f"ws://127.0.0.1:{base + i}/ws" for i in range(cores)}
        secret = dev_secret(AuthConfig(dev_secret_file=str(secret_file)), create=False)
        for i in range(4):  # every client enters through the one public port
            token = mint_token(secret, room=f"ward-{i}", identity=f"dr-{i}", role=Role.SPECIALIST)
            client = ConsultClient(f"ws://127.0.0.1:{port}/ws", token)
            clients.append(client)
            await client.connect()
            await client.join()
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/api/rooms", headers=headers) as resp,
        ):
            rooms = (await resp.json())["rooms"]
        assert len(rooms) == 4
        assert len({r["node"] for r in rooms}) == min(cores, 4), "rooms on every worker"
    finally:
        await asyncio.gather(*(c.leave() for c in clients))
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, 45)  # drain (<= 8 s) + stop, on a loaded box
        finally:
            if proc.poll() is None:
                proc.kill()
            redis.close()
    assert code == 0
