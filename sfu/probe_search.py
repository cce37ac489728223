"""ProbeSearch: where a subscriber link's next probe goes, and when.

A probe steps up from a base (what a probe proved, else what is sent) by
a factor: ``probe_factor_careful`` at first and after a failure,
``probe_factor`` after a clean probe, at least ``probe_factor_paused``
while video is paused. After a failure the next probe waits longer
(exponential back-off, bounded so that a link that recovers is found
again within seconds) and, for ``ceiling_hold`` seconds, goes no further
than half-way to the failed rate: a binary search for the link's rate,
not a hammering. sfu/bandwidth.py decides whether a probe may start at all.
"""

from __future__ import annotations

from sfu.tuning import TUNING


class ProbeSearch:
    """The step, the back-off and the failed rate that bound one link's next probe."""

    __slots__ = ("_backoff", "_ceiling", "_ceiling_at", "_factor", "next_at")

    def __init__(self, now: float) -> None:
        self.next_at = now + 1.0  # no probe before this (none in the first second)
        self._backoff = TUNING.probe_backoff_min
        self._factor = TUNING.probe_factor_careful
        self._ceiling = 0.0  # bit/s: a failed probe's rate, or what it delivered...
        self._ceiling_at = -1e9  # ...and when it failed

    def target(
        self, base: float, desired: float, max_bps: float, paused: bool, now: float
    ) -> float:
        """The rate to probe up to from ``base`` (bit/s); 0: no step worth a probe yet."""
        t = TUNING
        factor = max(self._factor, t.probe_factor_paused) if paused else self._factor
        target = min(max(base * factor, base + t.probe_min_step), max_bps)
        target = min(target, desired * 1.1)
        hold = t.ceiling_hold_paused if paused else t.ceiling_hold
        if now < self._ceiling_at + hold:
            # a probe failed around here lately: search half-way to it
            target = min(target, (base + self._ceiling) / 2)
        if target < base + t.probe_min_step / 2:
            self.next_at = now + t.probe_backoff_min
            return 0.0
        return target

    def passed(self, target: float, now: float) -> None:
        """A probe to ``target`` was clean: step boldly next time, soon."""
        if target >= self._ceiling * 0.9:
            self._ceiling_at = -1e9  # the search reached the failed rate: look past it
        self._backoff = TUNING.probe_backoff_min
        self._factor = TUNING.probe_factor
        self.next_at = now + self._backoff

    def failed(self, ceiling: float, now: float, paused: bool) -> None:
        """A probe failed around ``ceiling`` bit/s: search below it, carefully, later."""
        self._ceiling = ceiling
        self._ceiling_at = now
        limit = TUNING.probe_backoff_max_paused if paused else TUNING.probe_backoff_max
        self._backoff = min(limit, self._backoff * 2)
        self._factor = TUNING.probe_factor_careful
        self.next_at = now + self._backoff
