"""The weak-link emulation tools measure what they claim to emulate.

The user-space relay (tests/helpers/udp_relay.py) is driven with plain UDP
on loopback: a paced sender, the relay, and a receiver that timestamps every
datagram. The tbf link (tests/helpers/netns_link.py) needs root, ``ip`` and
``tc``, and is skipped otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.netns_link import NetnsLink, netns_available, netns_link
from tests.helpers.udp_relay import LinkSettings, UdpImpairmentRelay

_PKT = struct.Struct("!BId")  # first byte (SRTP-looking or not), sequence, send time


class Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, int, int, float]] = []  # (at, seq, size, sent)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):  # a stalled loop must not drop
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        _first, seq, sent = _PKT.unpack_from(data)
        self.arrivals.append((asyncio.get_running_loop().time(), seq, len(data), sent))

    @property
    def addr(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return (str(host), int(port))

    def rate_bps(self, start: float, end: float) -> float:
        """Payload bit rate of what arrived in [start, end) (loop time)."""
        size = sum(n for at, _s, n, _t in self.arrivals if start <= at < end)
        return size * 8 / (end - start)


async def udp_endpoint() -> tuple[asyncio.DatagramTransport, Receiver]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    return transport, protocol


async def send_paced(
    transport: asyncio.DatagramTransport,
    to: tuple[str, int],
    rate_bps: float,
    seconds: float,
    size: int = 1000,
    first_byte: int = 0x80,
    first_seq: int = 0,
) -> int:
    """Offer ``rate_bps`` of ``size``-byte datagrams for ``seconds``; returns how many."""
    loop = asyncio.get_running_loop()
    interval = size * 8 / rate_bps
    count = int(seconds / interval)
    start = loop.time()
    pad = b"\x00" * (size - _PKT.size)
    for i in range(count):
        delay = start + i * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        transport.sendto(_PKT.pack(first_byte, first_seq + i, loop.time()) + pad, to)
    return count


class LoopMonitor:
    """How late this event loop fires timers: a busy machine stalls it, and every
    wall-clock bound below gets that much slack (the relay cannot beat its own loop)."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, loop.time() - start - self.period))

    @property
    def max_lag_ms(self) -> float:
        return max(self.lags, default=0.0) * 1000

    def lost_s(self, covered_s: float) -> float:
        """Stall time beyond what a full bucket covers: capacity the link could not use."""
        return sum(max(0.0, lag - covered_s) for lag in self.lags)


