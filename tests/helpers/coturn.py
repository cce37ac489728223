"""A real coturn (Debian's `turnserver`) on 127.0.0.1 for tests.

The test config allows loopback peers (`allow-loopback-peers`, which coturn
only accepts together with `no-cli`): that allowance exists in test configs
only; the production template denies every private and loopback range.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

from benchmarks.server_process import terminate

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


LISTEN_PORTS = range(30000, 32700)  # below the kernel's ephemeral range (32768-60999 here)


def free_udp_port() -> int:
    """A port free for both UDP and TCP, outside the ephemeral range.

    coturn listens on both (TCP too, even for a UDP-only test): an ephemeral
    port free for UDP could be a WebSocket's or a browser's TCP port (CI: a
    coturn failed to start with errno 98 on its TCP listener).
    """
    for port in random.sample(LISTEN_PORTS, 200):
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
            ):
                udp.bind(("127.0.0.1", port))
                tcp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port for coturn below the ephemeral range")


class Coturn:
    def __init__(self, directory: Path, secrets: list[str], realm: str = "digiclinic.test") -> None:
        self.port = free_udp_port()
        self.log = directory / "turnserver.log"
        self.conf = directory / "turnserver.conf"
        # Relay ports below the kernel's ephemeral range (32768-60999 here): the
        # suite's many browsers and peers bind ephemeral UDP ports, and one of
        # them could hold a relay port coturn picked at start-up.
        relay = 10000 + (self.port % 1000) * 20  # 10000-29999
        lines = [
            "listening-ip=127.0.0.1",
            "relay-ip=127.0.0.1",
            f"listening-port={self.port}",
            f"min-port={relay}",
            f"max-port={relay + 19}",
            "use-auth-secret",
            *[f"static-auth-secret={s}" for s in secrets],
            f"realm={realm}",
            "fingerprint",
            "no-tls",
            "no-dtls",
            "no-cli",
            "allow-loopback-peers",  # TEST ONLY: media server and clients are on 127.0.0.1
            "no-multicast-peers",
            "stale-nonce=600",
            "simple-log",
            f"log-file={self.log}",
            "verbose",
            f"pidfile={directory / 'turnserver.pid'}",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def with_config(cls, directory: Path, config: str, port: int) -> Coturn:
        """Run a given config (e.g. the rendered production one), listening on 127.0.0.1 only."""
        server = cls.__new__(cls)
        server.port = port
        server.log = directory / "turnserver.log"
        server.conf = directory / "turnserver.conf"
        server.proc = None
        local = [
            "listening-ip=127.0.0.1",
            "relay-ip=127.0.0.1",
            "simple-log",
            f"log-file={server.log}",
            "verbose",
            f"pidfile={directory / 'turnserver.pid'}",
        ]
        server.conf.write_text(config + "\n" + "\n".join(local) + "\n")
        return server

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    async def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [TURNSERVER, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnserver exited:\n{self.log_text()}")
            if await asyncio.to_thread(self._answers_stun):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"turnserver did not start:\n{self.log_text()}")

    def _answers_stun(self) -> bool:
        """Ready means ready to answer: a STUN Binding request on the UDP
        listener gets its response (coturn logs "listener opened" for TCP
        before its UDP listener and its auth threads are up)."""
        transaction = os.urandom(12)
        request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + transaction
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.2)
            try:
                probe.sendto(request, ("127.0.0.1", self.port))
                response = probe.recv(1500)
            except OSError:  # refused (not listening yet) or no answer in time
                return False
        return response[:2] == b"\x01\x01" and response[8:20] == transaction

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
