"""StreamNumbering: one subscriber's RTP sequence numbers and timestamps, continuous.

Each restart of a Consumer's stream (after a pause, or on another
simulcast layer with its own numbering) goes on from the last sequence
number sent, and its timestamps from the last one sent plus the time that
really passed, so the subscriber's jitter buffer sees one stream.
"""

from __future__ import annotations

import random
import time

from sfu.rtp import seq_delta
from sfu.sequence_map import NumberMap

MAX_TIMESTAMP_GAP = 10.0  # s: a longer pause moves timestamps on by this much


class StreamNumbering:
    def __init__(self) -> None:
        self.seq = NumberMap(0x10000)  # the publisher's sequence numbers to ours
        self.ts_offset = 0  # added to the publisher's timestamps
        self.next_seq = random.randint(0, 0x7FFF)  # below 2^15: SRTP ROC safety
        self.last_ts = random.randint(0, 0xFFFFFFFF)  # the latest timestamp sent
        self.last_time = 0.0  # when the latest packet was sent (0: none yet)

    def restart(self, seq: int, timestamp: int, clock_rate: int, sent_before: bool) -> None:
        """The stream restarts at the publisher's packet ``seq``/``timestamp``."""
        self.seq.reset(seq, self.next_seq)
        if sent_before:
            # keep timestamps moving forward by the time that really passed
            elapsed = time.monotonic() - self.last_time
            gap = max(1, int(clock_rate * min(max(elapsed, 0.0), MAX_TIMESTAMP_GAP)))
            self.ts_offset = (self.last_ts + gap - timestamp) & 0xFFFFFFFF
        else:
            self.ts_offset = (self.last_ts - timestamp) & 0xFFFFFFFF

    def sent(self, out_seq: int, out_ts: int) -> None:
        """A packet went out with these numbers (a retransmission or a late one: older)."""
        if seq_delta(out_seq, self.next_seq) >= 0:
            self.next_seq = (out_seq + 1) & 0xFFFF
            self.last_ts = out_ts
            self.last_time = time.monotonic()

    @property
    def last_seq(self) -> int | None:
        """The latest sequence number sent (None before the first)."""
        return (self.next_seq - 1) & 0xFFFF if self.last_time else None