async def drained(relay: UdpImpairmentRelay, receiver: Receiver, timeout: float = 3.0) -> None:
    """Wait until the relay holds nothing and the receiver has read all it delivered."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if relay.queued() == (0, 0) and len(receiver.arrivals) == relay.counters.down.delivered:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"relay not drained: {relay.queued()} {relay.counters.down}")


async def relay_between(
    down: LinkSettings | None = None, up: LinkSettings | None = None, seed: int = 3
) -> tuple[UdpImpairmentRelay, asyncio.DatagramTransport, Receiver]:
    """A relay whose downlink delivers to a fresh receiver; returns (relay, sender, receiver)."""
    relay = UdpImpairmentRelay(down=down, up=up, seed=seed)
    await relay.start()
    sender, _ = await udp_endpoint()
    _, receiver = await udp_endpoint()
    relay.client_addr = receiver.addr  # the "client" that the downlink serves
    return relay, sender, receiver


async def test_rate_cap_holds_throughput_and_bounds_queue_delay() -> None:
    cap, queue_ms = 250_000, 100.0
    relay, sender, receiver = await relay_between(
        down=LinkSettings(rate_bps=cap, burst_bytes=3000, queue_ms=queue_ms)
    )
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with LoopMonitor() as monitor:
            offered = await send_paced(sender, relay.server_side_addr, 1_000_000, 3.0)
        await drained(relay, receiver)
        # steady state: after the initial bucket is spent, before the sender stops
        measured = receiver.rate_bps(t0 + 0.5, t0 + 3.0)
        usable = 1 - monitor.lost_s(3000 * 8 / cap) / 2.5  # 1.0 unless the loop stalled
        assert 0.9 * cap * usable <= measured <= 1.1 * cap, f"{measured:.0f} bit/s, cap {cap}"
        c = relay.counters.down
        assert c.packets == offered
        assert c.dropped_queue > offered / 2, c  # three quarters of the offer cannot fit
        assert c.delivered == len(receiver.arrivals) == offered - c.dropped_queue
        # the queue filled up to its limit (3,125 bytes: 100 ms at 250 kbit/s), never beyond
        assert 2000 < c.max_queue_bytes <= cap / 8 * queue_ms / 1000, c
        # so packets waited up to queue_ms, and no longer
        slack = 10 + monitor.max_lag_ms
        delays_ms = [(at - sent) * 1000 for at, _s, _n, sent in receiver.arrivals]
        assert 0.6 * queue_ms <= c.max_queue_delay_ms <= queue_ms + slack, (c, slack)
        assert max(delays_ms) <= queue_ms + slack, (max(delays_ms), slack)
        assert [seq for _a, seq, _n, _t in receiver.arrivals] == sorted(
            seq for _a, seq, _n, _t in receiver.arrivals
        )
    finally:
        relay.close()
        sender.close()


async def test_lifting_the_cap_mid_stream_restores_full_rate() -> None:
    relay, sender, receiver = await relay_between(
        down=LinkSettings(rate_bps=250_000, burst_bytes=3000, queue_ms=200)
    )
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with LoopMonitor() as monitor:
            sending = asyncio.ensure_future(
                send_paced(sender, relay.server_side_addr, 1_000_000, 2.0)
            )
            await asyncio.sleep(1.0)
            assert relay.queued()[0] > 0, "the capped queue should hold packets"
            dropped_while_capped = relay.counters.down.dropped_queue
            assert dropped_while_capped > 0
            settings = relay.set_down(rate_bps=None)
            assert settings.rate_bps is None and settings.queue_ms == 200  # the rest is kept
            assert relay.queued() == (0, 0), "lifting the cap releases the queue at once"
            await sending
        await drained(relay, receiver)
        before = receiver.rate_bps(t0 + 0.3, t0 + 0.9)
        after = receiver.rate_bps(t0 + 1.2, t0 + 2.0)
        usable = 1 - monitor.lost_s(3000 * 8 / 250_000) / 0.6  # 1.0 unless the loop stalled
        assert 0.85 * 250_000 * usable <= before <= 1.15 * 250_000, before
        # (a stall can push up to its length of sending past the window's end)
        assert after >= 1_000_000 * (0.9 - monitor.max_lag_ms / 1000 / 0.8), after
        assert relay.counters.down.dropped_queue == dropped_while_capped
    finally:
        relay.close()
        sender.close()


@pytest.mark.parametrize("rate_bps", [None, 2_000_000], ids=["delay-only", "with-rate-cap"])
async def test_delay_and_jitter_keep_packet_order(rate_bps: float | None) -> None:
    delay_ms, jitter_ms = 30.0, 20.0
    relay, sender, receiver = await relay_between(
        down=LinkSettings(
            rate_bps=rate_bps,
            burst_bytes=5000,
            queue_ms=200,
            delay_ms=delay_ms,
            jitter_ms=jitter_ms,
        )
    )
    try:
        # 500 pkt/s of 500 bytes (2 Mbit/s): a packet every 2 ms, so a 40 ms jitter
        # range would reorder dozens of them if departures were independent
        async with LoopMonitor() as monitor:
            sent = await send_paced(sender, relay.server_side_addr, 2_000_000, 0.6, size=500)
            await drained(relay, receiver)
        seqs = [seq for _a, seq, _n, _t in receiver.arrivals]
        assert seqs == sorted(seqs), "packets must arrive in the order sent"
        assert len(seqs) == sent == relay.counters.down.delivered, "and none lost"
        delays = [(at - t) * 1000 for at, _s, _n, t in receiver.arrivals]
        assert min(delays) >= delay_ms - jitter_ms - 1, min(delays)
        slack = 5 + monitor.max_lag_ms
        assert delay_ms - 5 <= statistics.mean(delays) <= delay_ms + jitter_ms + slack, delays
        assert statistics.pstdev(delays) > 2, "the jitter should show"
        assert relay.counters.down.dropped_queue == 0
    finally:
        relay.close()
        sender.close()


async def test_loss_hits_only_srtp_but_the_cap_hits_every_datagram() -> None:
    relay, sender, receiver = await relay_between(down=LinkSettings(loss=1.0))
    try:
        to = relay.server_side_addr
        await send_paced(sender, to, 800_000, 0.1, size=200, first_byte=0x80)  # SRTP-like
        await send_paced(sender, to, 800_000, 0.1, size=200, first_byte=0x00, first_seq=1000)
        await asyncio.sleep(0.05)
        c = relay.counters.down
        assert c.dropped_loss == 50 and relay.counters.down_dropped == 50  # old name kept
        assert [s for _a, s, _n, _t in receiver.arrivals] == list(range(1000, 1050))  # STUN-like
        # now a tight cap with no queue: STUN-like datagrams are not exempt
        relay.set_down(loss=0.0, rate_bps=100_000, burst_bytes=1500, queue_ms=0)
        for i in range(10):
            sender.sendto(_PKT.pack(0x00, 2000 + i, 0.0) + b"\x00" * 987, to)
        await asyncio.sleep(0.05)
        assert c.dropped_queue == 9  # one 1,000-byte datagram fits the 1,500-byte bucket
    finally:
        relay.close()
        sender.close()


def test_link_settings_reject_a_bucket_smaller_than_a_packet() -> None:
    with pytest.raises(ValueError, match="burst_bytes"):
        LinkSettings(rate_bps=100_000, burst_bytes=1000)
    with pytest.raises(ValueError, match="rate_bps"):
        LinkSettings(rate_bps=0)


# --------------------------------------------------------------------------
# tbf in a network namespace
# --------------------------------------------------------------------------

SENDER = """
import socket, sys, time
host, port, rate, seconds, size = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
    float(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
interval, payload = size * 8 / rate, b"x" * size
start = time.monotonic()
for i in range(int(seconds / interval)):
    delay = start + i * interval - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    try:
        s.sendto(payload, (host, port))
    except OSError:  # the qdisc is full: a real app would see the same
        pass
"""


def _recv_rates(sock_port: int, link: NetnsLink, phases: list[tuple[float, float]]) -> list[float]:
    """Receive on the root side while the namespace sends; payload bit/s per (start, end)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((link.root_addr, sock_port))
    sock.settimeout(0.2)
    arrivals: list[tuple[float, int]] = []
    end = max(e for _s, e in phases) + 0.3
    t0 = time.monotonic()
    while time.monotonic() - t0 < end:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        arrivals.append((time.monotonic() - t0, len(data)))
    sock.close()
    return [
        sum(n for at, n in arrivals if start <= at < stop) * 8 / (stop - start)
        for start, stop in phases
    ]


@pytest.mark.skipif(not netns_available()[0], reason=netns_available()[1])
def test_tbf_in_a_namespace_caps_udp_and_changes_at_runtime() -> None:
    import threading  # noqa: PLC0415

    with netns_link(ns_rate_bps=500_000) as link:
        name, root_if = link.ns_name, link.root_if
        port = 40999
        result: list[float] = []
        phases = [(0.6, 2.5), (3.2, 4.8)]
        receiver = threading.Thread(
            target=lambda: result.extend(_recv_rates(port, link, phases)), daemon=True
        )
        receiver.start()
        time.sleep(0.1)
        # 2 Mbit/s offered from inside the namespace for 5 s
        proc = link.popen(
            [sys.executable, "-c", SENDER, link.root_addr, str(port), "2000000", "4.9", "1000"]
        )
        time.sleep(3.0)
        link.set_rate("ns", 1_000_000)  # tc qdisc change, mid-stream
        proc.wait(timeout=10)
        receiver.join(timeout=10)
        first, second = result
        # tbf counts link-layer bytes (payload + 28 UDP/IP + 14 Ethernet)
        payload_share = 1000 / 1042
        assert abs(first - 500_000 * payload_share) <= 0.15 * 500_000, first
        assert abs(second - 1_000_000 * payload_share) <= 0.15 * 1_000_000, second
        assert "tbf" in link.qdisc("ns")
    # everything is gone after the context
    assert (
        name
        not in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=False
        ).stdout
    )
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False).stdout
    assert root_if not in links
    addrs = subprocess.run(
        ["ip", "-o", "-4", "addr"], capture_output=True, text=True, check=False
    ).stdout
    assert link.root_addr not in addrs


