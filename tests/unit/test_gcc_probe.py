"""ProbeTracker (sfu/gcc_probe.py): what one probe cluster proves."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sfu.gcc import GccConfig
from sfu.gcc_probe import ProbeOutcome, ProbeTracker


@dataclass(frozen=True)
class Result:
    seq: int
    send_time: float
    size: int
    arrival_time: float | None


def run_cluster(target: float, sizes: int, send_gap: float, arrival_gap: float) -> ProbeTracker:
    tracker = ProbeTracker(GccConfig())
    tracker.start(1, target, 0.0)
    for seq in range(sizes):
        tracker.on_sent(1, seq)
    tracker.end(1)
    for seq in range(sizes):
        tracker.on_result(Result(seq, seq * send_gap, 250, 0.05 + seq * arrival_gap))
    tracker.decide(1.0)
    return tracker


def test_a_probe_sent_in_a_burst_proves_no_more_than_its_target() -> None:
    """8 x 250 bytes sent 5 ms apart (~400 kbit/s) for a 65 kbit/s probe, let through as
    fast by a shaper's burst allowance: before, the result was 400 kbit/s."""
    tracker = run_cluster(65_000, 8, 0.005, 0.005)
    assert tracker.outcome(1) is ProbeOutcome.SUCCEEDED
    assert tracker.result(1) == 65_000


def test_a_clean_probe_at_its_target_measures_its_rate() -> None:
    tracker = run_cluster(200_000, 10, 0.01, 0.01)  # 250 bytes / 10 ms = 200 kbit/s
    assert tracker.outcome(1) is ProbeOutcome.SUCCEEDED
    assert tracker.result(1) == pytest.approx(200_000)


def test_a_saturated_probe_measures_what_arrived() -> None:
    tracker = run_cluster(200_000, 10, 0.01, 0.04)  # arrives at a quarter of the rate
    assert tracker.outcome(1) is ProbeOutcome.FAILED
    result = tracker.result(1)
    assert result is not None and 45_000 < result < 55_000
