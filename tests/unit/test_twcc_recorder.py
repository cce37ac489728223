"""Unit tests for sfu/twcc.py's TwccRecorder (what a receiver reports) and feedback interval."""

from __future__ import annotations

import math
import random

from sfu.twcc import (
    FEEDBACK_MAX_INTERVAL_S,
    FEEDBACK_MIN_INTERVAL_S,
    FEEDBACK_THIN_INTERVAL_S,
    THIN_UPLINK_BPS,
    TransportFeedback,
    TwccRecorder,
    feedback_interval,
)
from tests.unit.twcc_support import MEDIA, SENDER, T0, unpack

# --------------------------------------------------------------------------
# TwccRecorder
# --------------------------------------------------------------------------


def feedbacks(rec: TwccRecorder, now: int = T0) -> list[TransportFeedback]:
    return [unpack(p) for p in rec.build_feedback(SENDER, MEDIA, now)]


def reported(fbs: list[TransportFeedback]) -> list[tuple[int, int | None]]:
    return [p for fb in fbs for p in fb.packets]


def test_recorder_reports_received_and_lost_then_forgets() -> None:
    rec = TwccRecorder()
    assert rec.build_feedback(SENDER, MEDIA, T0) == []
    for seq in range(10, 20):
        if seq != 13:
            rec.on_packet(seq, T0 + 5000 * seq)
    pending_before = rec.has_pending
    fbs = feedbacks(rec)
    assert pending_before
    assert len(fbs) == 1
    fb = fbs[0]
    assert (fb.base_seq, fb.feedback_count) == (10, 0)
    assert fb.reference_time_us % 64_000 == 0
    assert fb.reference_time_us <= T0 + 50_000 < fb.reference_time_us + 64_000
    assert fb.packets == [(s, None if s == 13 else T0 + 5000 * s) for s in range(10, 20)]
    assert not rec.has_pending
    assert rec.build_feedback(SENDER, MEDIA, T0) == []
    rec.on_packet(13, T0 + 200_000)  # late: already reported lost
    assert rec.build_feedback(SENDER, MEDIA, T0) == []
    rec.on_packet(21, T0 + 210_000)
    fb = feedbacks(rec)[0]
    assert (fb.base_seq, fb.feedback_count) == (20, 1)
    assert fb.packets == [(20, None), (21, T0 + 210_000)]


def test_recorder_duplicates_keep_first_arrival() -> None:
    rec = TwccRecorder()
    rec.on_packet(5, T0)
    rec.on_packet(6, T0 + 1000)
    rec.on_packet(5, T0 + 9000)
    rec.on_packet(6, T0 + 9000)
    assert reported(feedbacks(rec)) == [(5, T0), (6, T0 + 1000)]


def test_recorder_reordering_within_window() -> None:
    rec = TwccRecorder()
    for seq, t in [(100, 0), (103, 3000), (101, 4000), (99, 5000), (102, 6000)]:
        rec.on_packet(seq, T0 + t)
    # nothing was reported yet when 99 arrived: the window moves back to it
    assert reported(feedbacks(rec)) == [
        (99, T0 + 5000),
        (100, T0),
        (101, T0 + 4000),
        (102, T0 + 6000),
        (103, T0 + 3000),
    ]


def test_recorder_unwraps_across_65535() -> None:
    rec = TwccRecorder()
    order = [65533, 65534, 0, 65535, 2, 1, 3]
    for i, seq in enumerate(order):
        rec.on_packet(seq, T0 + 1000 * i)
    fbs = feedbacks(rec)
    assert fbs[0].base_seq == 65533
    assert [s for s, _ in reported(fbs)] == [65533, 65534, 65535, 0, 1, 2, 3]
    assert dict(reported(fbs))[65535] == T0 + 3000
    for i in range(4, 10):
        rec.on_packet(i, T0 + 10_000 + i)
    rec.on_packet(65535, T0 + 20_000)  # very late, before the window: ignored
    fbs = feedbacks(rec)
    assert fbs[0].base_seq == 4
    assert [s for s, _ in reported(fbs)] == list(range(4, 10))


def test_recorder_splits_when_a_delta_does_not_fit() -> None:
    rec = TwccRecorder()
    rec.on_packet(1, T0)
    rec.on_packet(2, T0 + 1000)
    rec.on_packet(4, T0 + 9_000_000)  # 9 s later: more than 32767 x 250 us
    rec.on_packet(5, T0 + 9_001_000)
    fbs = feedbacks(rec)
    assert [fb.feedback_count for fb in fbs] == [0, 1]
    assert [fb.base_seq for fb in fbs] == [1, 4]
    assert fbs[1].reference_time_us > fbs[0].reference_time_us + 8_000_000
    assert reported(fbs) == [
        (1, T0),
        (2, T0 + 1000),
        (3, None),
        (4, T0 + 9_000_000),
        (5, T0 + 9_001_000),
    ]


