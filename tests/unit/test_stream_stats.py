"""Unit tests for sfu/stream_stats.py: sequence tracking, NACK scheduling, RR figures."""

from __future__ import annotations

from sfu.stream_stats import (
    MAX_MISSING,
    NACK_INTERVAL_MS,
    NACK_MAX_AGE_MS,
    NACK_RETRIES,
    ReceiveStream,
)

T0 = 5_000_000  # a monotonic-clock millisecond value, like the SFU's
CLOCK = 90_000
FRAME_TICKS = 1800  # 20 ms at 90 kHz
FRAME_MS = 1000 * FRAME_TICKS // CLOCK


def feed(
    stream: ReceiveStream, seqs: list[int], *, start_ms: int = T0, size: int = 100
) -> list[bool]:
    """Receive ``seqs`` one per frame interval, perfectly paced; the results of receive()."""
    results = []
    for i, seq in enumerate(seqs):
        results.append(stream.receive(seq, i * FRAME_TICKS, start_ms + i * FRAME_MS, size, False))
    return results


def wrap(seqs: range | list[int]) -> list[int]:
    return [s & 0xFFFF for s in seqs]


# --------------------------------------------------------------------------
# in order, gaps, recovery, duplicates
# --------------------------------------------------------------------------


def test_new_stream_is_empty() -> None:
    stream = ReceiveStream(1, CLOCK)
    assert stream.expected == 0
    assert stream.lost == 0
    assert stream.packets == 0
    assert stream.jitter == 0
    assert stream.due_nacks(T0) == []


def test_in_order_packets_are_all_new() -> None:
    stream = ReceiveStream(1, CLOCK)
    assert feed(stream, list(range(1000, 1010)), size=250) == [True] * 10
    assert stream.base_seq == 1000
    assert stream.highest == 1009
    assert stream.packets == 10
    assert stream.bytes == 2500
    assert stream.expected == 10
    assert stream.lost == 0
    assert stream.missing == {}
    assert stream.duplicates == 0
    assert stream.recovered == 0


def test_gap_creates_missing_entries() -> None:
    stream = ReceiveStream(1, CLOCK)
    stream.receive(100, 0, T0, 100, False)
    assert stream.receive(104, 0, T0 + 7, 100, False) is True
    assert sorted(stream.missing) == [101, 102, 103]
    for state in stream.missing.values():
        assert state == [T0 + 7, 0, 0]
    assert stream.expected == 5
    assert stream.lost == 3


def test_recovering_a_missing_seq_returns_true_and_counts() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [100, 103])
    assert stream.receive(101, 0, T0 + 50, 80, True) is True
    assert stream.recovered == 1
    assert sorted(stream.missing) == [102]
    assert stream.packets == 3
    assert stream.bytes == 280
    assert stream.lost == 1


def test_reordered_packet_without_rtx_is_also_recovered() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [100, 102])
    assert stream.receive(101, 0, T0 + 1, 100, False) is True
    assert stream.recovered == 1
    assert stream.missing == {}
    assert stream.lost == 0


def test_duplicate_returns_false() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [100, 101, 102])
    assert stream.receive(101, 0, T0 + 99, 100, False) is False
    assert stream.receive(102, 0, T0 + 99, 100, True) is False
    assert stream.duplicates == 2
    assert stream.packets == 3
    assert stream.bytes == 300


def test_recovered_packet_received_twice_is_duplicate_the_second_time() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [100, 102])
    assert stream.receive(101, 0, T0 + 1, 100, True) is True
    assert stream.receive(101, 0, T0 + 2, 100, True) is False
    assert stream.recovered == 1
    assert stream.duplicates == 1


def test_first_packet_repeated_is_duplicate() -> None:
    stream = ReceiveStream(1, CLOCK)
    assert stream.receive(7, 0, T0, 10, False) is True
    assert stream.receive(7, 0, T0, 10, False) is False


def test_packet_given_up_on_is_not_forwarded_later() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [100, 102])
    stream.due_nacks(T0 + NACK_MAX_AGE_MS + 100)  # gives up on 101
    assert stream.missing == {}
    assert stream.receive(101, 0, T0 + NACK_MAX_AGE_MS + 200, 100, True) is False


# --------------------------------------------------------------------------
# wrap-around
# --------------------------------------------------------------------------


