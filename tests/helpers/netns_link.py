"""A real, rate-capped link: a network namespace joined to the root one by a veth pair.

    with netns_link(root_rate_bps=250_000) as link:   # cap root -> namespace
        proc = link.popen([sys.executable, "-m", "some.client", link.root_addr])
        link.set_rate("root", None)                  # lift the cap mid-call
        link.set_rate("ns", 500_000)                 # cap namespace -> root too

The namespace gets ``lo`` and one veth end; addresses come from a /30 of
10.250.0.0/16 that no interface here uses yet (``10.250.X.1`` on the root
side, ``10.250.X.2`` inside). Rate caps are ``tbf`` on the egress of either
end (``root`` caps what the namespace receives, ``ns`` what it sends), set
and changed with ``tc qdisc replace`` and removed with ``tc qdisc del``.
``netem`` is not available in this kernel: loss, delay and jitter belong to
the user-space relay (tests/helpers/udp_relay.py).

Everything is removed on exit, even after an exception: the processes
started through :meth:`NetnsLink.popen` (by pid), the veth pair, the
namespace. Names carry the creating pid (``dclink-<pid>-<X>``), so
:func:`remove_stale` can clear what a killed run left behind without
touching anything else.

Needs root plus ``ip`` and ``tc``: :func:`netns_available` says whether and
why not; :func:`skip_unless_available` turns that into ``pytest.skip``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Side = Literal["root", "ns"]
PREFIX = "dclink"
ETHERNET_MTU_FRAME = 1514  # tbf's burst must exceed the largest frame or it drops them all


class NetnsError(RuntimeError):
    pass


def netns_available() -> tuple[bool, str]:
    """(True, "") when this process can create namespaces and tbf qdiscs, else (False, why)."""
    if os.name != "posix" or os.geteuid() != 0:
        return False, "needs root to create a network namespace and veth pair"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return False, f"needs the '{tool}' command (iproute2)"
    return True, ""


def skip_unless_available() -> None:
    """``pytest.skip`` with the reason when namespaces cannot be used here."""
    ok, why = netns_available()
    if not ok:
        import pytest  # noqa: PLC0415 - only tests call this

        pytest.skip(why)


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def default_burst(rate_bps: float) -> int:
    """A tbf bucket of ~5 ms at the rate, never smaller than one full Ethernet frame."""
    return max(ETHERNET_MTU_FRAME + 86, int(rate_bps / 8 * 0.005))


def _used_third_octets() -> set[int]:
    out = _run(["ip", "-o", "-4", "addr", "show"]).stdout
    return {int(m.group(1)) for m in re.finditer(r"inet 10\.250\.(\d+)\.", out)}


def remove_stale() -> list[str]:
    """Delete ``dclink-<pid>-*`` namespaces (and their veth) whose creator has exited."""
    removed = []
    for line in _run(["ip", "netns", "list"]).stdout.splitlines():
        name = line.split(" ", 1)[0]
        m = re.fullmatch(rf"{PREFIX}-(\d+)-(\d+)", name)
        if m is None or os.path.exists(f"/proc/{m.group(1)}"):
            continue
        _run(["ip", "link", "del", f"dc{m.group(2)}r{int(m.group(1)) % 100000}"], check=False)
        _run(["ip", "netns", "del", name], check=False)
        removed.append(name)
    return removed


@dataclass
class NetnsLink:
    third_octet: int
    ns_name: str = ""
    root_if: str = ""
    ns_if: str = ""
    rates: dict[str, float | None] = field(default_factory=lambda: {"root": None, "ns": None})
    _procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    _created: bool = False

    def __post_init__(self) -> None:
        pid = os.getpid()
        self.ns_name = self.ns_name or f"{PREFIX}-{pid}-{self.third_octet}"
        self.root_if = self.root_if or f"dc{self.third_octet}r{pid % 100000}"
        self.ns_if = self.ns_if or f"dc{self.third_octet}n{pid % 100000}"

    @property
    def root_addr(self) -> str:
        return f"10.250.{self.third_octet}.1"

    @property
    def ns_addr(self) -> str:
        return f"10.250.{self.third_octet}.2"

    # -- lifecycle -----------------------------------------------------------------------

    def create(self) -> None:
        self._created = True  # from here on, close() cleans up whatever exists
        n, r, i = self.ns_name, self.root_if, self.ns_if
        _run(["ip", "netns", "add", n])
        _run(["ip", "link", "add", r, "type", "veth", "peer", "name", i, "netns", n])
        _run(["ip", "addr", "add", f"{self.root_addr}/30", "dev", r])
        _run(["ip", "link", "set", r, "up"])
        _run(["ip", "-n", n, "addr", "add", f"{self.ns_addr}/30", "dev", i])
        _run(["ip", "-n", n, "link", "set", i, "up"])
        _run(["ip", "-n", n, "link", "set", "lo", "up"])

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(3)
        self._procs.clear()
        if self._created:
            _run(["ip", "link", "del", self.root_if], check=False)  # removes both ends
            _run(["ip", "netns", "del", self.ns_name], check=False)
            self._created = False

    # -- rate caps -----------------------------------------------------------------------

    def _tc(self, side: Side) -> list[str]:
        if side == "root":
            return ["tc"]
        return ["tc", "-n", self.ns_name]

    def _dev(self, side: Side) -> str:
        return self.root_if if side == "root" else self.ns_if

    def set_rate(
        self,
        side: Side,
        rate_bps: float | None,
        burst_bytes: int | None = None,
        latency_ms: float = 100.0,
    ) -> None:
        """Cap the egress of one end with tbf (``None`` removes the cap).

        ``root`` caps root -> namespace (the namespace's downlink), ``ns`` the
        other way. Queue delay is at most about ``latency_ms + burst/rate``.
        """
        dev = self._dev(side)
        if rate_bps is None:
            _run([*self._tc(side), "qdisc", "del", "dev", dev, "root"], check=False)
        else:
            burst = burst_bytes if burst_bytes is not None else default_burst(rate_bps)
            if burst <= ETHERNET_MTU_FRAME:
                raise ValueError(f"tbf burst must exceed one frame ({ETHERNET_MTU_FRAME} bytes)")
            _run(
                [
                    *self._tc(side),
                    "qdisc",
                    "replace",
                    "dev",
                    dev,
                    "root",
                    "tbf",
                    "rate",
                    f"{int(rate_bps)}bit",
                    "burst",
                    str(burst),
                    "latency",
                    f"{latency_ms:g}ms",
                ]
            )
        self.rates[side] = rate_bps

    def qdisc(self, side: Side) -> str:
        """``tc -s qdisc show`` for one end (statistics included)."""
        return _run([*self._tc(side), "-s", "qdisc", "show", "dev", self._dev(side)]).stdout

    def qdisc_drops(self, side: Side) -> int:
        m = re.search(r"dropped (\d+)", self.qdisc(side))
        return int(m.group(1)) if m else 0

    # -- processes inside ----------------------------------------------------------------

    def exec_args(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns_name, *argv]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process inside the namespace; it is stopped (by pid) on close."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self.exec_args(argv), **kwargs)
        self._procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.exec_args(argv), capture_output=True, text=True, timeout=timeout, check=False
        )


@contextlib.contextmanager
def netns_link(
    root_rate_bps: float | None = None,
    ns_rate_bps: float | None = None,
    latency_ms: float = 100.0,
    third_octet: int | None = None,
) -> Iterator[NetnsLink]:
    """A fresh namespace + veth pair with optional tbf caps, removed on exit."""
    ok, why = netns_available()
    if not ok:
        raise NetnsError(why)
    remove_stale()
    if third_octet is None:
        used = _used_third_octets()
        start = os.getpid() % 200 + 20
        third_octet = next(
            (x for x in [*range(start, 255), *range(1, start)] if x not in used), None
        )
        if third_octet is None:
            raise NetnsError("no free 10.250.X.0/30 block")
    link = NetnsLink(third_octet)
    try:
        link.create()
        if root_rate_bps is not None:
            link.set_rate("root", root_rate_bps, latency_ms=latency_ms)
        if ns_rate_bps is not None:
            link.set_rate("ns", ns_rate_bps, latency_ms=latency_ms)
        yield link
    finally:
        link.close()
