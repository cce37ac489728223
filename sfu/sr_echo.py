"""SrEcho: the round trip from a receiver's echo of our sender reports.

A receiver report block carries LSR (the middle 32 bits of the NTP time of
the last sender report it got on that stream) and DLSR (how long it held
it). Remembering when each recent sender report left gives the round trip,
including whatever queue the report waited in on the way (RFC 3550 §6.4.1).
"""

from __future__ import annotations

import time

from sfu.rtcp import ReportBlock, ntp_middle


class SrEcho:
    def __init__(self, kept: int) -> None:
        self._kept = kept  # sender reports whose echo may still come
        self._sent: dict[int, float] = {}  # LSR -> when it left (monotonic)

    def sent(self, ntp: int) -> None:
        """A sender report with this NTP time left now."""
        self._sent[ntp_middle(ntp)] = time.monotonic()
        if len(self._sent) > self._kept:
            self._sent.pop(next(iter(self._sent)))

    def round_trip(self, block: ReportBlock) -> tuple[float, float] | None:
        """(round trip in seconds, when the echoed report left), or None if not ours."""
        sent = self._sent.get(block.lsr) if block.lsr else None
        if sent is None:
            return None
        rtt = time.monotonic() - sent - block.dlsr / 65536.0
        return (rtt, sent) if rtt >= 0 else None
