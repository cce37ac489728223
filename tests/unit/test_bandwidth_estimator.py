"""Unit tests for sfu/bandwidth.py: one subscriber's downlink estimate.

Time is driven explicitly through the ``now`` arguments (seconds).
"""

from __future__ import annotations

import pytest

from sfu.bandwidth import ProbeState
from sfu.tuning import TUNING
from tests.unit.estimator_support import (
    FIRST_PROBE,
    MAX,
    START,
    T0,
    WANT,
    estimator,
    probe_state,
)


def test_initial_state() -> None:
    est = estimator()
    assert est.estimate == START
    assert est.max_bps == MAX
    assert probe_state(est) is ProbeState.IDLE
    assert not est.probing
    assert est.decreases == 0
    assert "300000" in repr(est)


# --------------------------------------------------------------------------
# REMB
# --------------------------------------------------------------------------


def test_first_remb_close_to_what_was_sent_is_no_decrease() -> None:
    est = estimator(1_000_000)
    est.on_remb(("c1",), 760_000, 1_000_000, 50_000, T0)  # above 75 % of what was sent
    assert est.estimate == 1_000_000
    assert est.decreases == 0


def test_first_remb_far_below_what_was_sent_is_a_decrease() -> None:
    est = estimator(1_000_000)
    est.on_remb(("c1",), 700_000, 1_000_000, 50_000, T0 + 3)
    assert est.estimate == 750_000  # REMB plus the audio sent alongside
    assert est.decreases == 1
    assert est.last_decrease == T0 + 3
    assert est.last_decrease_reason == "remb -> 750000"


def test_remb_below_97_percent_of_the_previous_one_is_a_decrease() -> None:
    est = estimator(2_000_000)
    est.on_remb(("c1",), 1_000_000, 1_000_000, 0, T0)
    est.on_remb(("c1",), 971_000, 1_000_000, 0, T0 + 1)  # 97.1 %: noise
    assert est.decreases == 0
    assert est.estimate == 2_000_000
    est.on_remb(("c1",), 940_000, 1_000_000, 0, T0 + 2)  # below 97 % of 971 000
    assert est.decreases == 1
    assert est.estimate == 940_000


def test_a_remb_that_sinks_but_stays_above_what_was_sent_is_no_decrease() -> None:
    est = estimator(2_000_000)
    est.on_remb(("c1",), 1_000_000, 500_000, 0, T0)
    est.on_remb(("c1",), 600_000, 500_000, 0, T0 + 1)  # less sent, e.g. video paused
    assert est.decreases == 0
    assert est.estimate == 2_000_000
    est.on_remb(("c1",), 450_000, 500_000, 0, T0 + 2)  # below what was sent: a queue
    assert est.decreases == 1
    assert est.estimate == 450_000


def test_a_rising_remb_never_raises_the_estimate() -> None:
    est = estimator()
    est.on_remb(("c1",), 2_000_000, 200_000, 0, T0)
    est.on_remb(("c1",), 4_000_000, 200_000, 0, T0 + 1)
    assert est.estimate == START
    assert est.decreases == 0


def test_remb_decrease_sums_every_fresh_receiver_and_the_audio() -> None:
    est = estimator(2_000_000)
    est.on_remb(("a",), 600_000, 600_000, 40_000, T0)
    est.on_remb(("b",), 500_000, 500_000, 40_000, T0 + 1)
    est.on_remb(("b",), 300_000, 500_000, 40_000, T0 + 2)
    assert est.estimate == 600_000 + 300_000 + 40_000


def test_a_stale_receiver_is_left_out_of_the_sum() -> None:
    est = estimator(2_000_000)
    est.on_remb(("a",), 600_000, 600_000, 0, T0)
    est.on_remb(("b",), 500_000, 500_000, 0, T0 + 1)
    now = T0 + TUNING.remb_ttl + 0.5  # "a" has said nothing for longer than TUNING.remb_ttl
    est.on_remb(("b",), 300_000, 500_000, 0, now)
    assert est.estimate == 300_000


def test_remb_decrease_is_bounded_below() -> None:
    est = estimator()
    est.on_remb(("c1",), 1000, 300_000, 0, T0)
    assert est.estimate == TUNING.min_estimate


