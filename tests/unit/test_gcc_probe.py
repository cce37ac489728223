"""ProbeTracker (sfu/gcc_probe.py): when a probe cluster is decided."""

from __future__ import annotations

from dataclasses import dataclass

from sfu.gcc import GccConfig
from sfu.gcc_probe import ProbeOutcome, ProbeTracker


@dataclass(frozen=True)
class Result:
    seq: int
    send_time: float
    size: int
    arrival_time: float | None


def probed(packets: int, reported: int) -> ProbeTracker:
    """Cluster 1: ``packets`` packets of 250 bytes, 10 ms apart (200 kbit/s), seq 0..;
    feedback has reported the first ``reported`` of them, all arrived."""
    tracker = ProbeTracker(GccConfig())
    tracker.start(1, 200_000, 0.0)
    for seq in range(packets):
        tracker.on_sent(1, seq)
    tracker.end(1)
    for seq in range(reported):
        tracker.on_result(Result(seq, seq * 0.01, 250, 0.05 + seq * 0.01))
    tracker.decide(0.5)
    return tracker


def test_a_cluster_whose_last_feedback_was_lost_is_decided_once_feedback_moves_past() -> None:
    """A capped link just lifted: the feedback for the cluster's last packets is lost.
    Before, the probe stayed pending until its 3 s timeout and the next one waited behind
    it; now it is decided when feedback reports a packet sent after it."""
    tracker = probed(10, 8)  # the feedback with 8 and 9 never comes
    assert tracker.outcome(1) is ProbeOutcome.PENDING  # it may still come
    tracker.on_result(Result(12, 0.3, 120, 0.36))  # an audio packet sent after the probe
    tracker.decide(0.5)
    assert tracker.outcome(1) is ProbeOutcome.SUCCEEDED


def test_a_cluster_is_decided_when_all_its_packets_are_reported() -> None:
    assert probed(10, 10).outcome(1) is ProbeOutcome.SUCCEEDED


def test_feedback_from_inside_the_cluster_does_not_decide_it() -> None:
    assert probed(10, 5).outcome(1) is ProbeOutcome.PENDING
