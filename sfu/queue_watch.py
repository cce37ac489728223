"""QueueWatch: between probes, whether the round trip shows a full subscriber link.

The round trip of the server's own sender reports, echoed in receiver
reports, above the least one lately (the link's own) is the queue in front
of the receiver (sfu/probe_padding.py measures it). Over
``queue_delay_limit`` or ``jitter_margin`` times the jitter the receivers
report, whichever is more (a radio link's delay varies by itself), on
``queue_delay_reports`` reports in a row, the link is full; sfu/bandwidth.py
then lowers the estimate, and counts loss as congestion for a while.
"""

from __future__ import annotations

from sfu.tuning import TUNING


class QueueWatch:
    """The latest queueing delay, and how many reports in a row were over the bar."""

    __slots__ = ("_over", "delay", "last_full")

    def __init__(self) -> None:
        self.delay = 0.0  # the latest queueing delay measured (s), probes included
        self.last_full = -1e9  # when the link was last found full (monotonic s)
        self._over = 0  # reports in a row over the bar, between probes

    def over(self, delay: float, jitter: float) -> bool:
        """One report between probes: True once enough in a row showed a queue."""
        if delay <= max(TUNING.queue_delay_limit, TUNING.jitter_margin * jitter):
            self._over = 0
            return False
        self._over += 1
        return self._over >= TUNING.queue_delay_reports

    def full(self, now: float) -> None:
        """The link was found full at ``now`` (and acted on): count afresh."""
        self._over = 0
        self.last_full = now
