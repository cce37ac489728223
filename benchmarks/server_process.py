"""Run ``digiclinic serve`` in a child process and measure it (CPU, RSS).

Used by the benchmarks (the SFU must be measured alone, not sharing a
process with its load) and by tests that need the server as users run it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcessSample:
    user_seconds: float
    system_seconds: float
    rss_bytes: int
    threads: int

    @property
    def cpu_seconds(self) -> float:
        return self.user_seconds + self.system_seconds


def sample_process(pid: int) -> ProcessSample:
    """CPU (user+system) seconds, resident memory and thread count from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    threads = int(fields[17])
    with open(f"/proc/{pid}/statm") as f:
        rss_pages = int(f.read().split()[1])
    return ProcessSample(utime / CLOCK_TICKS, stime / CLOCK_TICKS, rss_pages * PAGE, threads)


def terminate(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A digiclinic server child process on 127.0.0.1 with a throwaway config."""

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        module: str = "signaling",
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="digiclinic-")
        base: dict[str, Any] = {
            # the load generator is one address where real clients are many: the
            # per-address cap on connections not joined yet would refuse a join storm
            "server": {
                "host": "127.0.0.1",
                "port": self.port,
                "max_unjoined_per_address": 512,
            },
            "auth": {"dev_secret_file": str(Path(self._dir.name) / "dev-secret")},
            # all media on one UDP port (the default mode), one the OS chooses
            "media": {"ice_addresses": ["127.0.0.1"], "udp_port": 0},
            "logging": {"level": "WARNING"},
        }
        for section, values in (config or {}).items():
            base.setdefault(section, {}).update(values)
        self.config_path = Path(self._dir.name) / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(base))
        self.secret_file = Path(base["auth"]["dev_secret_file"])
        self.module = module
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = Path(self._dir.name) / "stderr.log"

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module, "--config", str(self.config_path), "serve"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 20.0, ssl_context: ssl.SSLContext | None = None) -> None:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=env,
        )
        deadline = time.monotonic() + timeout
        scheme = "https" if ssl_context is not None else "http"
        health = f"{scheme}://127.0.0.1:{self.port}/healthz"
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{self.stderr()}")
                try:
                    async with http.get(health, ssl=ssl_context or True) as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError("server did not become healthy")

    @property
    def pids(self) -> list[int]:
        """The processes doing the server's work (several for ``--workers``)."""
        return [self.pid]

    @property
    def metrics_urls(self) -> list[str]:
        """Where the server's /metrics are read (summed when several)."""
        return [self.url]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def sample(self) -> ProcessSample:
        return sample_process(self.pid)

    async def metrics(self) -> dict[str, float]:
        """The server's /metrics as name -> value (unlabelled series only)."""
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/metrics") as resp:
            text = await resp.text()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_stderr"):
            self._stderr.close()
        self._dir.cleanup()
