"""Unit tests for sfu/probe_search.py: a link's next probe, its step, back-off and ceiling.

The estimator-level behaviour is in test_bandwidth_probes.py; these check
the search on its own.
"""

from __future__ import annotations

import pytest

from sfu.probe_search import ProbeSearch
from sfu.tuning import TUNING

T0 = 10.0
WANT = 10_000_000  # more than any probe here
MAX = 5_000_000


def test_no_probe_in_the_first_second_and_a_careful_first_step() -> None:
    search = ProbeSearch(T0)
    assert search.next_at == T0 + 1.0
    target = search.target(400_000, WANT, MAX, paused=False, now=T0 + 1)
    assert target == 400_000 * TUNING.probe_factor_careful


def test_the_step_is_at_least_the_minimum_and_bounded_by_wanted_and_max() -> None:
    search = ProbeSearch(T0)
    assert search.target(20_000, WANT, MAX, False, T0) == 20_000 + TUNING.probe_min_step
    assert search.target(400_000, 420_000, MAX, False, T0) == pytest.approx(420_000 * 1.1)
    assert search.target(4_500_000, WANT, MAX, False, T0) == MAX


def test_while_paused_the_step_is_larger() -> None:
    search = ProbeSearch(T0)
    target = search.target(400_000, WANT, MAX, paused=True, now=T0)
    assert target == 400_000 * TUNING.probe_factor_paused


def test_after_a_clean_probe_the_step_doubles_soon() -> None:
    search = ProbeSearch(T0)
    search.passed(500_000, T0 + 2)
    assert search.next_at == T0 + 2 + TUNING.probe_backoff_min
    assert search.target(500_000, WANT, MAX, False, T0 + 3) == 500_000 * TUNING.probe_factor


def test_after_a_failure_search_half_way_to_the_ceiling_and_back_off() -> None:
    search = ProbeSearch(T0)
    search.passed(500_000, T0)  # a bold step next...
    search.failed(700_000, T0 + 2, paused=False)  # ...until one fails
    assert search.next_at == T0 + 2 + 2 * TUNING.probe_backoff_min
    assert search.target(500_000, WANT, MAX, False, T0 + 3) == 600_000
    # the ceiling holds for a while, then the careful step applies
    later = T0 + 2 + TUNING.ceiling_hold
    assert search.target(500_000, WANT, MAX, False, later) == 500_000 * TUNING.probe_factor_careful


def test_too_close_to_the_ceiling_no_probe_and_look_again_soon() -> None:
    search = ProbeSearch(T0)
    search.failed(505_000, T0, paused=False)
    assert search.target(500_000, WANT, MAX, False, T0 + 1) == 0.0
    assert search.next_at == T0 + 1 + TUNING.probe_backoff_min


def test_a_clean_probe_that_reaches_the_ceiling_lifts_it() -> None:
    search = ProbeSearch(T0)
    search.failed(600_000, T0, paused=False)
    search.passed(560_000, T0 + 1)  # 90 % of the failed rate or more
    assert search.target(560_000, WANT, MAX, False, T0 + 2) == 560_000 * TUNING.probe_factor


@pytest.mark.parametrize(
    ("paused", "bound"),
    [(False, TUNING.probe_backoff_max), (True, TUNING.probe_backoff_max_paused)],
)
def test_the_back_off_doubles_up_to_its_bound(paused: bool, bound: float) -> None:
    search = ProbeSearch(T0)
    backoff = TUNING.probe_backoff_min
    for i in range(10):
        search.failed(500_000, T0 + i, paused)
        backoff = min(bound, backoff * 2)
        assert search.next_at == pytest.approx(T0 + i + backoff)
    assert backoff == bound
