"""ProbeRound: one probe of a subscriber link, from its padding to its verdict.

A probe pads the link up to ``target`` for ``probe_duration`` seconds
(PROBING), then waits for the feedback that covers it (SETTLING): a
receiver report, and a REMB where the receiver sends them. Meanwhile it
collects the evidence sfu/bandwidth.py judges it by: the worst loss
reported, and whether a REMB decrease or a queue stopped it early.
"""

from __future__ import annotations

import enum

from sfu.tuning import TUNING


class ProbeState(enum.Enum):
    IDLE = "idle"
    PROBING = "probing"  # padding is being sent
    SETTLING = "settling"  # padding stopped, waiting for feedback that covers it


class ProbeRound:
    """The timing and the evidence of the probe running or being judged."""

    __slots__ = ("decreased", "loss", "remb", "reported", "started", "state", "target", "until")

    def __init__(self) -> None:
        self.state = ProbeState.IDLE
        self.target = 0.0  # bit/s padded up to
        self.started = 0.0  # when the padding started...
        self.until = 0.0  # ...and when it stops (or stopped)
        self.reported = False  # a receiver report arrived that covers the probe
        self.remb = False  # a REMB arrived after the padding stopped
        self.loss = 0.0  # the worst loss reported during it
        self.decreased = False  # a REMB decrease or a queue stopped it

    def start(self, target: float, now: float) -> None:
        """Pad up to ``target`` bit/s from ``now``, with no evidence yet."""
        self.target = target
        self.state = ProbeState.PROBING
        self.started = now
        self.until = now + TUNING.probe_duration
        self.reported = False
        self.remb = False
        self.loss = 0.0
        self.decreased = False

    def padding_now(self, now: float) -> bool:
        """Whether the padding should be on the wire at ``now``."""
        return self.state is ProbeState.PROBING and now < self.until

    def stop_early(self, now: float) -> bool:
        """Stop the padding at ``now``; False if it had already stopped."""
        if self.state is ProbeState.PROBING and now < self.until:
            self.until = min(self.until, now)
            self.state = ProbeState.SETTLING
            return True
        return False

    def ready(self, now: float, remb_expected: bool) -> bool:
        """Whether the feedback that judges the probe is in, or overdue (then it failed).

        ``remb_expected``: the receiver sends REMB and its video is not
        paused; a REMB is then waited for, but not past ``probe_remb_wait``.
        """
        waited = now - self.until
        remb_seen = self.remb or not remb_expected or waited >= TUNING.probe_remb_wait
        return (self.reported and remb_seen) or waited >= TUNING.probe_feedback_wait

    def clean(self, clean_loss: float) -> bool:
        """Judged by a report, not stopped by a decrease or a queue, loss under ``clean_loss``."""
        return self.reported and not self.decreased and self.loss < clean_loss
