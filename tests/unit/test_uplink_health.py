"""When a publisher's uplink is the weak side, and when its camera is tried again."""

from __future__ import annotations

from sfu.uplink_health import (
    HINT_FLOOR,
    OK_AFTER,
    OK_FPS,
    OK_LOSS,
    RECOVERY_HINT,
    STARTUP_GRACE,
    TRIAL_BACKOFF_MIN,
    TRIAL_GRACE,
    TRIAL_LENGTH,
    WEAK_AFTER,
    WEAK_FPS,
    WEAK_LOSS,
    DownlinkHint,
    UplinkHealth,
    UplinkState,
)


def run(
    health: UplinkHealth,
    start: float,
    seconds: float,
    fps: float = 20.0,
    loss: float = 0.0,
    hint: float | None = None,
    resumed_at: float | None = None,
) -> list[float]:
    """Samples twice a second; the times at which ``weak`` changed.

    ``hint``: the same participant's downlink estimate; ``resumed_at``: when
    that downlink last resumed video paused for bandwidth.
    """
    changes = []
    t = start
    downlink = None if hint is None else DownlinkHint(hint, resumed_at)
    while t < start + seconds - 1e-9:
        if health.update(fps, loss, False, t, downlink):
            changes.append(t)
        t += 0.5
    return changes


def test_a_camera_that_collapses_is_weak_and_asked_off() -> None:
    health = UplinkHealth()
    assert run(health, 0, 10) == []
    assert run(health, 10, 5, fps=WEAK_FPS - 1) == [10 + WEAK_AFTER]
    assert health.weak and not health.video_allowed


def test_loss_alone_makes_it_weak() -> None:
    """Real Chromium on a 60 kbit/s uplink kept 15 fps of frames that mostly never arrived."""
    health = UplinkHealth()
    run(health, 0, 5)
    assert run(health, 5, 5, fps=15, loss=WEAK_LOSS + 0.1) == [5 + WEAK_AFTER]


def test_a_short_dip_is_not_weak() -> None:
    health = UplinkHealth()
    run(health, 0, 5)
    assert run(health, 5, WEAK_AFTER, fps=1) == []
    assert run(health, 5 + WEAK_AFTER, 5) == []
    assert health.state is UplinkState.WELL


def test_the_camera_is_tried_again_after_the_back_off_and_a_good_trial_ends_it() -> None:
    health = UplinkHealth()
    run(health, 0, 5)
    run(health, 5, WEAK_AFTER + 0.5, fps=0)
    weak_at = 5 + WEAK_AFTER
    assert health.state is UplinkState.WEAK
    run(health, weak_at, TRIAL_BACKOFF_MIN - 0.5, fps=0)  # camera off: nothing arrives
    assert health.state is UplinkState.WEAK
    trial_at = weak_at + TRIAL_BACKOFF_MIN
    run(health, trial_at, 0.5, fps=0)
    assert health.state is UplinkState.TRIAL and health.video_allowed and health.weak
    changes = run(health, trial_at + 0.5, OK_AFTER + 1, fps=OK_FPS + 5)
    assert changes and health.state is UplinkState.WELL and not health.weak


def on_trial() -> tuple[UplinkHealth, float]:
    """A camera that went weak, now on trial after the back-off; when the trial began."""
    health = UplinkHealth()
    run(health, 0, 5)
    run(health, 5, WEAK_AFTER + 0.5, fps=0)
    t = 5 + WEAK_AFTER + TRIAL_BACKOFF_MIN
    run(health, t, 0.5, fps=0)
    assert health.state is UplinkState.TRIAL
    return health, t


def test_a_failed_trial_goes_back_to_weak_with_a_longer_back_off() -> None:
    health, t = on_trial()
    run(health, t + 0.5, TRIAL_GRACE + 0.5, fps=12, loss=0.3)  # the camera floods the link
    assert health.state is UplinkState.WEAK
    failed_at = t + 0.5 + TRIAL_GRACE
    run(health, failed_at, 2 * TRIAL_BACKOFF_MIN - 1, fps=0)
    assert health.state is UplinkState.WEAK  # twice the back-off now
    # a trial that never gets good enough ends too
    run(health, failed_at + 2 * TRIAL_BACKOFF_MIN, 0.5, fps=0)
    assert health.state is UplinkState.TRIAL
    run(health, failed_at + 2 * TRIAL_BACKOFF_MIN + 0.5, TRIAL_LENGTH, fps=8)
    assert health.state is UplinkState.WEAK


def test_a_widened_downlink_tries_the_camera_at_once() -> None:
    health = UplinkHealth()
    run(health, 0, 5, hint=50_000)
    run(health, 5, WEAK_AFTER + 0.5, fps=0, hint=50_000)
    assert health.state is UplinkState.WEAK
    run(health, 8, 1, fps=0, hint=50_000 * RECOVERY_HINT)
    assert health.state is UplinkState.TRIAL


