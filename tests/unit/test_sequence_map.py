"""Unit tests for sfu/sequence_map.py: renumbering with the holes of dropped packets closed."""

from __future__ import annotations

import pytest

from sfu.sequence_map import HISTORY, NumberMap

SEQ = 0x10000
PICTURE_ID_15 = 0x8000
PICTURE_ID_7 = 0x80
TL0 = 0x100


def test_new_map_maps_nothing() -> None:
    numbers = NumberMap(SEQ)
    assert not numbers.started
    assert numbers.map(0) is None
    numbers.drop(0)  # no-op before a reset
    assert numbers.map(1) is None
    assert not numbers.started


def test_reset_maps_from_the_first_number_on() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(1000, 7)
    assert numbers.started
    assert [numbers.map(n) for n in (1000, 1001, 1005)] == [7, 8, 12]


def test_numbers_before_the_reset_are_too_old() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(1000, 7)
    assert numbers.map(999) is None
    assert numbers.map(500) is None
    assert numbers.map(1000) == 7


def test_reset_forgets_the_previous_offsets() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(10, 100)
    numbers.map(11)
    numbers.drop(12)
    numbers.reset(5000, 200)
    assert numbers.map(5000) == 200
    assert numbers.map(5001) == 201
    assert numbers.map(13) is None


def test_output_wraps_at_the_modulus() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(10, 65530)
    assert [numbers.map(n) for n in range(10, 18)] == [
        65530,
        65531,
        65532,
        65533,
        65534,
        65535,
        0,
        1,
    ]


def test_input_wraps_at_the_modulus() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(65530, 0)
    assert [numbers.map(n) for n in (65534, 65535, 0, 1, 3)] == [4, 5, 6, 7, 9]
    assert numbers.map(65529) is None  # before the reset, across the wrap


def test_one_drop_closes_its_hole() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(100, 0)
    assert numbers.map(100) == 0
    assert numbers.map(101) == 1
    numbers.drop(102)
    assert numbers.map(103) == 2
    assert numbers.map(104) == 3


def test_consecutive_drops() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(100, 0)
    numbers.map(100)
    for n in (101, 102, 103):
        numbers.drop(n)
    assert numbers.map(104) == 1
    numbers.drop(105)
    numbers.drop(106)
    assert numbers.map(107) == 2


def test_every_other_number_dropped() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(0, 50)
    out = []
    for n in range(40):
        if n % 2:
            numbers.drop(n)
        else:
            out.append(numbers.map(n))
    assert out == list(range(50, 70))


def test_drops_across_the_input_wrap() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(65533, 10)
    assert numbers.map(65533) == 10
    numbers.drop(65534)
    numbers.drop(65535)
    assert numbers.map(0) == 11
    numbers.drop(1)
    assert numbers.map(2) == 12
    assert numbers.map(65533) == 10  # still the number it had


def test_fifteen_bit_picture_ids_wrap_at_32768() -> None:
    numbers = NumberMap(PICTURE_ID_15)
    numbers.reset(32765, 32766)
    assert numbers.map(32765) == 32766
    assert numbers.map(32766) == 32767
    numbers.drop(32767)
    assert numbers.map(0) == 0
    numbers.drop(1)
    assert numbers.map(2) == 1
    assert numbers.map(32764) is None


def test_seven_bit_picture_ids_wrap_at_128() -> None:
    numbers = NumberMap(PICTURE_ID_7)
    numbers.reset(126, 0)
    assert numbers.map(126) == 0
    numbers.drop(127)
    assert numbers.map(0) == 1
    assert numbers.map(1) == 2


def test_reordered_packets_around_a_drop_keep_their_numbers() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(0, 100)
    assert numbers.map(0) == 100
    # 1 and 2 are late; 3 is dropped; 4 and 5 arrive
    numbers.drop(3)
    assert numbers.map(4) == 103
    assert numbers.map(2) == 102  # before the drop: the old offset
    assert numbers.map(5) == 104
    assert numbers.map(1) == 101
    # a retransmission later still gets its number
    assert numbers.map(4) == 103
    assert numbers.map(0) == 100


def test_drop_after_a_gap_leaves_the_missing_numbers_their_place() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(0, 0)
    numbers.map(0)
    numbers.drop(3)  # 1 and 2 not here yet
    numbers.drop(4)
    assert numbers.map(5) == 3
    assert numbers.map(1) == 1
    assert numbers.map(2) == 2


def test_a_late_drop_leaves_a_hole() -> None:
    """Documented: only a drop at the head of the stream can be closed."""
    numbers = NumberMap(SEQ)
    numbers.reset(0, 0)
    assert numbers.map(0) == 0
    assert numbers.map(2) == 2  # 1 is late
    numbers.drop(1)  # ...and dropped when it comes: too late to renumber 2
    assert numbers.map(3) == 3


def test_dropping_the_first_number_again_is_a_no_op() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(10, 0)
    numbers.drop(10)  # not newer than the start: cannot be closed
    assert numbers.map(10) == 0
    assert numbers.map(11) == 1


def test_history_keeps_the_last_offset_changes() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(0, 0)
    # HISTORY - 1 separate drops: the reset entry is still remembered
    for n in range(1, 2 * HISTORY - 1, 2):
        numbers.drop(n)
    assert numbers.map(0) == 0
    assert numbers.map(2) == 1


def test_history_bound_makes_the_oldest_numbers_too_old() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(0, 0)
    for n in range(1, 2 * HISTORY + 1, 2):  # HISTORY separate drops
        numbers.drop(n)
    assert numbers.map(0) is None  # its offset was forgotten
    assert numbers.map(2) == 1
    assert numbers.map(2 * HISTORY) == HISTORY


def test_consecutive_drops_use_one_history_entry() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(0, 0)
    for n in range(1, 10 * HISTORY):
        numbers.drop(n)
    assert numbers.map(0) == 0
    assert numbers.map(10 * HISTORY) == 1


@pytest.mark.parametrize("modulus", [SEQ, PICTURE_ID_15, PICTURE_ID_7, TL0])
def test_maps_a_long_run_without_drops(modulus: int) -> None:
    numbers = NumberMap(modulus)
    numbers.reset(0, 0)
    run = range(modulus // 2 + 2)
    assert [numbers.map(n) for n in run] == list(run)


def test_maps_a_long_run_after_a_drop() -> None:
    numbers = NumberMap(SEQ)
    numbers.reset(0, 0)
    numbers.drop(1)
    got = [numbers.map(n & 0xFFFF) for n in range(2, 0x8000 + 4)]
    assert None not in got
