"""When a publisher's uplink is the weak side (sfu/uplink_health.py)."""

from __future__ import annotations

from sfu.uplink_health import OK_AFTER, OK_FPS, WEAK_AFTER, WEAK_FPS, UplinkHealth


def run(health: UplinkHealth, fps: float, start: float, seconds: float) -> list[float]:
    """Samples twice a second; the times at which the state changed."""
    changes = []
    t = start
    while t < start + seconds:
        if health.update(fps, False, t):
            changes.append(t)
        t += 0.5
    return changes


def test_a_camera_that_collapses_is_weak_after_two_seconds_and_well_again_after_three() -> None:
    health = UplinkHealth()
    assert run(health, 20, 0, 10) == []
    changed = run(health, WEAK_FPS - 1, 10, 5)
    assert health.weak and changed == [10 + WEAK_AFTER]
    changed = run(health, OK_FPS + 1, 15, 5)
    assert not health.weak and changed == [15 + OK_AFTER]


def test_between_the_bars_nothing_changes() -> None:
    health = UplinkHealth()
    run(health, 2, 0, 5)
    assert health.weak
    assert run(health, (WEAK_FPS + OK_FPS) / 2, 5, 20) == []
    assert health.weak


def test_a_short_dip_is_not_weak() -> None:
    health = UplinkHealth()
    run(health, 20, 0, 5)
    assert run(health, 1, 5, WEAK_AFTER - 0.5) == []
    assert run(health, 20, 7, 5) == []
    assert not health.weak


def test_nothing_before_the_first_frame_and_muted_is_never_weak() -> None:
    health = UplinkHealth()
    assert run(health, 0, 0, 10) == []  # the call is starting
    run(health, 20, 10, 2)
    run(health, 0, 12, 5)
    assert health.weak
    assert health.update(0, True, 17.5)  # camera off: nothing to judge
    assert not health.weak
    assert not health.update(0, True, 30)
