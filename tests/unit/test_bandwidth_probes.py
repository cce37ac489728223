"""Unit tests for sfu/bandwidth.py: probes, from padding to verdict, back-off and ceilings.

Time is driven explicitly through the ``now`` arguments (seconds).
"""

from __future__ import annotations

import pytest

from sfu.bandwidth import DownlinkEstimator, ProbeState
from sfu.tuning import TUNING
from tests.unit.estimator_support import (
    EPS,
    FIRST_PROBE,
    MAX,
    START,
    T0,
    WANT,
    estimator,
    probe_state,
)

# --------------------------------------------------------------------------
# probes: PROBING -> SETTLING -> verdict
# --------------------------------------------------------------------------


def probe(est: DownlinkEstimator, now: float, sent: float) -> float:
    """Start a probe at ``now`` and run its padding window; returns the target."""
    target = est.padding_target(WANT, now, sent)
    assert target > 0
    assert est.padding_target(WANT, now + TUNING.probe_duration / 2, sent) == target
    assert est.padding_target(WANT, now + TUNING.probe_duration, sent) == 0
    assert probe_state(est) is ProbeState.SETTLING
    return target


def covering_report(est: DownlinkEstimator, end: float, loss: float = 0.0) -> float:
    """A receiver report that covers a probe whose padding stopped at ``end``; returns its time."""
    at = end + TUNING.probe_settle + EPS
    est.on_loss(loss, START, at)
    return at


def test_clean_probe_raises_the_estimate_and_doubles_the_next_step() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    est.on_loss(
        0.0, START, end + TUNING.probe_settle - 0.01
    )  # too soon after the padding to cover it
    assert probe_state(est) is ProbeState.SETTLING
    assert est.padding_target(WANT, end + TUNING.probe_settle - 0.01, START) == 0
    assert probe_state(est) is ProbeState.SETTLING
    judged = covering_report(est, end)  # judged at once: no REMB to wait for
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_ok == 1 and est.probes_failed == 0
    assert est.estimate == target
    next_start = judged + TUNING.probe_backoff_min
    assert est.padding_target(WANT, next_start - 0.01, target) == 0
    assert est.padding_target(WANT, next_start, target) == target * TUNING.probe_factor


def test_clean_probe_with_remb_waits_for_a_remb_after_the_padding() -> None:
    est = estimator()
    est.on_remb(("c1",), 400_000, START, 0, T0)
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    est.on_remb(("c1",), 410_000, START, 0, end + 0.1)  # too soon: does not cover the probe
    covering_report(est, end)
    assert probe_state(est) is ProbeState.SETTLING  # a report, but no REMB yet
    assert est.padding_target(WANT, end + TUNING.probe_remb_wait / 2, START) == 0
    assert probe_state(est) is ProbeState.SETTLING
    est.on_remb(("c1",), 420_000, START, 0, end + TUNING.probe_remb_wait / 2)
    assert est.padding_target(WANT, end + TUNING.probe_remb_wait / 2 + EPS, START) == 0
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_ok == 1
    assert est.estimate == target


def test_clean_probe_with_remb_is_judged_without_one_after_the_remb_wait() -> None:
    est = estimator()
    est.on_remb(("c1",), 400_000, START, 0, T0)
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    covering_report(est, end)
    assert est.padding_target(WANT, end + TUNING.probe_remb_wait - 0.01, START) == 0
    assert probe_state(est) is ProbeState.SETTLING
    assert est.padding_target(WANT, end + TUNING.probe_remb_wait + EPS, START) == 0
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_ok == 1 and est.probes_failed == 0
    assert est.estimate == target


def test_while_paused_a_clean_probe_does_not_wait_for_a_remb() -> None:
    est = estimator()
    est.on_remb(("c1",), 400_000, START, 0, T0)
    target = est.padding_target(WANT, FIRST_PROBE, START, paused=True)
    end = FIRST_PROBE + TUNING.probe_duration
    assert est.padding_target(WANT, end, START, paused=True) == 0
    covering_report(est, end)
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_ok == 1
    assert est.estimate == target


def test_probe_without_feedback_fails_after_the_feedback_wait() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    assert est.padding_target(WANT, end + TUNING.probe_feedback_wait - 0.01, START) == 0
    assert probe_state(est) is ProbeState.SETTLING
    assert est.padding_target(WANT, end + TUNING.probe_feedback_wait, START) == 0
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_failed == 1 and est.probes_ok == 0
    assert est.estimate == START  # nothing says the link is worse
    # back-off doubled; the next probe is careful and goes at most half-way to the failed one
    fail = end + TUNING.probe_feedback_wait
    assert est.padding_target(WANT, fail + 2 * TUNING.probe_backoff_min - 0.01, START) == 0
    again = est.padding_target(WANT, fail + 2 * TUNING.probe_backoff_min, START)
    assert (START + target) / 2 < START * TUNING.probe_factor_careful
    assert again == pytest.approx((START + target) / 2)