def test_a_decrease_above_the_estimate_leaves_it_but_counts() -> None:
    est = estimator()
    est.carried(START)  # measured, no longer the start guess
    est.on_remb(("c1",), 2_000_000, 2_000_000, 0, T0)
    est.on_remb(("c1",), 1_000_000, 2_000_000, 0, T0 + 1)
    assert est.estimate == START
    assert est.decreases == 1
    assert est.last_decrease == T0 + 1


# --------------------------------------------------------------------------
# loss
# --------------------------------------------------------------------------


def test_high_loss_without_remb_lowers_to_what_was_sent_times_one_minus_half_the_loss() -> None:
    est = estimator(2_000_000)
    est.on_loss(0.2, 1_000_000, T0)
    assert est.estimate == pytest.approx(900_000)
    assert est.loss == 0.2
    assert est.decreases == 1
    assert est.last_decrease_reason == "loss -> 900000"


@pytest.mark.parametrize("loss", [0.0, 0.019, 0.02, 0.05, 0.10])
def test_loss_up_to_ten_percent_holds(loss: float) -> None:
    est = estimator(2_000_000)
    est.on_loss(loss, 1_000_000, T0)
    assert est.estimate == 2_000_000
    assert est.decreases == 0
    assert est.loss == loss


def test_loss_is_bounded_below() -> None:
    est = estimator()
    est.on_loss(0.9, 50_000, T0)
    assert est.estimate == TUNING.min_estimate


def test_high_loss_with_nothing_sent_is_ignored() -> None:
    est = estimator()
    est.on_loss(0.5, 0, T0)
    assert est.estimate == START
    assert est.decreases == 0


def test_random_loss_with_a_steady_remb_holds() -> None:
    est = estimator(2_000_000)
    est.on_remb(("c1",), 1_000_000, 1_000_000, 0, T0)
    est.on_loss(0.2, 1_000_000, T0 + 10)
    assert est.estimate == 2_000_000
    assert est.decreases == 0


def test_very_high_loss_counts_whatever_remb_says() -> None:
    est = estimator(2_000_000)
    est.on_remb(("c1",), 1_000_000, 1_000_000, 0, T0)
    est.on_loss(0.3, 1_000_000, T0 + 10)
    assert est.estimate == pytest.approx(850_000)


def test_high_loss_soon_after_a_remb_decrease_counts() -> None:
    est = estimator(2_000_000)
    est.on_remb(("c1",), 1_500_000, 1_500_000, 0, T0)
    est.on_remb(("c1",), 1_200_000, 1_500_000, 0, T0 + 1)
    assert est.estimate == 1_200_000
    est.on_loss(0.2, 1_000_000, T0 + 4)
    assert est.estimate == pytest.approx(900_000)
    est.estimate = 2_000_000
    est.on_loss(0.2, 1_000_000, T0 + 7)  # more than LOSS_WITH_REMB after it
    assert est.estimate == 2_000_000


# --------------------------------------------------------------------------
# probes: when one starts
# --------------------------------------------------------------------------


def test_no_probe_in_the_first_second() -> None:
    est = estimator()
    assert est.padding_target(WANT, T0 + 0.5, START) == 0
    assert probe_state(est) is ProbeState.IDLE


def test_first_probe_steps_carefully_from_what_is_sent() -> None:
    est = estimator()
    target = est.padding_target(WANT, FIRST_PROBE, START)
    assert target == START * TUNING.probe_factor_careful
    assert probe_state(est) is ProbeState.PROBING
    assert est.probing
    assert est.probe_target == target


def test_probe_steps_from_what_is_sent_when_that_is_below_the_estimate() -> None:
    est = estimator(1_000_000)
    assert est.padding_target(WANT, FIRST_PROBE, 200_000) == 200_000 * TUNING.probe_factor_careful


def test_an_untested_estimate_is_not_probed_from_even_when_more_is_sent() -> None:
    est = estimator(200_000)
    assert est.padding_target(WANT, FIRST_PROBE, 400_000) == 400_000 * TUNING.probe_factor_careful


