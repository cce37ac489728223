"""Unit tests for sfu/remb_history.py: receivers' REMBs and which ones are decreases."""

from __future__ import annotations

from sfu.remb_history import RembHistory
from sfu.tuning import TUNING

T0 = 10.0


def test_nothing_seen_at_first() -> None:
    rembs = RembHistory()
    assert not rembs.seen
    assert rembs.fresh_total(T0) == 0
    assert rembs.last_decrease < 0


def test_a_first_remb_is_a_decrease_only_well_below_what_was_sent() -> None:
    rembs = RembHistory()
    assert not rembs.add(("a",), 800_000, 1_000_000, T0)
    assert rembs.seen
    rembs = RembHistory()
    assert rembs.add(("a",), 700_000, 1_000_000, T0)
    assert rembs.last_decrease == T0


def test_a_lower_remb_is_a_decrease_only_below_what_was_sent() -> None:
    rembs = RembHistory()
    rembs.add(("a",), 1_000_000, 1_000_000, T0)
    # lower, but the receiver was sent less: it only follows what arrives
    assert not rembs.add(("a",), 500_000, 400_000, T0 + 1)
    # lower than the previous one and than what was sent: a queue grew
    assert rembs.add(("a",), 400_000 * TUNING.remb_drop - 1, 400_000, T0 + 2)
    assert rembs.last_decrease == T0 + 2
    # a small dip is noise
    assert not rembs.add(("a",), int(390_000 * TUNING.remb_drop) + 100, 1_000_000, T0 + 3)


def test_a_remb_covering_one_more_track_replaces_the_earlier_one() -> None:
    rembs = RembHistory()
    rembs.add(("a",), 300_000, 300_000, T0)
    rembs.add(("b",), 200_000, 200_000, T0)
    assert rembs.fresh_total(T0) == 500_000
    rembs.add(("a", "c"), 400_000, 400_000, T0 + 1)  # the same receiver, a new track
    assert rembs.fresh_total(T0 + 1) == 600_000


def test_old_rembs_no_longer_count() -> None:
    rembs = RembHistory()
    rembs.add(("a",), 300_000, 300_000, T0)
    rembs.add(("b",), 200_000, 200_000, T0 + 2)
    assert rembs.fresh_total(T0 + TUNING.remb_ttl) == 200_000
    assert rembs.seen  # (still the latest from its receiver)
