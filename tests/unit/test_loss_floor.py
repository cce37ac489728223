"""Unit tests for sfu/bandwidth.py and sfu/loss_floor.py: a link's own random loss.

A radio or satellite link loses a few percent at random whatever is sent;
NACK/RTX repairs it. The bars for "clean" (probes pass, what was sent is
carried) and "high" (loss may be congestion) rise by twice the median loss
of the last reports outside probes, so such a link can still be probed and a
video paused there comes back.
"""

from __future__ import annotations

import pytest

from sfu.bandwidth import DownlinkEstimator, ProbeState
from sfu.loss_floor import LossFloor
from sfu.tuning import TUNING
from tests.unit.estimator_support import EPS, FIRST_PROBE, START, T0, WANT, estimator, probe_state

RADIO = [0.04, 0.07, 0.05, 0.03, 0.06]  # reports of a link losing about 5 % at random


def radio_link() -> DownlinkEstimator:
    est = estimator()
    for i, loss in enumerate(RADIO):
        est.on_loss(loss, START, T0 + 0.1 * i)
    return est


def test_no_floor_before_three_reports() -> None:
    est = estimator()
    est.on_loss(0.05, START, T0)
    est.on_loss(0.05, START, T0 + 0.1)
    assert est.loss_floor == 0.0
    assert est.clean_loss == TUNING.clean_loss and est.high_loss == TUNING.high_loss
    est.on_loss(0.05, START, T0 + 0.2)
    assert est.loss_floor == 0.05


def test_the_floor_is_the_median_of_recent_reports_and_at_most_high_loss() -> None:
    est = radio_link()
    assert est.loss_floor == 0.05
    assert est.clean_loss == pytest.approx(TUNING.clean_loss + TUNING.loss_floor_margin * 0.05)
    assert est.high_loss == pytest.approx(TUNING.high_loss + TUNING.loss_floor_margin * 0.05)
    # only the latest reports count: a link that stopped losing has no floor
    for i in range(TUNING.loss_floor_reports):
        est.on_loss(0.0, START, T0 + 1 + 0.1 * i)
    assert est.loss_floor == 0.0
    # a link losing a fifth of everything has a floor of 10 %, not more
    for i in range(TUNING.loss_floor_reports):
        est.on_loss(0.2, 10_000, T0 + 3 + TUNING.decrease_hold * i)
    assert est.loss_floor == TUNING.high_loss


def test_overload_loss_is_not_the_links_own() -> None:
    est = radio_link()
    for i in range(TUNING.loss_floor_reports // 2):
        est.on_loss(0.9, 1_000_000, T0 + 1 + 0.1 * i)  # an overload: over 25 %
    assert est.decreases > 0
    assert est.loss_floor == 0.05


def test_a_clean_link_keeps_the_plain_bars() -> None:
    est = estimator()
    for i, loss in enumerate([0.0, 0.0, 0.01, 0.0, 0.0]):
        est.on_loss(loss, START, T0 + 0.1 * i)
    assert est.loss_floor == 0.0
    est.on_loss(0.03, START, T0 + 1)
    assert not est.looks_clean


def test_a_probe_on_a_radio_link_passes_with_the_links_own_loss() -> None:
    est = radio_link()
    assert est.loss == 0.06 and est.looks_clean  # over 2 %, but the link's own
    target = est.padding_target(WANT, FIRST_PROBE, START)
    assert target > 0, "a report at the link's own loss does not block probing"
    assert est.padding_target(WANT, FIRST_PROBE + TUNING.probe_duration, START) == 0
    est.on_loss(0.08, START, FIRST_PROBE + TUNING.probe_duration + TUNING.probe_settle + EPS)
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_ok == 1
    assert est.estimate == target


def test_a_probe_that_adds_loss_fails_and_the_links_own_loss_is_not_counted_against_it() -> None:
    est = radio_link()
    target = est.padding_target(WANT, FIRST_PROBE, START)
    est.padding_target(WANT, FIRST_PROBE + TUNING.probe_duration, START)
    est.on_loss(0.25, START, FIRST_PROBE + TUNING.probe_duration + TUNING.probe_settle + EPS)
    assert est.probes_failed == 1
    delivered = target * (1 - (0.25 - 0.05)) * 0.95
    assert est.last_decrease_reason == f"probe -> {int(delivered)}"


def test_reports_during_a_probe_do_not_move_the_floor() -> None:
    est = radio_link()
    est.padding_target(WANT, FIRST_PROBE, START)
    for i in range(TUNING.loss_floor_reports):
        est.on_loss(0.0, START, FIRST_PROBE + TUNING.probe_settle + 0.01 * i)
        if probe_state(est) is ProbeState.IDLE:
            break
    assert est.loss_floor == 0.05


def test_loss_over_the_raised_bar_without_remb_still_counts_as_congestion() -> None:
    est = radio_link()
    est.on_loss(0.15, 1_000_000, T0 + 1)  # under 10 % + 2 x 5 %: the radio
    assert est.estimate == START and est.decreases == 0
    est.on_loss(0.3, 1_000_000, T0 + 2)  # over it: congestion
    assert est.decreases == 1
    assert est.estimate == pytest.approx(850_000)  # replaces the start guess


# --------------------------------------------------------------------------
# the LossFloor on its own
# --------------------------------------------------------------------------


def test_the_bars_are_the_plain_ones_without_a_floor() -> None:
    floor = LossFloor()
    floor.add(0.05)
    floor.add(0.05)
    assert floor.floor == 0.0
    assert (floor.clean, floor.high) == (TUNING.clean_loss, TUNING.high_loss)


def test_the_floor_raises_both_bars_by_its_margin() -> None:
    floor = LossFloor()
    for loss in RADIO:
        floor.add(loss)
    assert floor.floor == 0.05
    margin = TUNING.loss_floor_margin * 0.05
    assert floor.clean == pytest.approx(TUNING.clean_loss + margin)
    assert floor.high == pytest.approx(TUNING.high_loss + margin)


def test_an_overloads_loss_is_left_out_and_the_floor_is_bounded() -> None:
    floor = LossFloor()
    for _ in range(TUNING.loss_floor_reports):
        floor.add(TUNING.congestion_loss + 0.01)
    assert floor.floor == 0.0
    for _ in range(TUNING.loss_floor_reports):
        floor.add(TUNING.congestion_loss)  # at the bar: still the link's own
    assert floor.floor == TUNING.high_loss