def test_wrap_around_keeps_extended_sequence_increasing() -> None:
    stream = ReceiveStream(1, CLOCK)
    seqs = wrap(range(65530, 65530 + 12))  # 65530..65535, 0..5
    assert feed(stream, seqs) == [True] * 12
    assert stream.highest == 65536 + 5
    assert stream.expected == 12
    assert stream.lost == 0
    assert stream.missing == {}
    assert stream.report_block(0, 0).highest_seq == 0x0001_0005


def test_wrap_around_from_65535_to_0() -> None:
    stream = ReceiveStream(1, CLOCK)
    assert feed(stream, [65535, 0, 1]) == [True, True, True]
    assert stream.highest == 65537
    assert stream.lost == 0


def test_gap_across_wrap_creates_missing_and_nacks_16_bit_seqs() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [65533, 65534, 1])
    assert sorted(stream.missing) == [65535, 65536]
    assert sorted(stream.due_nacks(T0 + 100)) == [0, 65535]


def test_late_packet_from_before_wrap_is_recovered() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [65533, 65534, 1])
    assert stream.receive(65535, 0, T0 + 100, 100, True) is True
    assert stream.receive(0, 0, T0 + 101, 100, True) is True
    assert stream.missing == {}
    assert stream.recovered == 2
    assert stream.highest == 65537
    assert stream.lost == 0


def test_late_duplicate_from_before_wrap_is_duplicate() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [65534, 65535, 0, 1])
    assert stream.receive(65535, 0, T0 + 500, 100, False) is False
    assert stream.highest == 65537


def test_multiple_wraps() -> None:
    stream = ReceiveStream(1, CLOCK)
    seqs = wrap(range(60000, 60000 + 3 * 65536, 400))
    assert all(feed(stream, seqs))
    assert stream.highest == 60000 + (len(seqs) - 1) * 400
    assert stream.highest > 2 * 65536
    assert len(stream.missing) == 399 * (len(seqs) - 1)


# --------------------------------------------------------------------------
# big jumps
# --------------------------------------------------------------------------


def test_gap_of_exactly_max_missing_is_loss() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [1000, 1000 + MAX_MISSING + 1])
    assert len(stream.missing) == MAX_MISSING


def test_big_jump_does_not_create_thousands_of_missing_entries() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [1000, 1000 + MAX_MISSING + 2])
    assert stream.missing == {}
    assert stream.receive(30000, 0, T0 + 100, 100, False) is True
    assert stream.missing == {}
    assert stream.receive(30001, 0, T0 + 200, 100, False) is True


def test_big_jump_clears_earlier_missing_entries() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [1000, 1005])
    assert len(stream.missing) == 4
    assert stream.receive(20000, 0, T0 + 100, 100, False) is True
    assert stream.missing == {}
    assert stream.due_nacks(T0 + 200) == []


def test_big_jump_across_wrap_creates_no_missing_entries() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [60000, 60001])
    assert stream.receive(1000, 0, T0 + 100, 100, False) is True
    assert stream.missing == {}
    assert stream.highest == 65536 + 1000


def test_big_jump_is_not_reported_as_loss() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, list(range(100, 110)))
    feed(stream, list(range(5000, 5010)), start_ms=T0 + 1000)
    block = stream.report_block(0, 0)
    assert stream.lost == 0
    assert block.packets_lost == 0
    assert block.fraction_lost == 0


def test_restart_to_lower_sequence_number_is_accepted() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, list(range(30000, 30010)))
    results = feed(stream, list(range(100, 110)), start_ms=T0 + 1000)
    assert all(results[2:])


# --------------------------------------------------------------------------
# NACK scheduling
# --------------------------------------------------------------------------


def test_missing_seq_is_nacked_immediately() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [100, 103])
    assert stream.due_nacks(T0 + FRAME_MS) == [101, 102]
    assert stream.missing[101][1:] == [T0 + FRAME_MS, 1]


def test_due_nacks_respects_interval() -> None:
    stream = ReceiveStream(1, CLOCK)
    stream.receive(100, 0, T0, 100, False)
    stream.receive(102, 0, T0, 100, False)
    assert stream.due_nacks(T0) == [101]
    assert stream.due_nacks(T0 + 1) == []
    assert stream.due_nacks(T0 + NACK_INTERVAL_MS - 1) == []
    assert stream.due_nacks(T0 + NACK_INTERVAL_MS) == [101]
    assert stream.due_nacks(T0 + NACK_INTERVAL_MS + 10) == []


