"""Unit tests for sfu/bandwidth.py: one subscriber's downlink estimate.

Time is driven explicitly through the ``now`` arguments (seconds).
"""

from __future__ import annotations

import pytest

from sfu.bandwidth import (
    CEILING_HOLD,
    CLEAN_LOSS,
    DECREASE_HOLD,
    MIN_ESTIMATE,
    PROBE_BACKOFF_MAX,
    PROBE_BACKOFF_MAX_PAUSED,
    PROBE_BACKOFF_MIN,
    PROBE_DURATION,
    PROBE_FACTOR,
    PROBE_FACTOR_CAREFUL,
    PROBE_FACTOR_PAUSED,
    PROBE_FEEDBACK_WAIT,
    PROBE_MIN_STEP,
    PROBE_SETTLE,
    REMB_TTL,
    DownlinkEstimator,
    ProbeState,
)

START = 300_000
MAX = 5_000_000
WANT = 3_000_000  # what the allocation would like: always more than the estimate
T0 = 100.0  # the estimator is created at this time; the first probe may start a second later
FIRST_PROBE = T0 + 1.0
EPS = 1e-6  # past a threshold despite float rounding


def estimator(start: int = START, max_bps: int = MAX) -> DownlinkEstimator:
    return DownlinkEstimator(start, max_bps, T0)


def probe_state(est: DownlinkEstimator) -> ProbeState:
    """Not narrowed by mypy across calls that change it."""
    return est.probe_state


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
    now = T0 + REMB_TTL + 0.5  # "a" has said nothing for longer than REMB_TTL
    est.on_remb(("b",), 300_000, 500_000, 0, now)
    assert est.estimate == 300_000


def test_remb_decrease_is_bounded_below() -> None:
    est = estimator()
    est.on_remb(("c1",), 1000, 300_000, 0, T0)
    assert est.estimate == MIN_ESTIMATE


def test_a_decrease_above_the_estimate_leaves_it_but_counts() -> None:
    est = estimator()
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
    assert est.estimate == MIN_ESTIMATE


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
    assert target == START * PROBE_FACTOR_CAREFUL
    assert probe_state(est) is ProbeState.PROBING
    assert est.probing
    assert est.probe_target == target


def test_probe_steps_from_what_is_sent_when_that_is_below_the_estimate() -> None:
    est = estimator(1_000_000)
    assert est.padding_target(WANT, FIRST_PROBE, 200_000) == 200_000 * PROBE_FACTOR_CAREFUL


def test_probe_from_nothing_steps_from_the_minimum() -> None:
    est = estimator()
    target = est.padding_target(WANT, FIRST_PROBE, 0)
    assert target == max(MIN_ESTIMATE * PROBE_FACTOR_CAREFUL, MIN_ESTIMATE + PROBE_MIN_STEP)


def test_probe_is_limited_by_what_is_wanted() -> None:
    est = estimator()
    assert est.padding_target(320_000, FIRST_PROBE, START) == pytest.approx(352_000)


def test_probe_is_limited_by_max_bps() -> None:
    est = estimator(START, 340_000)
    assert est.padding_target(WANT, FIRST_PROBE, START) == 340_000


@pytest.mark.parametrize("desired", [0.0, START, START * 1.05])
def test_no_probe_when_the_estimate_is_enough(desired: float) -> None:
    est = estimator()
    assert est.padding_target(desired, FIRST_PROBE, START) == 0
    assert probe_state(est) is ProbeState.IDLE


def test_no_probe_at_max_bps() -> None:
    est = estimator(MAX, MAX)
    assert est.padding_target(2 * MAX, FIRST_PROBE, MAX) == 0


def test_no_probe_on_a_lossy_link() -> None:
    est = estimator()
    est.on_loss(CLEAN_LOSS, START, T0)
    assert est.padding_target(WANT, FIRST_PROBE, START) == 0
    est.on_loss(0.0, START, T0 + 0.5)
    assert est.padding_target(WANT, FIRST_PROBE, START) > 0


