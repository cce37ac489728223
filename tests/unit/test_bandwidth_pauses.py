"""Unit tests for sfu/bandwidth_pauses.py: a subscriber's tracks paused for bandwidth.

The controller's decisions (when to pause, resume, step) are in
test_downlink_controller.py; these check the record on its own.
"""

from __future__ import annotations

from sfu.bandwidth_pauses import BandwidthPauses
from sfu.resume_backoff import HOLD_MIN, MARGIN

T0 = 100.0


def test_nothing_paused_or_moved_at_first() -> None:
    pauses: BandwidthPauses[str] = BandwidthPauses()
    assert not pauses.paused and pauses.count == 0
    assert pauses.since_step_down("a", T0) > 1e6
    assert pauses.since_resume("a", T0) > 1e6
    assert not pauses.held("a", T0, 1_000_000)
    assert not pauses.resume("a", T0, 1_000_000)  # not paused: nothing to resume


def test_a_pause_is_counted_once_and_is_a_step_down() -> None:
    pauses: BandwidthPauses[str] = BandwidthPauses()
    assert pauses.pause("a", T0)
    assert not pauses.pause("a", T0 + 1)  # already paused
    assert pauses.paused == {"a"} and pauses.count == 1
    assert pauses.since_step_down("a", T0 + 2) == 2


def test_a_resume_is_remembered() -> None:
    pauses: BandwidthPauses[str] = BandwidthPauses()
    pauses.pause("a", T0)
    assert pauses.resume("a", T0 + 5, 400_000)
    assert not pauses.paused
    assert pauses.since_resume("a", T0 + 6) == 1
    pauses.stepped_down("a", T0 + 7)
    assert pauses.since_step_down("a", T0 + 7) == 0


def test_a_track_paused_again_soon_after_its_resume_is_held() -> None:
    pauses: BandwidthPauses[str] = BandwidthPauses()
    pauses.pause("a", T0)
    pauses.resume("a", T0 + 5, 400_000)
    pauses.pause("a", T0 + 7)  # the resume failed its trial
    assert pauses.count == 2
    assert pauses.held("a", T0 + 8, 400_000)
    assert not pauses.held("a", T0 + 8, 400_000 * MARGIN)  # the link really widened
    assert not pauses.held("a", T0 + 7 + HOLD_MIN, 400_000)


def test_a_track_that_is_gone_is_forgotten() -> None:
    pauses: BandwidthPauses[str] = BandwidthPauses()
    pauses.pause("a", T0)
    pauses.resume("a", T0 + 5, 400_000)
    pauses.pause("a", T0 + 7)
    pauses.forget("a")
    assert not pauses.paused
    assert not pauses.held("a", T0 + 8, 400_000)
    assert pauses.since_step_down("a", T0) > 1e6 and pauses.since_resume("a", T0) > 1e6
    assert pauses.count == 2  # (a count of pauses so far, not of paused tracks)