def test_due_nacks_gives_up_after_retries() -> None:
    stream = ReceiveStream(1, CLOCK)
    stream.receive(100, 0, T0, 100, False)
    stream.receive(102, 0, T0, 100, False)
    sent = 0
    now = T0
    for _ in range(NACK_RETRIES + 3):
        if stream.due_nacks(now) == [101]:
            sent += 1
        now += NACK_INTERVAL_MS
    assert sent == NACK_RETRIES
    assert 101 in stream.missing  # no more NACKs, but its repair is still waited for


def test_a_repair_after_the_last_nack_is_still_taken_and_teaches_the_round_trip() -> None:
    """A 600 ms path (satellite): before, the third NACK went 160 ms after the gap, the
    packet was forgotten at 240 ms and its repair, at 650 ms, dropped as a duplicate;
    the round trip was never learned, so it happened to every loss."""
    stream = ReceiveStream(1, CLOCK)
    stream.receive(100, 0, T0, 100, False)
    stream.receive(102, 0, T0, 100, False)
    for now in range(T0, T0 + 640, 20):
        stream.due_nacks(now)
    assert stream.missing[101][2] == NACK_RETRIES
    assert stream.receive(101, 0, T0 + 650, 100, True) is True  # forwarded
    assert stream.repair_ms == 650
    # the next loss: asked at once, again 80 ms later (a lost NACK), then a round trip on
    stream.receive(104, 0, T0 + 1000, 100, False)
    asked = [now for now in range(T0 + 1000, T0 + 2900, 10) if stream.due_nacks(now) == [103]]
    assert asked == [T0 + 1000, T0 + 1080, T0 + 1900]  # 1080 + 1.25 x 650, on a 10 ms grid
    assert 103 in stream.missing  # waited for 3 round trips
    stream.due_nacks(T0 + 1000 + 3 * 650 + 1)
    assert 103 not in stream.missing


def test_due_nacks_gives_up_after_max_age() -> None:
    stream = ReceiveStream(1, CLOCK)
    stream.receive(100, 0, T0, 100, False)
    stream.receive(102, 0, T0, 100, False)
    assert stream.due_nacks(T0 + NACK_MAX_AGE_MS) == [101]  # exactly at the limit: still due
    assert 101 in stream.missing
    assert stream.due_nacks(T0 + NACK_MAX_AGE_MS + 1) == []
    assert stream.missing == {}


def test_due_nacks_ages_each_seq_from_when_it_went_missing() -> None:
    stream = ReceiveStream(1, CLOCK)
    stream.receive(100, 0, T0, 100, False)
    stream.receive(102, 0, T0, 100, False)  # 101 missing since T0
    stream.receive(104, 0, T0 + 600, 100, False)  # 103 missing since T0+600
    assert stream.due_nacks(T0 + NACK_MAX_AGE_MS + 50) == [103]
    assert sorted(stream.missing) == [103]


def test_recovered_seq_is_no_longer_nacked() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [100, 103])
    assert stream.due_nacks(T0 + 100) == [101, 102]
    stream.receive(101, 0, T0 + 120, 100, True)
    # (once a repair took 120 ms, a NACK is repeated only after 1.25 of that)
    assert stream.due_nacks(T0 + 100 + max(NACK_INTERVAL_MS, int(1.25 * 120))) == [102]


# --------------------------------------------------------------------------
# report block and jitter
# --------------------------------------------------------------------------


def test_report_block_without_loss() -> None:
    stream = ReceiveStream(0xABC, CLOCK)
    feed(stream, list(range(10)))
    block = stream.report_block(lsr=0x1234, dlsr=0x5678)
    assert block.ssrc == 0xABC
    assert block.fraction_lost == 0
    assert block.packets_lost == 0
    assert block.highest_seq == 9
    assert block.jitter == 0
    assert block.lsr == 0x1234
    assert block.dlsr == 0x5678


def test_report_block_fraction_lost_for_interval_with_losses() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [*range(10), 20])  # 10..19 missing: 10 of 21 lost
    block = stream.report_block(0, 0)
    assert block.fraction_lost == (10 << 8) // 21
    assert block.packets_lost == 10

    # next interval: 21..30, no loss; cumulative loss unchanged
    feed(stream, list(range(21, 31)), start_ms=T0 + 1000)
    block = stream.report_block(0, 0)
    assert block.fraction_lost == 0
    assert block.packets_lost == 10
    assert block.highest_seq == 30


