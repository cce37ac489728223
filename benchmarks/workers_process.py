"""``digiclinic serve --workers N`` on a real Redis, as a benchmark target.

The server's CPU and memory are the sums over the worker processes (the
supervisor itself only waits), and its packet counters the sums of every
worker's /metrics, read on each worker's own port (the shared port answers
from whichever worker the kernel picks).
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.redis_process import RedisProcess
from benchmarks.server_process import ServerProcess


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive free TCP ports on 127.0.0.1."""
    for _ in range(100):
        base = random.randint(20000, 30000)
        try:
            socks = []
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base
    raise RuntimeError("no consecutive free ports")


def child_pids(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []


class WorkersProcess(ServerProcess):
    def __init__(self, workers: int, config: dict[str, Any] | None = None) -> None:
        self.redis = RedisProcess()
        self.workers = workers
        self.base_port = consecutive_free_ports(workers)
        cluster = {"redis_url": self.redis.url, "node_id": "bench", "secret": "bench-secret"}
        super().__init__(config={**(config or {}), "cluster": cluster})

    def command(self) -> list[str]:
        return [
            *super().command(),
            "--workers",
            str(self.workers),
            "--worker-port-base",
            str(self.base_port),
        ]

    @property
    def metrics_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.base_port + i}" for i in range(self.workers)]

    @property
    def pids(self) -> list[int]:
        return child_pids(self.pid)

    async def start(self, timeout: float = 30.0, ssl_context: Any = None) -> None:
        self.redis.start()
        await super().start(timeout)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            for url in self.metrics_urls:
                while True:
                    try:
                        async with http.get(f"{url}/healthz") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"worker at {url} did not start")
                    await asyncio.sleep(0.1)

    def stop(self) -> None:
        super().stop()
        self.redis.close()