# --------------------------------------------------------------------------
# the weak-link benchmark, end to end (relay link: runs without root)
# --------------------------------------------------------------------------


async def test_weak_link_benchmark_smoke_run_writes_a_report(tmp_path: Path) -> None:
    from benchmarks.weak_link import RateRun, WeakLinkScenario, run_weak_link  # noqa: PLC0415
    from benchmarks.weak_link_report import write_weak_link_report  # noqa: PLC0415

    scenario = dataclasses.replace(WeakLinkScenario.load(), seconds=8.0, link="relay")
    runs: list[RateRun] = []
    await run_weak_link(scenario, [2000], "relay", runs)
    paths = write_weak_link_report(scenario, runs, tmp_path)
    document = json.loads(paths["json"].read_text())
    (row,) = document["results"]
    assert row["rate_kbps"] == 2000 and row["link"] == "relay" and row["error"] is None
    sub = document["runs"][0]["subscriber"]
    # the subscriber joined, got audio and video through the relay, and answered like a receiver
    assert sub["first_video_s"] is not None and row["frames"] > 20
    assert row["audio_loss"] is not None and row["audio_loss"] < 0.05
    assert sub["rembs"], "the subscriber should send REMB"
    assert document["runs"][0]["link_stats"]["relay"]["delivered"] > 100
    assert row["server_cpu_share"] > 0
    assert "| 2000 |" in paths["markdown"].read_text()
    assert paths["timeline"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