def test_recorder_splits_on_size_and_status_count() -> None:
    rng = random.Random(3)
    rec = TwccRecorder(max_statuses=60_000)
    arrivals: dict[int, int] = {}
    t = T0
    for i in range(4000):
        seq = (60_000 + i) & 0xFFFF
        t += rng.randrange(0, 400_000) if i % 7 == 0 else rng.randrange(0, 2000)
        if rng.random() < 0.9:
            arrivals[seq] = t
            rec.on_packet(seq, t)
    packets = rec.build_feedback(SENDER, MEDIA, t)
    assert len(packets) >= 4
    assert all(len(p) <= 1200 for p in packets)
    assert max(len(p) for p in packets) > 1100  # they are filled, not cut early
    fbs = [unpack(p) for p in packets]
    assert [fb.feedback_count for fb in fbs] == list(range(len(fbs)))
    got = reported(fbs)
    first = min(arrivals, key=lambda s: (s - 60_000) & 0xFFFF)
    assert [s for s, _ in got] == [(first + i) & 0xFFFF for i in range(len(got))]
    for seq, when in got:
        if seq in arrivals:
            assert when is not None
            assert abs(when - arrivals[seq]) <= 125
        else:
            assert when is None

    rec = TwccRecorder(max_statuses=100)
    for i in range(250):
        rec.on_packet(i, T0 + 1000 * i)
    fbs = feedbacks(rec)
    assert [len(fb.packets) for fb in fbs] == [100, 100, 50]
    assert [fb.base_seq for fb in fbs] == [0, 100, 200]


def test_recorder_random_traffic() -> None:
    rng = random.Random(11)
    rec = TwccRecorder(max_packet_size=300, max_statuses=200)
    first_arrival: dict[int, int] = {}
    seqs: list[int] = []
    counts: list[int] = []
    t = T0
    seq = 60_000
    for step in range(20_000):
        seq += rng.choice([1, 1, 1, 1, 2, 3, -1, 0])  # losses, reordering, duplicates
        t += rng.randrange(0, 3000) if rng.random() < 0.999 else 10_000_000
        if rng.random() < 0.01:
            t -= rng.randrange(0, 50_000)  # an arrival clock glitch: negative deltas
        rec.on_packet(seq & 0xFFFF, t)
        first_arrival.setdefault(seq & 0xFFFF, t)
        if step % 97 == 0:
            for packet in rec.build_feedback(SENDER, MEDIA, t):
                assert len(packet) <= 300
                fb = unpack(packet)
                counts.append(fb.feedback_count)
                for s, when in fb.packets:
                    seqs.append(s)
                    if when is not None:
                        assert abs(when - first_arrival[s]) <= 125
    assert counts == [i & 0xFF for i in range(len(counts))]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]  # contiguous, no repeats


def test_recorder_feedback_count_wraps() -> None:
    rec = TwccRecorder()
    counts = []
    for i in range(300):
        rec.on_packet(i, T0 + 1000 * i)
        counts += [fb.feedback_count for fb in feedbacks(rec)]
    assert counts == [i & 0xFF for i in range(300)]


def test_recorder_skips_ahead_over_long_gaps() -> None:
    rec = TwccRecorder(max_statuses=65535)
    rec.on_packet(0, T0)
    rec.on_packet(1, T0 + 1000)
    rec.on_packet(20_000, T0 + 2000)
    assert rec.skipped == 10_001
    fbs = feedbacks(rec, now=T0 + 5000)
    got = reported(fbs)
    assert len(got) == 10_000
    assert got[0] == (10_001, None)
    assert got[-1] == (20_000, T0 + 2000)
    assert rec.build_feedback(SENDER, MEDIA, T0) == []
    assert len(rec._ring) == 16_384  # memory stays bounded


def test_recorder_all_lost_packet_takes_reference_from_now() -> None:
    rec = TwccRecorder(max_statuses=10)
    rec.on_packet(0, T0)
    rec.on_packet(30, T0 + 1000)
    fbs = feedbacks(rec, now=T0 + 500_000)
    assert [len(fb.packets) for fb in fbs] == [10, 10, 10, 1]
    assert fbs[1].packets == [(s, None) for s in range(10, 20)]
    assert fbs[1].reference_time_us == (T0 + 500_000) // 64_000 * 64_000
    assert fbs[3].packets == [(30, T0 + 1000)]


def test_feedback_interval_bounds() -> None:
    assert feedback_interval(0) == FEEDBACK_MAX_INTERVAL_S
    assert feedback_interval(-5) == FEEDBACK_MAX_INTERVAL_S
    assert feedback_interval(math.nan) == FEEDBACK_MAX_INTERVAL_S
    assert feedback_interval(math.inf) == FEEDBACK_MIN_INTERVAL_S
    assert feedback_interval(THIN_UPLINK_BPS) == FEEDBACK_MAX_INTERVAL_S
    # audio alone on a thin uplink: the feedback back down its thin downlink is spared
    assert FEEDBACK_MAX_INTERVAL_S < feedback_interval(50_000) <= FEEDBACK_THIN_INTERVAL_S
    assert feedback_interval(20_000) == FEEDBACK_THIN_INTERVAL_S
    assert feedback_interval(2_000_000) == FEEDBACK_MIN_INTERVAL_S
    assert FEEDBACK_MIN_INTERVAL_S < feedback_interval(180_000) < FEEDBACK_MAX_INTERVAL_S
    values = [feedback_interval(b) for b in range(10_000, 1_000_000, 10_000)]
    assert values == sorted(values, reverse=True)
    assert all(
        0.05 <= v <= 0.1
        for v, b in zip(values, range(10_000, 1_000_000, 10_000), strict=True)
        if b >= THIN_UPLINK_BPS
    )
