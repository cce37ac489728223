"""What ``digiclinic serve`` prints at start-up: where to open it, how to try it.

The addresses are ones a browser can open: a wildcard bind address
(``0.0.0.0``, ``::``) is shown as ``localhost``, with a note that the server
listens on all interfaces. The commands are written as the user types them
in this shell: ``.venv/bin/digiclinic`` when the running interpreter is the
virtualenv ``./.venv`` of the current directory (how ``scripts/run.sh`` and
the README run it), the bare command when the virtualenv's ``bin`` is on
``PATH`` (activated, or the Docker image), and its full path otherwise.

Nothing secret is ever printed: no token, no development secret, no admin
token (only the ``--config`` path, which the ``token`` command needs to find
the same development secret).
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from signaling.config import Config

WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def browsable_host(host: str) -> str:
    """The host part of a URL a browser on this machine can open for bind address ``host``."""
    if host in WILDCARD_HOSTS:
        return "localhost"
    bare = host.strip("[]")
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return host  # a name
    return f"[{bare}]" if address.version == 6 else bare


@dataclass(frozen=True, slots=True)
class Commands:
    """How the user runs this installation's commands from the current directory."""

    bin_dir: str  # "" (on PATH), ".venv/bin/" (relative to cwd) or an absolute path + "/"
    in_venv: bool

    @property
    def digiclinic(self) -> str:
        return shlex.quote(f"{self.bin_dir}digiclinic")

    @property
    def python(self) -> str:
        if self.in_venv:
            return shlex.quote(f"{self.bin_dir}python")
        return "python3"  # no venv: the system's interpreter (Debian has no `python`)


def commands_here(
    cwd: Path | None = None,
    prefix: str | None = None,
    base_prefix: str | None = None,
    path_env: str | None = None,
) -> Commands:
    """The running interpreter's commands as typed from ``cwd`` (defaults: this process)."""
    cwd = Path.cwd() if cwd is None else cwd
    prefix = sys.prefix if prefix is None else prefix
    base_prefix = sys.base_prefix if base_prefix is None else base_prefix
    path_env = os.environ.get("PATH", "") if path_env is None else path_env
    if prefix == base_prefix:  # not a virtualenv
        return Commands("", in_venv=False)
    venv = Path(prefix).resolve()
    here = cwd.resolve()
    if venv.is_relative_to(here):  # ./.venv (or another venv below the current directory)
        return Commands(f"{venv.relative_to(here) / 'bin'}/", in_venv=True)
    bin_dir = venv / "bin"
    on_path = any(Path(entry).resolve() == bin_dir for entry in path_env.split(os.pathsep) if entry)
    return Commands("" if on_path else f"{bin_dir}/", in_venv=True)


def banner_lines(
    config: Config,
    *,
    scheme: str,
    port: int,
    config_path: str | None = None,
    commands: Commands | None = None,
) -> list[str]:
    """The start-up lines of a server listening on ``config.server.host``, ``port``."""
    commands = commands_here() if commands is None else commands
    host = config.server.host
    base = f"{scheme}://{browsable_host(host)}:{port}"
    where = base
    if host in WILDCARD_HOSTS:  # 0.0.0.0 is no address to open: this machine's name for it
        where = f"{base} (all interfaces: {host or '*'}, port {port})"
    lines = [
        f"digiclinic listening on {where}",
        f"  health:  {base}/healthz   metrics: {base}/metrics",
    ]
    if not config.auth.issuers:
        if config.server.demo:
            lines.append(
                f"  demo:    open {base}/ (patient, specialist and console, in several tabs)"
            )
        ws = f"{'wss' if scheme == 'https' else 'ws'}://{browsable_host(host)}:{port}/ws"
        config_flag = f" --config {shlex.quote(config_path)}" if config_path else ""
        lines += [
            f"  try it:  {commands.python} -m signaling.demo_call --url {ws}"
            "   (a scripted 3-party consult)",
            f"  tokens:  {commands.digiclinic}{config_flag} token"
            " --room demo --identity alice --role patient",
        ]
    return lines
