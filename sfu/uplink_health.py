"""Is a publisher's uplink the weak side? From what arrives of its camera.

When the patient's own upload is thin, its browser sends its camera at a
few frames a second or not at all, and every subscriber would keep showing
the last frame as if it were live. Each camera Producer keeps an
``UplinkHealth``: twice a second it gets the frame rate that arrives (the
best of its layers) and says when the uplink turns weak or recovers, so the
room can tell the subscribers (``publisher_link``) and the widget can dim
that tile with "Amina's connection is weak" instead.

Weak: under ``WEAK_FPS`` frames a second for ``WEAK_AFTER`` seconds while the
track is not muted (a frozen source is weak too: nothing arrives). Well
again: at least ``OK_FPS`` for ``OK_AFTER`` seconds. A screen share is never
judged (static content sends few frames on purpose).
"""

from __future__ import annotations

WEAK_FPS = 6.0  # a camera sends 15-30; under this, motion is gone
OK_FPS = 10.0
WEAK_AFTER = 2.0  # seconds below WEAK_FPS before subscribers are told
OK_AFTER = 3.0  # seconds at OK_FPS or more before it counts as well again


class UplinkHealth:
    """The weak/well state of one camera's uplink, with hysteresis."""

    __slots__ = ("_since", "_started", "weak")

    def __init__(self) -> None:
        self.weak = False
        self._since: float | None = None  # when the frame rate first crossed the other way
        self._started: float | None = None  # when the first frames arrived

    def update(self, fps: float, muted: bool, now: float) -> bool:
        """Fold in the latest frame rate; True when ``weak`` changed."""
        if muted:
            self._since = None
            if self.weak:
                self.weak = False
                return True
            return False
        if self._started is None:
            if fps <= 0:
                return False  # nothing arrived yet: a call that is starting is not weak
            self._started = now
        crossing = fps >= OK_FPS if self.weak else fps < WEAK_FPS
        if not crossing:
            self._since = None
            return False
        if self._since is None:
            self._since = now
        if now - self._since < (OK_AFTER if self.weak else WEAK_AFTER):
            return False
        self.weak = not self.weak
        self._since = None
        return True
