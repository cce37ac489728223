"""``digiclinic serve --workers [N]``: one machine, many cores.

A Python process uses one core, so the supervisor starts N worker processes
(``--workers`` alone: one per core), each a full node of the Redis cluster:

- every worker listens on the shared public port with SO_REUSEPORT (the
  kernel spreads new connections over them: one public signalling port),
- and on a port of its own, ``--worker-port-base`` + index (default
  ``server.port`` + 1 + index), which is the URL redirects send a client to
  when its room lives on that worker (``cluster.public_url`` may name it
  with ``{port}``),
- media: with ``media.udp_mode: one_port``, worker i carries all its media on
  ``media.udp_port + i`` (docs/cluster.md says why not SO_REUSEPORT); with
  ``port_range``, each worker binds its own UDP sockets inside the shared
  ``media.udp_port_min..max`` range (a port already taken is skipped).

The supervisor forwards SIGTERM (drain then exit), SIGINT (stop) and SIGUSR1
(drain) to every worker, and restarts a worker that dies unexpectedly (its
rooms are re-placed on the next join; clients reconnect by themselves).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from signaling.config import Config
from signaling.tokens import dev_secret

RESTART_LIMIT = 5  # deaths within RESTART_WINDOW seconds before giving up
RESTART_WINDOW = 60.0


def worker_url(config: Config, port: int) -> str:
    template = config.cluster.public_url
    if template:
        if "{port}" not in template:
            raise ValueError("with --workers, cluster.public_url must contain {port}")
        return template.replace("{port}", str(port))
    scheme = "wss" if config.server.tls_cert else "ws"
    return f"{scheme}://{config.server.host}:{port}/ws"


def use_worker_media_port(config: Config, index: int) -> None:
    """Worker ``index`` carries its media on ``media.udp_port + index`` (one_port; 0 stays 0)."""
    if config.media.udp_mode == "one_port" and config.media.udp_port:
        config.media.udp_port += index


def worker_command(args: argparse.Namespace, index: int, port: int) -> list[str]:
    command = [sys.executable, "-m", "signaling"]
    if args.config:
        command += ["--config", args.config]
    command += ["serve", "--worker-index", str(index), "--worker-port", str(port)]
    if args.host:
        command += ["--host", args.host]
    if args.port:
        command += ["--port", str(args.port)]
    for address in args.ice_address or []:
        command += ["--ice-address", address]
    if args.log_level:
        command += ["--log-level", args.log_level]
    return command


class Supervisor:
    def __init__(self, args: argparse.Namespace, config: Config, count: int) -> None:
        self.args = args
        self.config = config
        self.count = count
        self.base_port = args.worker_port_base or config.server.port + 1
        self.env = dict(os.environ)
        if not config.cluster.secret:  # the workers must share one
            self.env["DIGICLINIC_CLUSTER__SECRET"] = secrets.token_urlsafe(32)
        self.base_id = config.cluster.node_id or socket.gethostname()
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping: signal.Signals | None = None
        self.deaths: list[float] = []

    def _spawn(self, index: int) -> None:
        port = self.base_port + index
        env = {
            **self.env,
            "DIGICLINIC_CLUSTER__NODE_ID": f"{self.base_id}-w{index}",
            "DIGICLINIC_CLUSTER__PUBLIC_URL": worker_url(self.config, port),
        }
        self.procs[index] = subprocess.Popen(worker_command(self.args, index, port), env=env)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        if sig is not signal.SIGUSR1:
            self.stopping = sig
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(sig)

    def run(self) -> int:
        if not self.config.auth.issuers:
            dev_secret(self.config.auth)  # created once, before the workers race for it
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(sig, self._forward)
        for index in range(self.count):
            self._spawn(index)
        print(
            f"digiclinic: {self.count} workers on port {self.config.server.port} "
            f"(own ports {self.base_port}-{self.base_port + self.count - 1})",
            flush=True,
        )
        status = 0
        while self.procs:
            time.sleep(0.2)
            for index, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                del self.procs[index]
                if self.stopping is not None:
                    continue
                now = time.monotonic()
                self.deaths = [t for t in self.deaths if now - t < RESTART_WINDOW] + [now]
                if len(self.deaths) > RESTART_LIMIT:
                    print("error: workers keep dying; stopping", file=sys.stderr, flush=True)
                    self._forward(signal.SIGTERM, None)
                    status = 1
                    continue
                print(f"worker {index} exited ({code}); restarting", file=sys.stderr, flush=True)
                self._spawn(index)
        return status


def run_workers(args: argparse.Namespace, config: Config, count: int) -> int:
    if not config.cluster.redis_url:
        print(
            "error: --workers needs cluster.redis_url (the workers coordinate through Redis)",
            file=sys.stderr,
        )
        return 2
    supervisor = Supervisor(args, config, count)
    try:
        worker_url(config, supervisor.base_port)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return supervisor.run()