def test_probe_from_nothing_steps_from_the_minimum() -> None:
    est = estimator()
    target = est.padding_target(WANT, FIRST_PROBE, 0)
    assert target == max(
        TUNING.min_estimate * TUNING.probe_factor_careful,
        TUNING.min_estimate + TUNING.probe_min_step,
    )


def test_probe_is_limited_by_what_is_wanted() -> None:
    est = estimator()
    assert est.padding_target(320_000, FIRST_PROBE, START) == pytest.approx(352_000)


def test_probe_is_limited_by_max_bps() -> None:
    est = estimator(START, 340_000)
    assert est.padding_target(WANT, FIRST_PROBE, START) == 340_000


@pytest.mark.parametrize("desired", [0.0, START])
def test_no_probe_when_the_estimate_is_enough(desired: float) -> None:
    est = estimator()
    assert est.padding_target(desired, FIRST_PROBE, START) == 0
    assert probe_state(est) is ProbeState.IDLE


def test_a_little_more_wanted_than_the_estimate_is_probed_for() -> None:
    # no dead band: an upgrade needing 5 % more than the estimate would
    # otherwise never be probed for, nor taken
    est = estimator()
    target = est.padding_target(START * 1.05, FIRST_PROBE, START)
    assert target == pytest.approx(START * 1.05 * 1.1)


def test_no_probe_at_max_bps() -> None:
    est = estimator(MAX, MAX)
    assert est.padding_target(2 * MAX, FIRST_PROBE, MAX) == 0


def test_no_probe_on_a_lossy_link() -> None:
    est = estimator()
    est.on_loss(TUNING.clean_loss, START, T0)
    assert est.padding_target(WANT, FIRST_PROBE, START) == 0
    est.on_loss(0.0, START, T0 + 0.5)
    assert est.padding_target(WANT, FIRST_PROBE, START) > 0


def test_no_probe_soon_after_a_decrease() -> None:
    est = estimator()
    est.cap(200_000, T0 + 0.8, "pause")
    assert est.estimate == 200_000
    assert est.padding_target(WANT, T0 + 0.8 + TUNING.decrease_hold - 0.01, 200_000) == 0
    assert est.padding_target(WANT, T0 + 0.8 + TUNING.decrease_hold, 200_000) > 0


def test_a_step_too_small_to_measure_is_not_probed() -> None:
    est = estimator(START, START + 4000)  # max_bps leaves less than half a step
    assert est.padding_target(WANT, FIRST_PROBE, START) == 0
    assert probe_state(est) is ProbeState.IDLE
    # ...and it is not asked again at every tick
    assert est.padding_target(WANT, FIRST_PROBE + TUNING.probe_backoff_min - 0.01, START) == 0


def test_the_first_measurement_replaces_the_start_guess_even_when_higher() -> None:
    # 5 % random loss keeps the link from looking clean, so nothing raised the
    # start value; one report with 12 % loss (no REMB yet) says the link
    # delivers about what was sent: that, not the guess, is the estimate
    est = estimator()
    est.on_loss(0.12, 1_000_000, T0)
    assert est.estimate == pytest.approx(940_000)
    # later decreases only ever lower it
    est.on_loss(0.12, 2_000_000, T0 + 5)
    assert est.estimate == pytest.approx(940_000)
    est.on_loss(0.4, 500_000, T0 + 10)
    assert est.estimate == pytest.approx(400_000)


def test_what_the_link_carried_replaces_the_guess_and_later_decreases_lower_it() -> None:
    est = estimator()
    est.carried(800_000)
    assert est.estimate == 800_000
    est.on_loss(0.2, 900_000, T0)
    assert est.estimate == pytest.approx(800_000)  # above the measured value: held
    est.carried(10 * MAX)
    assert est.estimate == MAX


def test_a_cap_above_the_start_guess_does_not_raise_it() -> None:
    est = estimator()
    est.cap(START * 2, T0, "pause")
    assert est.estimate == START
    est.on_loss(0.12, 1_000_000, T0 + 1)  # still the guess: the measurement replaces it
    assert est.estimate == pytest.approx(940_000)