def test_report_early_in_the_probe_does_not_cover_it() -> None:
    est = estimator()
    est.padding_target(WANT, FIRST_PROBE, START)
    est.on_loss(0.0, START, FIRST_PROBE + TUNING.probe_settle - 0.1)  # sent before the probe told
    est.padding_target(WANT, FIRST_PROBE + TUNING.probe_duration, START)
    end = FIRST_PROBE + TUNING.probe_duration
    assert est.padding_target(WANT, end + TUNING.probe_settle + EPS, START) == 0
    assert probe_state(est) is ProbeState.SETTLING


def test_a_report_that_does_not_cover_the_probe_does_not_finish_it() -> None:
    est = estimator()
    est.padding_target(WANT, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    # "covers" before the padding stopped: there is more to come
    est.on_loss(0.0, START, end - 0.1, covers_probe=True)
    assert probe_state(est) is ProbeState.PROBING
    assert est.padding_target(WANT, end, START) == 0
    # late, but the receiver has not yet got the probe's last packet
    est.on_loss(0.0, START, end + 1.0, covers_probe=False)
    assert probe_state(est) is ProbeState.SETTLING
    assert est.padding_target(WANT, end + 1.0 + EPS, START) == 0
    assert probe_state(est) is ProbeState.SETTLING
    # one that does finishes it at once, however soon after the padding
    est.on_loss(0.0, START, end + 1.1, covers_probe=True)
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_ok == 1


def test_a_covering_report_soon_after_the_padding_finishes_the_probe_at_once() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    est.on_loss(0.0, START, end + 0.05, covers_probe=True)  # sooner than TUNING.probe_settle
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_ok == 1
    assert est.estimate == target


def test_lossy_probe_drops_to_what_got_through() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    fail = covering_report(est, end, loss=0.2)  # judged at once
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_failed == 1
    delivered = target * 0.8 * 0.95
    # the probe's verdict decides, not the loss rule (what was sent x (1 - loss/2))
    assert delivered != START * (1 - 0.2 / 2)
    assert est.estimate == pytest.approx(delivered)
    assert est.last_decrease_reason.startswith("probe")
    assert est.last_decrease == fail


def test_lossy_probe_never_drops_below_the_minimum() -> None:
    est = estimator()
    probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    covering_report(est, end, loss=0.95)
    assert probe_state(est) is ProbeState.IDLE
    assert est.estimate == TUNING.min_estimate


def lossy_probe_failed() -> tuple[DownlinkEstimator, float, float]:
    """A first probe that lost 10 %; returns the estimator, when it failed, and what got through."""
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    fail = covering_report(est, end, loss=0.1)
    assert est.probes_failed == 1
    delivered = target * 0.9 * 0.95  # above the estimate: it is not raised to it
    assert delivered > START
    assert est.estimate == START
    assert est.last_decrease == fail
    est.on_loss(0.0, START, fail + 0.5)
    return est, fail, delivered


def test_after_a_lossy_probe_the_next_one_searches_half_way_to_what_got_through() -> None:
    est, fail, delivered = lossy_probe_failed()
    # held back by the "decrease", longer than the doubled back-off
    assert est.padding_target(WANT, fail + TUNING.decrease_hold - 0.01, START) == 0
    # then half-way from what is sent to what got through, not a careful step past it
    half_way = (START + delivered) / 2
    assert half_way < START * TUNING.probe_factor_careful
    assert est.padding_target(WANT, fail + TUNING.decrease_hold, START) == pytest.approx(half_way)


def test_once_the_ceiling_expires_a_careful_step_again() -> None:
    est, fail, _ = lossy_probe_failed()
    assert est.padding_target(WANT, fail + TUNING.ceiling_hold + EPS, START) == (
        START * TUNING.probe_factor_careful
    )


def test_a_search_step_too_small_to_measure_is_not_probed() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    # a little was lost: what got through is barely above what is sent now
    sent = 290_000
    loss = 1 - (sent + TUNING.probe_min_step / 2) / (target * 0.95)
    fail = covering_report(est, end, loss=loss)
    est.on_loss(0.0, sent, fail + 0.5)
    ceiling = target * (1 - loss) * 0.95
    assert (sent + ceiling) / 2 < sent + TUNING.probe_min_step / 2
    assert est.padding_target(WANT, fail + TUNING.decrease_hold + EPS, sent) == 0
    assert probe_state(est) is ProbeState.IDLE
    assert (
        est.padding_target(WANT, fail + TUNING.ceiling_hold + EPS, sent)
        == sent * TUNING.probe_factor_careful
    )


def test_a_lossy_report_during_a_probe_stops_it_and_fails_it() -> None:
    est = estimator()
    target = est.padding_target(WANT, FIRST_PROBE, START)
    # sent before the probe could tell: its loss is not the probe's
    est.on_loss(0.5, START, FIRST_PROBE + TUNING.probe_settle - 0.01)
    assert est.padding_now(FIRST_PROBE + TUNING.probe_settle - 0.01)
    stop = FIRST_PROBE + TUNING.probe_settle + EPS
    est.on_loss(0.05, START, stop)
    assert not est.padding_now(stop)
    assert est.padding_target(WANT, stop + 0.01, START) == 0
    assert probe_state(est) is ProbeState.SETTLING
    covering_report(est, stop)  # clean, but the probe lost 5 %
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_failed == 1 and est.probes_ok == 0
    delivered = target * (1 - 0.05) * 0.95  # above the estimate: it is not raised to it
    assert est.last_decrease_reason == f"probe -> {int(delivered)}"
    assert est.estimate == START


def test_remb_decrease_during_a_probe_fails_it() -> None:
    est = estimator()
    est.on_remb(("c1",), 500_000, START, 0, T0)
    est.padding_target(WANT, FIRST_PROBE, START)
    stop = FIRST_PROBE + TUNING.probe_duration / 2
    est.on_remb(("c1",), 260_000, START, 20_000, stop)
    assert est.estimate == 280_000  # lowered at once (REMB plus audio)
    est.padding_target(WANT, stop + 0.01, START)
    assert probe_state(est) is ProbeState.SETTLING
    covering_report(est, stop)
    est.on_remb(("c1",), 260_000, START, 20_000, stop + TUNING.probe_settle + 0.1)
    est.padding_target(WANT, stop + TUNING.probe_settle + 0.2, START)
    assert probe_state(est) is ProbeState.IDLE
    assert est.probes_failed == 1 and est.probes_ok == 0
    assert est.estimate == 280_000


def test_a_remb_decrease_stops_the_padding_at_once() -> None:
    est = estimator()
    est.on_remb(("c1",), 500_000, START, 0, T0)
    assert est.padding_target(WANT, FIRST_PROBE, START) > 0
    assert est.padding_now(FIRST_PROBE + 0.1)
    est.on_remb(("c1",), 400_000, START * 1.5, 0, FIRST_PROBE + 0.1)  # below the padded rate
    assert not est.padding_now(FIRST_PROBE + 0.1)
    assert probe_state(est) is ProbeState.SETTLING  # at once: markers, no more padding
    assert est.padding_target(WANT, FIRST_PROBE + 0.12, START) == 0
    assert probe_state(est) is ProbeState.SETTLING


def test_a_remb_that_does_not_sink_leaves_the_padding_on() -> None:
    est = estimator()
    est.on_remb(("c1",), 500_000, START, 0, T0)
    target = est.padding_target(WANT, FIRST_PROBE, START)
    est.on_remb(("c1",), 490_000, START, 0, FIRST_PROBE + 0.1)
    assert est.padding_now(FIRST_PROBE + 0.1)
    assert est.padding_target(WANT, FIRST_PROBE + 0.2, START) == target


def test_padding_now_only_within_the_probe_window() -> None:
    est = estimator()
    assert not est.padding_now(FIRST_PROBE)
    est.padding_target(WANT, FIRST_PROBE, START)
    assert est.padding_now(FIRST_PROBE)
    assert est.padding_now(FIRST_PROBE + TUNING.probe_duration - 0.01)
    assert not est.padding_now(FIRST_PROBE + TUNING.probe_duration)


@pytest.mark.parametrize(
    ("delay", "clean"),
    [
        (TUNING.probe_delay_limit + 0.01, False),
        (TUNING.probe_delay_limit, True),
        (TUNING.probe_delay_limit - 0.01, True),
    ],
)
def test_a_probe_that_queues_its_reports_fails(delay: float, clean: bool) -> None:
    est = estimator()
    target = est.padding_target(WANT, FIRST_PROBE, START)
    at = FIRST_PROBE + 0.3
    est.on_queue_delay(delay, FIRST_PROBE + 0.1, at)
    assert est.padding_now(at) is clean
    end = FIRST_PROBE + TUNING.probe_duration if clean else at
    est.padding_target(WANT, end, START)
    covering_report(est, end)
    assert probe_state(est) is ProbeState.IDLE
    assert (est.probes_ok, est.probes_failed) == ((1, 0) if clean else (0, 1))
    assert est.estimate == (target if clean else START)  # a queue lowers nothing by itself


def test_a_queue_delay_measured_by_a_report_sent_before_the_probe_is_ignored() -> None:
    est = estimator()
    target = est.padding_target(WANT, FIRST_PROBE, START)
    est.on_queue_delay(1.0, FIRST_PROBE - 0.01, FIRST_PROBE + 0.3)
    assert est.padding_now(FIRST_PROBE + 0.3)
    end = FIRST_PROBE + TUNING.probe_duration
    est.padding_target(WANT, end, START)
    covering_report(est, end)
    assert est.probes_ok == 1
    assert est.estimate == target


def test_a_queue_delay_outside_a_probe_is_ignored() -> None:
    est = estimator()
    est.on_queue_delay(1.0, T0, T0 + 0.5)
    assert est.decreases == 0
    assert est.padding_target(WANT, FIRST_PROBE, START) == START * TUNING.probe_factor_careful


def test_careful_factor_after_a_failure_that_follows_a_success() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    judged = covering_report(est, end)
    assert est.estimate == target  # 375 000
    start2 = judged + TUNING.probe_backoff_min
    target2 = probe(est, start2, target)
    assert target2 == target * TUNING.probe_factor
    end2 = start2 + TUNING.probe_duration
    fail = end2 + TUNING.probe_feedback_wait  # no report: failed
    est.padding_target(WANT, fail, target)
    assert est.probes_failed == 1
    target3 = est.padding_target(WANT, fail + 2 * TUNING.probe_backoff_min, target)
    assert target3 < (target + target2) / 2  # the careful step is below half-way
    assert target3 == target * TUNING.probe_factor_careful


def run_probe(
    est: DownlinkEstimator, now: float, sent: float, clean: bool = True, paused: bool = False
) -> tuple[float, float]:
    """One probe from ``now``: clean, or failed for want of a report.

    Returns its target and when the next one may start.
    """
    target = est.padding_target(WANT, now, sent, paused=paused)
    assert target > 0
    end = now + TUNING.probe_duration
    assert est.padding_target(WANT, end, sent, paused=paused) == 0
    if clean:
        judged = covering_report(est, end)
        assert probe_state(est) is ProbeState.IDLE
        return target, judged + TUNING.probe_backoff_min
    failed = end + TUNING.probe_feedback_wait + EPS
    est.padding_target(WANT, failed, sent, paused=paused)
    assert probe_state(est) is ProbeState.IDLE
    return target, failed + 2 * TUNING.probe_backoff_min


def test_under_a_ceiling_clean_probes_search_half_way_to_it() -> None:
    est = estimator()
    validated, now = run_probe(est, FIRST_PROBE, START)  # 375 000
    ceiling, now = run_probe(est, now, START, clean=False)  # 750 000
    assert ceiling == validated * TUNING.probe_factor
    assert est.estimate == validated
    careful, now = run_probe(est, now, START)  # a careful step is below half-way
    assert careful == validated * TUNING.probe_factor_careful
    assert careful < ceiling * 0.9
    # a doubled step would pass the ceiling: half-way to it instead
    half_way, now = run_probe(est, now, START)
    assert careful * TUNING.probe_factor > ceiling
    assert half_way == pytest.approx((careful + ceiling) / 2)
    assert half_way < ceiling * 0.9  # the ceiling still holds
    assert est.estimate == half_way
    assert est.padding_target(WANT, now, START) == pytest.approx((half_way + ceiling) / 2)
    assert now < FIRST_PROBE + TUNING.ceiling_hold


def test_a_clean_probe_at_90_percent_of_the_ceiling_drops_it() -> None:
    est = estimator()
    _, now = run_probe(est, FIRST_PROBE, START)
    ceiling, now = run_probe(est, now, START, clean=False)
    _, now = run_probe(est, now, START)  # a careful step
    half_way, now = run_probe(est, now, START)
    reached, now = run_probe(est, now, START)
    assert (est.probes_ok, est.probes_failed) == (4, 1)
    assert reached == pytest.approx((half_way + ceiling) / 2)
    assert ceiling * 0.9 <= reached < ceiling
    assert now < FIRST_PROBE + TUNING.ceiling_hold
    # past the failed rate now: a full step
    assert est.padding_target(WANT, now, START) == pytest.approx(reached * TUNING.probe_factor)


def failed_first_probe() -> tuple[DownlinkEstimator, float, float]:
    """A first probe with no feedback at all; returns the estimator, its target, when it failed."""
    est = estimator()
    target, _ = run_probe(est, FIRST_PROBE, START, clean=False)
    return est, target, FIRST_PROBE + TUNING.probe_duration + TUNING.probe_feedback_wait + EPS


def test_while_paused_the_ceiling_holds_for_a_shorter_time() -> None:
    assert TUNING.ceiling_hold_paused < TUNING.ceiling_hold
    est, target, fail = failed_first_probe()
    at = fail + TUNING.ceiling_hold_paused - 0.01
    assert est.padding_target(WANT, at, START, paused=True) == pytest.approx((START + target) / 2)
    est, target, fail = failed_first_probe()
    at = fail + TUNING.ceiling_hold_paused + EPS
    assert est.padding_target(WANT, at, START, paused=True) == START * TUNING.probe_factor_paused
    est, target, fail = failed_first_probe()
    assert est.padding_target(WANT, at, START) == pytest.approx((START + target) / 2)


def test_successful_probes_climb_to_max_bps_and_stop() -> None:
    est = estimator(START, 1_000_000)
    now = FIRST_PROBE
    for _ in range(10):
        sent = est.estimate
        target = est.padding_target(WANT, now, sent)
        if target == 0:
            break
        assert target <= est.max_bps
        now += TUNING.probe_duration
        est.padding_target(WANT, now, sent)
        now += TUNING.probe_settle + EPS
        est.on_loss(0.0, sent, now)  # covers the probe: judged at once
        assert probe_state(est) is ProbeState.IDLE
        now += TUNING.probe_backoff_min
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
    ("paused", "bound"),
    [(False, TUNING.probe_backoff_max), (True, TUNING.probe_backoff_max_paused)],
)
def test_failed_probes_back_off_exponentially_up_to_the_bound(paused: bool, bound: float) -> None:
    waits = probe_waits(paused, 8)
    assert waits[0] == pytest.approx(2 * TUNING.probe_backoff_min)
    assert waits[1] == pytest.approx(4 * TUNING.probe_backoff_min)
    # later: the back-off, or the end of TUNING.ceiling_hold if that is later (a step
    # capped under a failed probe is too small, and is retried every TUNING.probe_backoff_min)
    slack = TUNING.probe_backoff_min + STEP
    assert all(w <= max(bound, TUNING.ceiling_hold) + slack for w in waits)
    assert waits[-1] == pytest.approx(bound, abs=slack)