def test_no_probe_soon_after_a_decrease() -> None:
    est = estimator()
    est.cap(200_000, T0 + 0.8, "pause")
    assert est.estimate == 200_000
    assert est.padding_target(WANT, T0 + 0.8 + DECREASE_HOLD - 0.01, 200_000) == 0
    assert est.padding_target(WANT, T0 + 0.8 + DECREASE_HOLD, 200_000) > 0


def test_a_step_too_small_to_measure_is_not_probed() -> None:
    est = estimator(START, START + 4000)  # max_bps leaves less than half a step
    assert est.padding_target(WANT, FIRST_PROBE, START) == 0
    assert probe_state(est) is ProbeState.IDLE
    # ...and it is not asked again at every tick
    assert est.padding_target(WANT, FIRST_PROBE + PROBE_BACKOFF_MIN - 0.01, START) == 0


# --------------------------------------------------------------------------
# probes: PROBING -> SETTLING -> verdict
# --------------------------------------------------------------------------


def probe(est: DownlinkEstimator, now: float, sent: float) -> float:
    """Start a probe at ``now`` and run its padding window; returns the target."""
    target = est.padding_target(WANT, now, sent)
    assert target > 0
    assert est.padding_target(WANT, now + PROBE_DURATION / 2, sent) == target
    assert est.padding_target(WANT, now + PROBE_DURATION, sent) == 0
    assert probe_state(est) is ProbeState.SETTLING
    return target


def test_clean_probe_raises_the_estimate_and_doubles_the_next_step() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + PROBE_DURATION
    est.on_loss(0.0, START, end + 0.1)  # a receiver report covering the probe
    assert est.padding_target(WANT, end + PROBE_SETTLE - 0.01, START) == 0
    assert probe_state(est) is ProbeState.SETTLING  # settles at least PROBE_SETTLE
    assert est.padding_target(WANT, end + PROBE_SETTLE + EPS, START) == 0
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_ok == 1 and est.probes_failed == 0
    assert est.estimate == target
    next_start = end + PROBE_SETTLE + EPS + PROBE_BACKOFF_MIN
    assert est.padding_target(WANT, next_start - 0.01, target) == 0
    assert est.padding_target(WANT, next_start, target) == target * PROBE_FACTOR


def test_clean_probe_with_remb_needs_a_remb_after_the_padding() -> None:
    est = estimator()
    est.on_remb(("c1",), 400_000, START, 0, T0)
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + PROBE_DURATION
    est.on_loss(0.0, START, end + 0.1)
    assert est.padding_target(WANT, end + PROBE_SETTLE + EPS, START) == 0
    assert probe_state(est) is ProbeState.SETTLING  # a report, but no REMB yet
    est.on_remb(("c1",), 420_000, START, 0, end + 0.9)
    assert est.padding_target(WANT, end + 1.0, START) == 0
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_ok == 1
    assert est.estimate == target


def test_probe_without_feedback_fails_after_the_feedback_wait() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + PROBE_DURATION
    assert est.padding_target(WANT, end + PROBE_FEEDBACK_WAIT - 0.01, START) == 0
    assert probe_state(est) is ProbeState.SETTLING
    assert est.padding_target(WANT, end + PROBE_FEEDBACK_WAIT, START) == 0
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_failed == 1 and est.probes_ok == 0
    assert est.estimate == START  # nothing says the link is worse
    # back-off doubled; the next probe stays below the failed one and is careful
    fail = end + PROBE_FEEDBACK_WAIT
    assert est.padding_target(WANT, fail + 2 * PROBE_BACKOFF_MIN - 0.01, START) == 0
    again = est.padding_target(WANT, fail + 2 * PROBE_BACKOFF_MIN, START)
    assert again == pytest.approx(min(START * PROBE_FACTOR_CAREFUL, target * 0.9))


