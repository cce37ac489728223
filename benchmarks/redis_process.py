"""A real redis-server on 127.0.0.1 for tests and benchmarks (never a fake).

No persistence (``--save "" --appendonly no``): a stop loses every key, like
a Redis that failed over to an empty replica, which is what the cluster must
survive. ``stop()`` then ``start()`` brings it back on the same port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.server_process import terminate

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_tcp_port()
        self._dir = tempfile.TemporaryDirectory(prefix="digiclinic-redis-")
        self.pidfile = Path(self._dir.name) / "redis.pid"
        self.logfile = Path(self._dir.name) / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
                "--logfile",
                str(self.logfile),
                "--pidfile",
                str(self.pidfile),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log()}")
            if self.ping():
                return
            time.sleep(0.02)
        raise TimeoutError(f"redis-server did not start: {self.log()}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()
