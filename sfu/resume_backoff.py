"""Video paused for bandwidth that comes back only to be paused again waits longer.

A resume is a trial: the allocation found room for the lowest layer in the
estimate, but on a thin link that estimate can come from a probe short
enough to fit in the link's own burst allowance. Real Chromium at 60 kbit/s,
once its audio was down to thin-link Opus, had its video resumed and paused
again every 4-8 s for a minute: each resume lost audio, and the receiver's
NACKs for the lost video filled its uplink.

So a track paused again within ``TRIAL`` seconds of its resume has failed
its trial: it may resume only after a hold that doubles with each failure
(``HOLD_MIN`` .. ``HOLD_MAX``), or earlier once the estimate reaches
``MARGIN`` times what it was when the failed resume was decided (the link
has really widened: a cap lifted must give the video back within seconds;
twice, because one probe short enough to fit in a thin link's burst
allowance is judged a success and doubles the estimate).
A resume that holds for ``TRIAL`` seconds clears the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

TRIAL = 10.0  # seconds a resumed track must last to count as a success
HOLD_MIN = 8.0  # seconds before the next resume after a first failure (doubles)
HOLD_MAX = 60.0
MARGIN = 2.0  # ...unless the estimate has grown this much past the failed resume's

Track = TypeVar("Track")


@dataclass(slots=True)
class _Record:
    failures: int = 0
    resumed_at: float | None = None
    resumed_estimate: float = 0.0  # the estimate that decided the latest resume
    hold_until: float = 0.0
    beat: float = 0.0  # the estimate an early resume must reach


class ResumeBackoff(Generic[Track]):
    """Per track: may it resume now, given its record of failed resumes?"""

    def __init__(self) -> None:
        self._records: dict[Track, _Record] = {}

    def may_resume(self, track: Track, now: float, estimate: float) -> bool:
        record = self._records.get(track)
        if record is None or record.failures == 0:
            return True
        return now >= record.hold_until or estimate >= record.beat

    def resumed(self, track: Track, now: float, estimate: float) -> None:
        record = self._records.setdefault(track, _Record())
        record.resumed_at = now
        record.resumed_estimate = estimate

    def paused(self, track: Track, now: float) -> None:
        record = self._records.get(track)
        if record is None or record.resumed_at is None:
            return
        if now - record.resumed_at >= TRIAL:
            record.failures = 0  # it held: this is a new congestion, not a failed trial
        else:
            record.failures += 1
            hold = min(HOLD_MIN * 2 ** (record.failures - 1), HOLD_MAX)
            record.hold_until = now + hold
            record.beat = record.resumed_estimate * MARGIN
        record.resumed_at = None

    def forget(self, track: Track) -> None:
        self._records.pop(track, None)