def test_report_early_in_the_probe_does_not_cover_it() -> None:
    est = estimator()
    est.padding_target(WANT, FIRST_PROBE, START)
    est.on_loss(0.0, START, FIRST_PROBE + PROBE_SETTLE - 0.1)  # sent before the probe told
    est.padding_target(WANT, FIRST_PROBE + PROBE_DURATION, START)
    end = FIRST_PROBE + PROBE_DURATION
    assert est.padding_target(WANT, end + PROBE_SETTLE + EPS, START) == 0
    assert probe_state(est) is ProbeState.SETTLING


def test_lossy_probe_drops_to_what_got_through() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + PROBE_DURATION
    est.on_loss(0.2, START, end + 0.1)
    assert est.estimate == START  # the probe's verdict decides, not the loss rule
    est.padding_target(WANT, end + PROBE_SETTLE + EPS, START)
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_failed == 1
    delivered = target * 0.8 * 0.95
    assert est.estimate == pytest.approx(delivered)
    assert est.last_decrease_reason.startswith("probe")
    assert est.last_decrease == end + PROBE_SETTLE + EPS


def test_lossy_probe_never_drops_below_the_minimum() -> None:
    est = estimator()
    probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + PROBE_DURATION
    est.on_loss(0.95, START, end + 0.1)
    est.padding_target(WANT, end + PROBE_SETTLE + EPS, START)
    assert est.estimate == MIN_ESTIMATE


def test_after_a_lossy_probe_the_next_one_waits_for_the_ceiling_to_expire() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + PROBE_DURATION
    est.on_loss(0.1, START, end + 0.1)
    fail = end + PROBE_SETTLE + EPS
    est.padding_target(WANT, fail, START)
    assert est.probes_failed == 1
    delivered = target * 0.9 * 0.95  # above the estimate: it is not raised to it
    assert delivered > START
    assert est.estimate == START
    assert est.last_decrease == fail
    est.on_loss(0.0, START, fail + 0.5)
    # held back by the "decrease", longer than the doubled back-off
    assert est.padding_target(WANT, fail + DECREASE_HOLD - 0.01, START) == 0
    # then capped under 90 % of what got through: too small a step from START
    assert delivered * 0.9 < START + PROBE_MIN_STEP / 2
    assert est.padding_target(WANT, fail + DECREASE_HOLD, START) == 0
    assert probe_state(est) is ProbeState.IDLE
    # once the ceiling expires, a careful step again
    again = est.padding_target(WANT, fail + CEILING_HOLD + EPS, START)
    assert again == START * PROBE_FACTOR_CAREFUL


def test_remb_decrease_during_a_probe_fails_it() -> None:
    est = estimator()
    est.on_remb(("c1",), 500_000, START, 0, T0)
    est.padding_target(WANT, FIRST_PROBE, START)
    est.on_remb(("c1",), 280_000, START, 20_000, FIRST_PROBE + 0.5)
    assert est.estimate == 300_000  # lowered at once (REMB plus audio)
    end = FIRST_PROBE + PROBE_DURATION
    est.padding_target(WANT, end, START)
    est.on_loss(0.0, START, end + 0.1)
    est.on_remb(("c1",), 280_000, START, 20_000, end + 0.2)
    est.padding_target(WANT, end + PROBE_SETTLE + EPS, START)
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_failed == 1 and est.probes_ok == 0
    assert est.estimate == 300_000


def test_careful_factor_after_a_failure_that_follows_a_success() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + PROBE_DURATION
    est.on_loss(0.0, START, end + 0.1)
    est.padding_target(WANT, end + PROBE_SETTLE + EPS, START)
    assert est.estimate == target  # 375 000
    start2 = end + PROBE_SETTLE + EPS + PROBE_BACKOFF_MIN
    target2 = probe(est, start2, target)
    assert target2 == target * PROBE_FACTOR
    end2 = start2 + PROBE_DURATION
    fail = end2 + PROBE_FEEDBACK_WAIT  # no report: failed
    est.padding_target(WANT, fail, target)
    assert est.probes_failed == 1
    target3 = est.padding_target(WANT, fail + 2 * PROBE_BACKOFF_MIN, target)
    assert target3 == target * PROBE_FACTOR_CAREFUL


