"""BandwidthPauses: which of one subscriber's video tracks are paused for bandwidth.

The DownlinkController's record of its pause actuator: the tracks it
paused (and how many pauses so far), when each last stepped down (no step
up for ``upgrade_hold`` seconds after one) or came back (its receiver's
REMB is not trusted at first), and whether a paused track whose last
resume failed may try again yet (sfu/resume_backoff.py). The controller
decides; this only remembers.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from sfu.resume_backoff import ResumeBackoff

Track = TypeVar("Track")

_NEVER = -1e9


class BandwidthPauses(Generic[Track]):
    """Paused tracks, their latest step down and resume, and their resume back-off."""

    __slots__ = ("_resumed", "_retry", "_stepped_down", "count", "paused")

    def __init__(self) -> None:
        self.paused: set[Track] = set()  # read it, change it only through the methods
        self.count = 0  # pauses so far
        self._stepped_down: dict[Track, float] = {}
        self._resumed: dict[Track, float] = {}
        self._retry: ResumeBackoff[Track] = ResumeBackoff()  # failed resumes wait

    def since_step_down(self, track: Track, now: float) -> float:
        """Seconds since ``track`` last stepped down or was paused (huge: never)."""
        return now - self._stepped_down.get(track, _NEVER)

    def since_resume(self, track: Track, now: float) -> float:
        """Seconds since ``track`` last came back from a pause (huge: never)."""
        return now - self._resumed.get(track, _NEVER)

    def stepped_down(self, track: Track, now: float) -> None:
        """``track`` was moved to a cheaper option at ``now``."""
        self._stepped_down[track] = now

    def pause(self, track: Track, now: float) -> bool:
        """Pause ``track`` at ``now`` (a step down too); False if it already was."""
        if track in self.paused:
            return False
        self.paused.add(track)
        self.count += 1
        self._stepped_down[track] = now
        self._retry.paused(track, now)
        return True

    def held(self, track: Track, now: float, estimate: float) -> bool:
        """A paused track whose last resume failed, still waiting at this estimate."""
        return track in self.paused and not self._retry.may_resume(track, now, estimate)

    def resume(self, track: Track, now: float, estimate: float) -> bool:
        """``track`` is sent again (decided at ``estimate``); False if it was not paused."""
        if track not in self.paused:
            return False
        self.paused.discard(track)
        self._resumed[track] = now
        self._retry.resumed(track, now, estimate)
        return True

    def forget(self, track: Track) -> None:
        """``track`` is gone: nothing of it is kept."""
        self._retry.forget(track)
        self._stepped_down.pop(track, None)
        self._resumed.pop(track, None)
        self.paused.discard(track)
