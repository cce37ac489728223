"""Janus (Debian's ``janus`` package, VideoRoom) as the comparison server of the fan-out run.

Janus 1.1.2 gathers no ICE candidate on a loopback interface (its
``src/ice.c`` skips ``IFF_LOOPBACK``), so it runs in a network namespace the
benchmark creates for it, holding ``lo`` and a veth pair (both ends inside, one with a private
address, ``JANUS_ADDRESS``; this kernel has no dummy driver): everything sent to that address stays
inside the namespace, as loopback traffic does. The load-generator workers
of a Janus step enter the same namespace (``setns``, benchmarks/loadgen/
worker.py), so both servers are driven by the same processes over the same
kind of path; nothing leaves the machine.

Configured for the measurement only: the VideoRoom plugin and the WebSocket
transport, every other plugin, transport, event handler and logger off,
logging at warnings, no admin API. Rooms are created by the load generator
(``create``), as a hospital portal would through Janus's API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.server_process import terminate

JANUS_ADDRESS = "10.231.0.1"  # inside the namespace only
JANUS_INTERFACE = "dcjanus0"
PEER = "dcjanus1"
LIB_DIR = Path("/usr/lib/x86_64-linux-gnu/janus")
_namespaces = iter(range(1000))


def janus_available() -> tuple[bool, str]:
    """Whether a Janus step can run here, and why not."""
    if shutil.which("janus") is None:
        return False, "janus is not installed (Debian: apt-get install janus)"
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False, "a network namespace is needed (root and iproute2)"
    if not (LIB_DIR / "plugins" / "libjanus_videoroom.so").exists():
        return False, f"no VideoRoom plugin under {LIB_DIR}"
    return True, ""


def _disable_all_but(folder: Path, keep: str) -> str:
    names = sorted(p.name for p in folder.glob("*.so") if p.name != keep)
    return ",".join(names)


def write_config(directory: Path, ws_port: int) -> Path:
    """Janus's configuration folder for one run; returns the main file."""
    plugins = _disable_all_but(LIB_DIR / "plugins", "libjanus_videoroom.so")
    transports = _disable_all_but(LIB_DIR / "transports", "libjanus_websockets.so")
    events = _disable_all_but(LIB_DIR / "events", "")
    loggers = _disable_all_but(LIB_DIR / "loggers", "")
    main = directory / "janus.jcfg"
    main.write_text(
        f"""general: {{
    configs_folder = "{directory}"
    plugins_folder = "{LIB_DIR / "plugins"}"
    transports_folder = "{LIB_DIR / "transports"}"
    events_folder = "{LIB_DIR / "events"}"
    loggers_folder = "{LIB_DIR / "loggers"}"
    debug_level = 3
    session_timeout = 120
    server_name = "digiclinic-bench"
}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "{JANUS_INTERFACE}"
    ignore_mdns = true
}}
plugins: {{
    disable = "{plugins}"
}}
transports: {{
    disable = "{transports}"
}}
events: {{
    broadcast = false
    disable = "{events}"
}}
loggers: {{
    disable = "{loggers}"
}}
"""
    )
    (directory / "janus.transport.websockets.jcfg").write_text(
        f"""general: {{
    json = "compact"
    ws = true
    ws_port = {ws_port}
    ws_ip = "{JANUS_ADDRESS}"
    wss = false
}}
admin: {{
    admin_ws = false
    admin_wss = false
}}
"""
    )
    (directory / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    return main


class JanusProcess:
    """Janus in a network namespace of its own, with a throwaway configuration."""

    def __init__(self, ws_port: int = 8188) -> None:
        self.namespace = f"dcjanus-{os.getpid()}-{next(_namespaces)}"
        self.port = ws_port
        self._dir = tempfile.TemporaryDirectory(prefix="digiclinic-janus-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(self._dir.name) / "janus.log"

    @property
    def ws_url(self) -> str:
        return f"ws://{JANUS_ADDRESS}:{self.port}"

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []

    def _ip(self, *argv: str) -> None:
        subprocess.run(["ip", *argv], check=True, capture_output=True)

    def _make_namespace(self) -> None:
        ns = self.namespace
        self._ip("netns", "add", ns)
        self._ip("-n", ns, "link", "set", "lo", "up")
        self._ip("-n", ns, "link", "add", JANUS_INTERFACE, "type", "veth", "peer", "name", PEER)
        self._ip("-n", ns, "addr", "add", f"{JANUS_ADDRESS}/24", "dev", JANUS_INTERFACE)
        self._ip("-n", ns, "link", "set", JANUS_INTERFACE, "up")
        self._ip("-n", ns, "link", "set", PEER, "up")

    async def start(self, timeout: float = 20.0) -> None:
        ok, why = janus_available()
        if not ok:
            raise RuntimeError(why)
        self._make_namespace()
        config = write_config(Path(self._dir.name), self.port)
        log = self.log_path.open("wb")
        # ``ip netns exec`` enters the namespace and execs janus: the pid is Janus's own
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, "janus", "-C", str(config), "-o"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"janus exited: {self.log_tail()}")
            if self._listening():
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"janus did not answer within {timeout:.0f} s: {self.log_tail()}")

    def _listening(self) -> bool:
        """Janus's WebSocket port accepts a connection (tried from inside its namespace)."""
        probe = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.namespace,
                "bash",
                "-c",
                f"echo > /dev/tcp/{self.address}",
            ],
            check=False,
            capture_output=True,
        )
        return probe.returncode == 0

    @property
    def address(self) -> str:
        return f"{JANUS_ADDRESS}/{self.port}"

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
        subprocess.run(["ip", "netns", "del", self.namespace], check=False, capture_output=True)
        self._dir.cleanup()
