"""Is a publisher's uplink the weak side? From what arrives of its camera; audio first if so.

When the patient's own upload is thin, its browser keeps sending its camera
at whatever its estimate allows: frames arrive incomplete or not at all,
the audio sharing the link is lost with them (real Chromium on a 60 kbit/s
uplink: 40 % of its audio packets lost, and ICE consent failed after 25 s),
and every subscriber keeps showing the last frame as if it were live.

Each camera Producer keeps an ``UplinkHealth``, fed twice a second with the
frame rate that arrives (the best of its layers) and the share of its
packets lost on the way (after repairs):

- WELL -> WEAK after ``WEAK_AFTER`` seconds under ``WEAK_FPS`` or over
  ``WEAK_LOSS``. Subscribers are told (``publisher_link``; the widget dims
  the tile with "Amina's connection is weak"), and the publisher is asked
  to stop its camera (``publisher_layers``, all off) and to send thin-link
  audio (``publisher_audio``): audio first.
- WEAK -> TRIAL when the back-off has passed (``TRIAL_BACKOFF_MIN`` doubling
  up to ``TRIAL_BACKOFF_MAX``), or at once when the same participant's
  downlink estimate has grown ``RECOVERY_HINT`` times past what it was when
  the uplink turned weak (a rural link usually widens both ways at once):
  the camera is asked back; so it is when the same participant's downlink
  has just resumed video paused for bandwidth (a probe proved room there:
  after a 60 kbit/s cap was lifted that came 0.5 s after the lift, the
  threefold estimate only 3.7 s after it). (The lowest downlink estimate
  since the uplink turned weak is the reference: at that moment the downlink may not have
  dropped yet. The reference is never below ``HINT_FLOOR``: while the
  downlink carries only audio, its estimate is only what little is sent
  (5-30 kbit/s at 60 kbit/s), and fourfold that was reached again and
  again: real Chromium in the 60 kbit/s cap had its camera tried every
  4.6 s for 60 s, which cost the specialist 5 % of the patient's audio.
  After a failed trial the reference starts again from the estimate then,
  so one widening gives one trial.)
- TRIAL -> WELL after ``OK_AFTER`` seconds at ``OK_FPS`` or more with loss
  under ``OK_LOSS`` (judged first: a camera that restarts slowly and has
  just made it is not cut off by the trial's length); TRIAL -> WEAK once
  loss exceeds ``WEAK_LOSS`` on ``TRIAL_LOSSY_SAMPLES`` samples in a row
  (after a ``TRIAL_GRACE`` for the camera to restart: its keyframe alone can
  lose a packet or two), or after ``TRIAL_LENGTH``.

Nothing is judged in the first ``STARTUP_GRACE`` seconds after the first
frames, nor after a camera comes back from a mute or a hold: a browser
starts its camera above a thin uplink's rate and comes down within seconds
(at 250 kbit/s that start alone looked weak), and a camera that restarts
is slow at first (the console's room switched back to).

A screen share is never judged (static content sends few frames on
purpose), nor a muted camera.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

WEAK_FPS = 6.0  # a camera sends 15-30; under this, motion is gone
WEAK_LOSS = 0.10  # of the camera's packets lost after repairs
OK_FPS = 10.0
OK_LOSS = 0.03
WEAK_AFTER = 1.5  # seconds below the bar before the uplink counts as weak
STARTUP_GRACE = 5.0  # seconds after the first frames before anything is judged
OK_AFTER = 2.0  # seconds of a good trial before it counts as well again
TRIAL_GRACE = 0.5  # seconds for the camera to restart before a trial's loss counts...
TRIAL_LOSSY_SAMPLES = 2  # ...and then this many lossy samples in a row end it
TRIAL_LENGTH = 5.0  # a camera takes 1-2 s to restart and reach 10 fps
TRIAL_BACKOFF_MIN = 20.0
TRIAL_BACKOFF_MAX = 60.0
RECOVERY_HINT = 3.0  # the participant's downlink grew this much: try the camera again at once
HINT_FLOOR = 40_000.0  # bit/s: a lower downlink estimate is what little was sent, not the link


@dataclass(frozen=True, slots=True)
class DownlinkHint:
    """What the same participant's downlink says of its link: it widens both ways, usually."""

    estimate_bps: float
    resumed_at: float | None = None  # when it last resumed video paused for bandwidth


class UplinkState(enum.Enum):
    WELL = "well"
    WEAK = "weak"  # the camera is asked off upstream: audio first
    TRIAL = "trial"  # the camera is back for a while, to see whether it gets through


