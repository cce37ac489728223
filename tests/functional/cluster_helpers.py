"""A cluster on loopback for the tests: a real redis-server and real node processes.

Nodes run as ``digiclinic serve`` child processes (benchmarks/server_process.py)
so SIGKILL and SIGTERM are the real thing. Every node shares the development
token secret (a token may enter through any node) and the cluster secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from benchmarks.server_process import ServerProcess
from sfu.media import Source
from sfu.participant import Role
from signaling.client import ConsultClient
from signaling.config import AuthConfig, Secret
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from signaling.tokens import dev_secret, mint_token
from tests.helpers.redis_server import REDIS_SERVER, RedisProcess

ADMIN = "admin-test-token"
needs_redis = pytest.mark.skipif(
    not Path(REDIS_SERVER).exists(), reason="redis-server is not installed (scripts/test.sh does)"
)
# fast failure detection for the tests (production defaults: 2 s / 6 s)
FAST = {"heartbeat_interval": 0.5, "node_ttl": 2.0, "room_lease": 10.0, "drain_timeout": 8.0}


class Cluster:
    def __init__(self, tmp: Path, redis: RedisProcess, **sections: dict[str, Any]) -> None:
        self.tmp = tmp
        self.sections = sections
        self.redis = redis
        self.secret_file = tmp / "dev-secret"
        dev_secret(AuthConfig(dev_secret_file=str(self.secret_file)))  # one, before any node
        self.nodes: dict[str, ServerProcess] = {}

    def node_config(self, node_id: str, **cluster: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "auth": {"dev_secret_file": str(self.secret_file)},
            "cluster": {
                "redis_url": self.redis.url,
                "secret": "cluster-test-secret",
                "node_id": node_id,
                **FAST,
                **cluster,
            },
            "admin": {"token": ADMIN},
            "rooms": {"empty_timeout": 2.0},
            "recording": {"directory": str(self.tmp / "recordings")},
        }
        for section, values in self.sections.items():
            config.setdefault(section, {}).update(values)
        return config

    async def start_nodes(self, *node_ids: str) -> list[ServerProcess]:
        procs = []
        for node_id in node_ids:
            proc = ServerProcess(self.node_config(node_id), env={"PYTHONPATH": pythonpath()})
            self.nodes[node_id] = proc
            procs.append(proc)
        await asyncio.gather(*(p.start() for p in procs))
        return procs

    def token(self, room: str, identity: str, role: Role = Role.SPECIALIST) -> str:
        secret = Secret(self.secret_file.read_text().strip())
        return mint_token(secret, room=room, identity=identity, role=role)

    def client(self, node: str, room: str, identity: str, **kw: Any) -> ConsultClient:
        role = kw.pop("role", Role.SPECIALIST)
        return ConsultClient(
            self.nodes[node].ws_url,
            self.token(room, identity, role),
            ice_addresses=["127.0.0.1"],
            **kw,
        )

    async def admin(self, node: str, method: str, path: str) -> tuple[int, Any]:
        url = f"{self.nodes[node].url}{path}"
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with aiohttp.ClientSession() as http, http.request(method, url, headers=headers) as r:
            return r.status, await r.json()

    async def room_node(self, via: str, room: str) -> str:
        status, body = await self.admin(via, "GET", f"/api/rooms/{room}")
        assert status == 200, body
        return str(body["node"])

    def node_of_url(self, url: str) -> str:
        return next(n for n, p in self.nodes.items() if p.ws_url == url)

    def stop(self) -> None:
        for proc in self.nodes.values():
            proc.stop()


def pythonpath() -> str:
    """Child processes import this checkout (the venv may point elsewhere)."""
    root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])


@contextlib.asynccontextmanager
async def running_cluster(
    tmp: Path, *node_ids: str, **sections: dict[str, Any]
) -> AsyncIterator[Cluster]:
    """Redis and the nodes; ``sections`` are added to every node's config."""
    redis = RedisProcess()
    redis.start()
    cluster = Cluster(tmp, redis, **sections)
    try:
        await cluster.start_nodes(*node_ids)
        yield cluster
    finally:
        cluster.stop()
        redis.close()


async def publish_av(client: ConsultClient, size: tuple[int, int] = (320, 240)) -> None:
    await client.publish(
        [(ToneTrack(), Source.MICROPHONE), (CameraTrack(*size, fps=15), Source.CAMERA)]
    )


async def decodes_video_from(
    client: ConsultClient, other: ConsultClient | str, frames: int = 10, timeout: float = 20
) -> set[tuple[int, int]]:
    """Wait for the other participant's video (a client or a participant id) and decode it."""
    who = other if isinstance(other, str) else other.participant_id
    track = await client.wait_for_track(
        lambda t: t.kind == "video" and t.participant_id == who, timeout
    )
    reader = TrackReader(track.track)
    try:
        stats = await reader.wait_frames(frames, timeout)
    finally:
        await reader.stop()
    return stats.sizes