def test_successful_probes_climb_to_max_bps_and_stop() -> None:
    est = estimator(START, 1_000_000)
    now = FIRST_PROBE
    for _ in range(10):
        sent = est.estimate
        target = est.padding_target(WANT, now, sent)
        if target == 0:
            break
        assert target <= est.max_bps
        now += PROBE_DURATION
        est.padding_target(WANT, now, sent)
        est.on_loss(0.0, sent, now + 0.1)
        now += PROBE_SETTLE + EPS
        est.padding_target(WANT, now, sent)
        assert probe_state(est) is ProbeState.IDLE
        now += PROBE_BACKOFF_MIN
    assert est.estimate == 1_000_000
    assert est.padding_target(WANT, now + 10, est.estimate) == 0


def probe_waits(paused: bool, count: int) -> list[float]:
    """Seconds from each failed probe (no feedback at all) to the next probe."""
    est = estimator(1_000_000)
    now = FIRST_PROBE
    waits: list[float] = []
    failed_at: float | None = None
    while len(waits) < count and now < FIRST_PROBE + 300:
        state = est.probe_state
        target = est.padding_target(WANT, now, 1_000_000, paused=paused)
        if state is ProbeState.IDLE and target > 0 and failed_at is not None:
            waits.append(now - failed_at)
        if state is ProbeState.SETTLING and probe_state(est) is ProbeState.IDLE:
            failed_at = now
        now = round(now + STEP, 2)
    assert est.probes_ok == 0
    return waits


STEP = 0.01


@pytest.mark.parametrize(
    ("paused", "bound"), [(False, PROBE_BACKOFF_MAX), (True, PROBE_BACKOFF_MAX_PAUSED)]
)
def test_failed_probes_back_off_exponentially_up_to_the_bound(paused: bool, bound: float) -> None:
    waits = probe_waits(paused, 8)
    assert waits[0] == pytest.approx(2 * PROBE_BACKOFF_MIN)
    assert waits[1] == pytest.approx(4 * PROBE_BACKOFF_MIN)
    # later: the back-off, or the end of CEILING_HOLD if that is later (a step
    # capped under a failed probe is too small, and is retried every PROBE_BACKOFF_MIN)
    slack = PROBE_BACKOFF_MIN + STEP
    assert all(w <= max(bound, CEILING_HOLD) + slack for w in waits)
    assert waits[-1] == pytest.approx(bound, abs=slack)


def test_while_video_is_paused_probes_step_by_at_least_half() -> None:
    est = estimator()
    target = est.padding_target(WANT, FIRST_PROBE, START, paused=True)
    assert target == START * max(PROBE_FACTOR_CAREFUL, PROBE_FACTOR_PAUSED)


def test_a_validated_estimate_is_probed_from_even_when_less_is_sent() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + PROBE_DURATION
    est.on_loss(0.0, START, end + 0.1)
    est.padding_target(WANT, end + PROBE_SETTLE + EPS, START)
    assert est.estimate == target
    later = end + PROBE_SETTLE + EPS + PROBE_BACKOFF_MIN
    # only 100 kbit/s sent, but the link proved 375 kbit/s
    assert est.padding_target(WANT, later, 100_000) == target * PROBE_FACTOR


def test_a_decrease_unvalidates_the_estimate() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + PROBE_DURATION
    est.on_loss(0.0, START, end + 0.1)
    est.padding_target(WANT, end + PROBE_SETTLE + EPS, START)
    est.cap(10 * MAX, end + 1, "pause")  # lowers nothing, but is a decrease
    assert est.estimate == target
    later = end + 1 + DECREASE_HOLD
    assert est.padding_target(WANT, later, 100_000) == 100_000 * PROBE_FACTOR