def test_report_block_fraction_lost_half() -> None:
    stream = ReceiveStream(1, CLOCK)
    stream.report_block(0, 0)  # empty interval
    feed(stream, list(range(0, 200, 2)))
    block = stream.report_block(0, 0)
    # expected 199 (0..198), received 100
    assert block.fraction_lost == (99 << 8) // 199
    assert block.packets_lost == 99


def test_report_block_interval_with_recoveries_has_zero_fraction() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [0, 5])
    stream.report_block(0, 0)
    for seq in range(1, 5):
        stream.receive(seq, 0, T0 + 100, 100, True)
    feed(stream, [6, 7], start_ms=T0 + 200)
    block = stream.report_block(0, 0)
    assert block.fraction_lost == 0  # more received than expected in this interval
    assert block.packets_lost == 0


def test_report_block_empty_interval() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [0, 10])
    stream.report_block(0, 0)
    block = stream.report_block(0, 0)
    assert block.fraction_lost == 0
    assert block.packets_lost == 9


def test_report_block_highest_seq_includes_cycles() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, [65535, 0, 1, 2])
    assert stream.report_block(0, 0).highest_seq == (1 << 16) | 2


def test_jitter_is_zero_for_perfectly_paced_packets() -> None:
    stream = ReceiveStream(1, CLOCK)
    feed(stream, list(range(200)))
    assert stream.jitter == 0


def test_jitter_is_zero_for_paced_audio() -> None:
    stream = ReceiveStream(1, 48_000)
    for i in range(100):
        stream.receive(i, 1000 + i * 960, T0 + i * 20, 60, False)
    assert stream.jitter == 0


def test_jitter_grows_with_delay_variation() -> None:
    stream = ReceiveStream(1, CLOCK)
    stream.receive(0, 0, T0, 100, False)
    # 10 ms late: transit difference 900 ticks, J = 900 / 16
    stream.receive(1, FRAME_TICKS, T0 + FRAME_MS + 10, 100, False)
    assert stream.jitter == 900 // 16


def test_jitter_ignores_retransmissions() -> None:
    stream = ReceiveStream(1, CLOCK)
    stream.receive(0, 0, T0, 100, False)
    stream.receive(2, 2 * FRAME_TICKS, T0 + 2 * FRAME_MS, 100, False)
    # the retransmission of 1 arrives 500 ms late: must not count as delay variation
    stream.receive(1, FRAME_TICKS, T0 + 500, 100, True)
    stream.receive(3, 3 * FRAME_TICKS, T0 + 3 * FRAME_MS, 100, False)
    assert stream.recovered == 1
    assert stream.jitter == 0


def test_jitter_ignores_huge_timestamp_jumps() -> None:
    stream = ReceiveStream(1, CLOCK)
    stream.receive(0, 0, T0, 100, False)
    stream.receive(1, 20 * CLOCK, T0 + FRAME_MS, 100, False)
    assert stream.jitter == 0


def test_nacks_follow_the_measured_repair_time_on_a_long_path() -> None:
    """600 ms round trip: a NACK is repeated only once a repair could have come back."""
    from sfu.stream_stats import NACK_INTERVAL_MS, NACK_INTERVAL_RTTS  # noqa: PLC0415

    stream = ReceiveStream(1, 90000)
    stream.receive(100, 0, T0, 100, False)
    stream.receive(102, 0, T0 + 10, 100, False)  # 101 missing
    assert stream.due_nacks(T0 + 10) == [101]
    assert stream.repair_ms is None
    stream.receive(101, 0, T0 + 610, 100, True)  # its repair: 600 ms after the gap
    assert stream.repair_ms == 600
    stream.receive(104, 0, T0 + 700, 100, False)  # 103 missing
    assert stream.due_nacks(T0 + 700) == [103]
    # once more at once (the first NACK may be lost; a sender ignores a NACK for a
    # packet it resent less than a round trip ago), then not within a round trip
    assert stream.due_nacks(T0 + 700 + NACK_INTERVAL_MS) == [103]
    assert stream.due_nacks(T0 + 700 + 2 * NACK_INTERVAL_MS) == []
    assert stream.due_nacks(T0 + 700 + NACK_INTERVAL_MS + int(NACK_INTERVAL_RTTS * 600)) == [103]