def test_while_video_is_paused_probes_step_by_at_least_half() -> None:
    est = estimator()
    target = est.padding_target(WANT, FIRST_PROBE, START, paused=True)
    assert target == START * max(TUNING.probe_factor_careful, TUNING.probe_factor_paused)


def test_a_validated_estimate_is_probed_from_even_when_less_is_sent() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    judged = covering_report(est, end)
    assert est.estimate == target
    later = judged + TUNING.probe_backoff_min
    # only 100 kbit/s sent, but the link proved 375 kbit/s
    assert est.padding_target(WANT, later, 100_000) == target * TUNING.probe_factor


def test_an_untested_start_estimate_gives_way_to_a_lower_clean_probe() -> None:
    est = estimator(1_000_000)
    target = probe(est, FIRST_PROBE, 200_000)
    assert target == 200_000 * TUNING.probe_factor_careful
    end = FIRST_PROBE + TUNING.probe_duration
    judged = covering_report(est, end)
    assert est.probes_ok == 1
    assert est.estimate == target  # lower than the start value: proven, not guessed
    # ...and validated: probed from, whatever is sent
    assert (
        est.padding_target(WANT, judged + TUNING.probe_backoff_min, 100_000)
        == target * TUNING.probe_factor
    )


def test_a_decrease_unvalidates_the_estimate() -> None:
    est = estimator()
    target = probe(est, FIRST_PROBE, START)
    end = FIRST_PROBE + TUNING.probe_duration
    covering_report(est, end)
    est.cap(10 * MAX, end + 1, "pause")  # lowers nothing, but is a decrease
    assert est.estimate == target
    later = end + 1 + TUNING.decrease_hold
    assert est.padding_target(WANT, later, 100_000) == 100_000 * TUNING.probe_factor