class UplinkHealth:
    """The weak/well state of one camera's uplink, with hysteresis and recovery trials."""

    __slots__ = (
        "_backoff",
        "_hint_at_weak",
        "_lossy_samples",
        "_since",
        "_started",
        "_state_at",
        "_trial_at",
        "state",
    )

    def __init__(self) -> None:
        self.state = UplinkState.WELL
        self._since: float | None = None  # when the current condition began
        self._started: float | None = None  # when the first frames arrived
        self._state_at = 0.0
        self._trial_at = 0.0
        self._backoff = TRIAL_BACKOFF_MIN
        self._hint_at_weak: float | None = None
        self._lossy_samples = 0  # lossy samples in a row during a trial

    @property
    def weak(self) -> bool:
        return self.state is not UplinkState.WELL

    @property
    def video_allowed(self) -> bool:
        return self.state is not UplinkState.WEAK

    def _set_state(self, state: UplinkState, now: float) -> None:
        logger.debug("uplink %s -> %s", self.state.value, state.value)
        self.state = state
        self._state_at = now
        self._since = None
        self._lossy_samples = 0

    def update(
        self, fps: float, loss: float, muted: bool, now: float, hint: DownlinkHint | None = None
    ) -> bool:
        """Fold in the latest sample; True when ``weak`` changed."""
        hint_bps = None if hint is None else hint.estimate_bps
        if muted:
            was_weak = self.weak
            if was_weak:
                self._set_state(UplinkState.WELL, now)
            self._since = None
            self._started = None  # a camera back from a mute or a hold starts over (grace)
            return was_weak
        if self._started is None:
            if fps <= 0:
                return False  # nothing arrived yet: a call that is starting is not weak
            self._started = now
        if now - self._started < STARTUP_GRACE:
            return False  # a browser starts above a thin uplink and comes down within seconds
        state = self.state
        if state is UplinkState.WELL:
            if not (fps < WEAK_FPS or loss > WEAK_LOSS):
                self._since = None
                return False
            self._since = now if self._since is None else self._since
            if now - self._since < WEAK_AFTER:
                return False
            self._set_state(UplinkState.WEAK, now)
            self._trial_at = now + self._backoff
            self._hint_at_weak = _hint_reference(hint_bps)
            return True
        if state is UplinkState.WEAK:
            if hint_bps is not None and (
                self._hint_at_weak is None or hint_bps < self._hint_at_weak
            ):
                self._hint_at_weak = _hint_reference(hint_bps)  # the lowest it went meanwhile
            widened = (
                hint_bps is not None
                and self._hint_at_weak is not None
                and hint_bps >= self._hint_at_weak * RECOVERY_HINT
            )
            resumed_at = None if hint is None else hint.resumed_at
            resumed = resumed_at is not None and resumed_at > self._state_at
            if now >= self._trial_at or widened or resumed:
                logger.debug(
                    "uplink trial: downlink %s (%.0f bit/s, reference %.0f)",
                    "widened" if widened else "resumed" if resumed else "back-off over",
                    hint_bps or 0,
                    self._hint_at_weak or 0,
                )
                self._set_state(UplinkState.TRIAL, now)
            return False
        # TRIAL
        in_trial = now - self._state_at
        lossy = in_trial >= TRIAL_GRACE and loss > WEAK_LOSS
        self._lossy_samples = self._lossy_samples + 1 if lossy else 0
        logger.debug("uplink trial sample: %.1f fps, %.3f loss", fps, loss)
        if fps >= OK_FPS and loss < OK_LOSS:
            self._since = now if self._since is None else self._since
            if now - self._since >= OK_AFTER:
                self._set_state(UplinkState.WELL, now)
                self._backoff = TRIAL_BACKOFF_MIN
                return True
        else:
            self._since = None
        if self._lossy_samples >= TRIAL_LOSSY_SAMPLES or in_trial >= TRIAL_LENGTH:
            self._set_state(UplinkState.WEAK, now)
            self._backoff = min(self._backoff * 2, TRIAL_BACKOFF_MAX)
            self._trial_at = now + self._backoff
            self._hint_at_weak = _hint_reference(hint_bps)  # one widening, one trial
        return False


def _hint_reference(hint_bps: float | None) -> float | None:
    """A downlink estimate as the reference a widening is judged against."""
    return None if hint_bps is None else max(hint_bps, HINT_FLOOR)