def test_an_estimate_of_what_little_was_sent_is_no_widening() -> None:
    """In a 60 kbit/s cap the patient's downlink carried only audio: its estimate swung 5-40 kbit/s.

    Fourfold the lowest of that was reached again and again, and the camera
    was tried every 4.6 s through the whole cap (real Chromium, server log).
    """
    health = UplinkHealth()
    run(health, 0, 5, hint=30_000)
    run(health, 5, WEAK_AFTER + 0.5, fps=0, hint=30_000)
    assert health.state is UplinkState.WEAK
    t = 5 + WEAK_AFTER + 0.5
    for _ in range(int(TRIAL_BACKOFF_MIN) - 2):
        run(health, t, 0.5, fps=0, hint=5_000)
        run(health, t + 0.5, 0.5, fps=0, hint=HINT_FLOOR * RECOVERY_HINT * 0.9)
        t += 1
    assert health.state is UplinkState.WEAK
    run(health, t, 0.5, fps=0, hint=HINT_FLOOR * RECOVERY_HINT)  # the cap lifted
    assert health.state is UplinkState.TRIAL


def test_one_widening_gives_one_trial() -> None:
    """A downlink that widened while the uplink did not (an asymmetric link): no trial storm."""
    health = UplinkHealth()
    run(health, 0, 5, hint=50_000)
    run(health, 5, WEAK_AFTER + 0.5, fps=0, hint=50_000)
    wide = 50_000 * RECOVERY_HINT
    run(health, 8, 0.5, fps=0, hint=wide)
    assert health.state is UplinkState.TRIAL
    run(health, 8.5, 1, fps=12, loss=0.3, hint=wide)  # the uplink is still thin
    assert health.state is UplinkState.WEAK
    failed_at = 9.0
    run(health, 9.5, 2 * TRIAL_BACKOFF_MIN - 1, fps=0, hint=wide)
    assert health.state is UplinkState.WEAK  # the same widening: only the back-off tries again
    run(health, failed_at + 2 * TRIAL_BACKOFF_MIN - 0.5, 0.5, fps=0, hint=wide * RECOVERY_HINT)
    assert health.state is UplinkState.TRIAL  # a widening past that one does


def test_a_downlink_resume_tries_the_camera_once() -> None:
    """After a 60 kbit/s cap was lifted the downlink's probe resumed video 0.5 s after the lift.

    The estimate took 3.7 s to reach threefold (real Chromium, server log):
    the resume is the earlier sign that the link widened.
    """
    health = UplinkHealth()
    run(health, 0, 5, hint=50_000)
    run(health, 5, WEAK_AFTER + 0.5, fps=0, hint=30_000, resumed_at=2.0)
    assert health.state is UplinkState.WEAK  # a resume from before it turned weak says nothing
    run(health, 7, 3, fps=0, hint=30_000, resumed_at=2.0)
    assert health.state is UplinkState.WEAK
    run(health, 10, 0.5, fps=0, hint=90_000, resumed_at=9.8)
    assert health.state is UplinkState.TRIAL
    run(health, 10.5, 1, fps=12, loss=0.3, hint=30_000, resumed_at=9.8)  # it did not hold
    assert health.state is UplinkState.WEAK
    run(health, 11.5, 10, fps=0, hint=30_000, resumed_at=9.8)
    assert health.state is UplinkState.WEAK  # that resume gave its trial
    run(health, 21.5, 0.5, fps=0, hint=90_000, resumed_at=21.2)
    assert health.state is UplinkState.TRIAL  # a later one gives another


def test_a_camera_that_restarts_slowly_and_makes_it_is_not_cut_off() -> None:
    """Real Chromium after a lift: 0.8, 3.6, 8.3, then 14-22 fps; good for 2 s just at 4.1 s."""
    health, t = on_trial()
    changes = []
    for fps in (0.8, 3.6, 8.3, 14.3, 22.5, 21.4, 21.4, 20.6, 20.6, 20.6):
        t += 0.5
        changes += run(health, t, 0.5, fps=fps, loss=OK_LOSS / 2)
    assert changes and health.state is UplinkState.WELL


def test_nothing_before_the_first_frame_and_muted_is_never_weak() -> None:
    health = UplinkHealth()
    assert run(health, 0, 10, fps=0) == []  # the call is starting
    run(health, 10, 2)
    run(health, 12, 5, fps=0)
    assert health.weak
    assert health.update(0, 0, True, 17.5)  # camera off: nothing to judge
    assert not health.weak
    assert not health.update(0, 0, True, 30)


def test_a_camera_back_from_a_hold_gets_the_start_up_grace_again() -> None:
    """A console room switched back to: its camera restarts, slowly at first, and is not weak."""
    health = UplinkHealth()
    run(health, 0, 10)
    assert health.update(0, 0, True, 10.0) is False  # on hold (nothing of it arrives)
    assert run(health, 10.5, STARTUP_GRACE - 0.5, fps=2) == []  # restarting
    assert not health.weak
