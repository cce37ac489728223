"""sfu/resume_backoff.py: a resume that fails makes the next one wait, unless the link widened."""

from __future__ import annotations

from sfu.resume_backoff import HOLD_MAX, HOLD_MIN, MARGIN, TRIAL, ResumeBackoff


def test_a_track_never_resumed_may_resume() -> None:
    backoff: ResumeBackoff[str] = ResumeBackoff()
    assert backoff.may_resume("v", 0.0, 10_000)
    backoff.paused("v", 1.0)  # a first pause is no failed trial
    assert backoff.may_resume("v", 1.5, 10_000)


def test_paused_again_within_the_trial_holds_doubling_up_to_the_maximum() -> None:
    backoff: ResumeBackoff[str] = ResumeBackoff()
    now = 0.0
    holds = []
    for _ in range(6):
        backoff.resumed("v", now, 70_000)
        now += 3.0  # paused again 3 s later: the trial failed
        backoff.paused("v", now)
        assert not backoff.may_resume("v", now + 0.5, 70_000)
        hold = next(h for h in range(1, 200) if backoff.may_resume("v", now + h, 70_000))
        holds.append(hold)
        now += hold
    assert holds == [HOLD_MIN, 2 * HOLD_MIN, 4 * HOLD_MIN, HOLD_MAX, HOLD_MAX, HOLD_MAX]


def test_a_widened_link_resumes_at_once() -> None:
    backoff: ResumeBackoff[str] = ResumeBackoff()
    backoff.resumed("v", 0.0, 70_000)
    backoff.paused("v", 2.0)
    assert not backoff.may_resume("v", 3.0, 70_000 * MARGIN * 0.95)
    assert backoff.may_resume("v", 3.0, 70_000 * MARGIN)  # e.g. the cap lifted


def test_a_resume_that_held_clears_the_record() -> None:
    backoff: ResumeBackoff[str] = ResumeBackoff()
    backoff.resumed("v", 0.0, 70_000)
    backoff.paused("v", 2.0)  # failed
    backoff.resumed("v", 20.0, 70_000)
    backoff.paused("v", 20.0 + TRIAL + 1)  # held its trial: a new congestion
    assert backoff.may_resume("v", 20.0 + TRIAL + 1.5, 70_000)
    backoff.forget("v")
    assert backoff.may_resume("v", 0.0, 0.0)
