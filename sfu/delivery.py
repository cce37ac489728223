"""Loss a receiver report cannot show: a stream that stopped arriving.

A receiver report's ``fraction_lost`` compares the packets a receiver got
with the sequence numbers it saw: when *nothing* of a stream arrives
between two reports, the highest sequence number does not move, nothing is
"expected", and the fraction is 0 (RFC 3550, A.3; libwebrtc and aiortc
both report it so). That is what a full bottleneck queue does to video:
the small audio packets still fit, every large video packet is dropped,
and the reports say "no loss".

``DeliveryCheck`` notes, twice a second, the latest sequence number each
stream was sent. A report whose highest sequence number is behind what was
sent more than ``DELIVERY_AGE`` (plus the link's own round trip) ago is
missing those packets: lost, or queued for over a second, congestion either
way. ``unreported_loss`` turns that into a loss fraction of what was sent
in the second before, for the estimator (sfu/bandwidth.py) to weigh as it
weighs ``fraction_lost``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Protocol

from sfu.rtp import seq_delta

DELIVERY_AGE = 1.0  # seconds after which a packet sent must show in the reports
WINDOW = 1.0  # seconds of sending the missing packets are compared with
HISTORY = DELIVERY_AGE + WINDOW + 2.0


class SentStream(Protocol):
    @property
    def last_out_seq(self) -> int | None: ...


class DeliveryCheck:
    def __init__(self) -> None:
        self._sent: dict[SentStream, deque[tuple[float, int]]] = {}

    def sample(self, streams: Iterable[SentStream], now: float) -> None:
        """Note what each stream has sent so far (call at least twice a second)."""
        streams = set(streams)
        for stream in streams:
            seq = stream.last_out_seq
            if seq is None:
                continue
            history = self._sent.setdefault(stream, deque())
            history.append((now, seq))
            while history and now - history[0][0] > HISTORY:
                history.popleft()
        for gone in set(self._sent) - streams:
            del self._sent[gone]

    def unreported_loss(
        self, stream: SentStream, highest_seq: int, now: float, round_trip: float = 0.0
    ) -> float:
        """The share of the packets sent in the second before the due time that
        ``highest_seq`` does not cover.

        Only that second counts: a stream that stopped sending (a paused
        video) whose last packets were lost shows that loss once, not
        forever.
        """
        history = self._sent.get(stream)
        if not history:
            return 0.0
        due = now - DELIVERY_AGE - max(0.0, round_trip)
        old = [seq for at, seq in history if at <= due]
        if not old:
            return 0.0
        older = [seq for at, seq in history if at <= due - WINDOW]
        since = older[-1] if older else history[0][1]
        sent = seq_delta(old[-1], since)
        if sent <= 0:
            return 0.0
        missing = seq_delta(old[-1], highest_seq & 0xFFFF)
        return min(1.0, max(0, missing) / sent)
