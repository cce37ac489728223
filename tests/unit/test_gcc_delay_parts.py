"""Unit tests for sfu/gcc_delay.py's parts on synthetic input: the trendline
detector, inter-arrival grouping, acked bitrate and queue delay (the whole
estimator on a simulated link: tests/unit/test_gcc.py)."""

from __future__ import annotations

import pytest

from sfu.gcc import GccConfig
from sfu.gcc_delay import (
    AckedBitrate,
    BandwidthUsage,
    GroupDelta,
    InterArrival,
    QueueDelay,
    TrendlineDetector,
)

CONFIG = GccConfig()


def feed(detector: TrendlineDetector, extra_ms: float, groups: int, t0: float = 0.0) -> float:
    """Groups 20 ms apart whose arrival spacing exceeds the send spacing by ``extra_ms``."""
    t = t0
    for _ in range(groups):
        t += 0.02 + extra_ms / 1000
        detector.update(GroupDelta(0.02, 0.02 + extra_ms / 1000, t))
    return t


def test_trendline_flat_delay_is_normal() -> None:
    detector = TrendlineDetector(CONFIG)
    feed(detector, 0.0, 100)
    assert detector.state is BandwidthUsage.NORMAL
    assert detector.trend == pytest.approx(0.0, abs=1e-9)


def test_trendline_rising_delay_is_overuse_and_falling_delay_underuse() -> None:
    detector = TrendlineDetector(CONFIG)
    t = feed(detector, 0.0, 30)
    states = []
    for _ in range(40):  # queue grows 2 ms per 20 ms group: 10 % over capacity
        t = feed(detector, 2.0, 1, t)
        states.append(detector.state)
    assert BandwidthUsage.OVERUSING in states
    first = states.index(BandwidthUsage.OVERUSING)
    assert first < 25  # measured: the 15th rising group (the smoothing lags)
    assert detector.trend == pytest.approx(0.1, rel=0.2)  # measured: 0.087
    t = feed(detector, -2.0, 40, t)
    assert detector.state is BandwidthUsage.UNDERUSING


def test_trendline_needs_a_sustained_rise() -> None:
    detector = TrendlineDetector(CONFIG)
    t = feed(detector, 0.0, 30)
    t = feed(detector, 30.0, 1, t)  # one late group (a spike), then flat again
    t = feed(detector, -30.0, 1, t)
    assert detector.state is not BandwidthUsage.OVERUSING
    feed(detector, 0.0, 30, t)
    assert detector.state is BandwidthUsage.NORMAL


def test_threshold_adapts_within_its_bounds() -> None:
    detector = TrendlineDetector(CONFIG)
    assert detector.threshold == CONFIG.threshold_initial_ms
    feed(detector, 0.0, 200)  # quiet link: the threshold sinks to its floor
    assert detector.threshold == pytest.approx(CONFIG.threshold_min_ms)


def test_inter_arrival_groups_packets_sent_within_5ms() -> None:
    arrival = InterArrival(CONFIG)
    deltas = []
    for group in range(4):
        for k in range(3):  # three packets 2 ms apart: one group
            send = group * 0.05 + 0.002 * k
            delta = arrival.add(send, 10 + send + 0.03 * group)
            if delta is not None:
                deltas.append(delta)
    # groups 0/1 and 1/2 complete (group 3 is still open)
    assert len(deltas) == 2
    assert deltas[0].send_delta == pytest.approx(0.05)
    assert deltas[0].arrival_delta == pytest.approx(0.08)


def test_inter_arrival_joins_a_burst_that_caught_up() -> None:
    arrival = InterArrival(CONFIG)
    assert arrival.add(0.0, 1.0) is None
    # sent 10 ms later but arrived 1 ms after: queued behind the first, same burst
    assert arrival.add(0.010, 1.001) is None
    assert arrival.add(0.020, 1.002) is None
    assert arrival.add(0.100, 1.100) is None  # a new group; the first one is the reference
    delta = arrival.add(0.200, 1.200)
    assert delta is not None and delta.send_delta == pytest.approx(0.08)


def test_inter_arrival_ignores_inverted_groups_and_resets_after_three() -> None:
    arrival = InterArrival(CONFIG)
    assert arrival.add(0.00, 5.00) is None
    assert arrival.add(0.02, 5.02) is None
    assert arrival.add(0.04, 5.04) is not None  # group 0.02 vs group 0.00
    # the group sent at 0.04 ends with a packet that arrived before the group at 0.02
    assert arrival.add(0.042, 5.01) is None
    assert arrival.add(0.06, 5.06) is None  # that group is inverted: ignored
    delta = arrival.add(0.08, 5.08)
    assert delta is not None and delta.send_delta == pytest.approx(0.04)  # 0.06 vs 0.02
    # the receiver's clock goes back by 1 s: inverted groups, a fresh start after three
    got = [arrival.add(0.10 + 0.02 * i, 4.10 + 0.02 * i) for i in range(7)]
    assert got[:5] == [None] * 5
    assert got[5] is not None and got[5].arrival_delta == pytest.approx(0.02)


def test_inter_arrival_resets_on_a_clock_jump() -> None:
    arrival = InterArrival(CONFIG)
    for i in range(4):
        arrival.add(0.02 * i, 1.0 + 0.02 * i)
    arrival.add(0.08, 3600.0)  # completes the group at 0.06; this one is an hour late
    assert arrival.add(0.10, 3600.02) is None  # the offset jumped: reset
    assert arrival.add(0.12, 3600.04) is None
    delta = arrival.add(0.14, 3600.06)
    assert delta is not None and delta.arrival_delta == pytest.approx(0.02)
    assert arrival.add(-600.0, 3600.08) is None  # the sender's clock went back: reset
    assert arrival.add(-599.98, 3600.10) is None
    assert arrival.add(-599.96, 3600.12) is not None


def test_acked_bitrate_and_queue_delay() -> None:
    acked = AckedBitrate(CONFIG)
    queue = QueueDelay(CONFIG)
    for i in range(100):  # 1000 B every 10 ms: 800 kbit/s; the queue grows 1 ms per packet
        t = 0.01 * i
        acked.add(50 + t + 0.001 * i, 1000)
        queue.add(t, 50 + t + 0.001 * i)
    assert acked.bps == pytest.approx(8000 / 0.011, rel=0.03)  # what arrives: 1000 B / 11 ms
    assert queue.seconds == pytest.approx(0.099)
    empty = AckedBitrate(CONFIG)
    empty.add(1.0, 1000)
    assert empty.bps is None  # less than one window seen
