"""SendRates: what a subscriber is being sent, per Consumer and per kind (bit/s).

Measured from each Consumer's byte counter at every allocation tick, and
smoothed: a keyframe makes one tick's rate jump.
"""

from __future__ import annotations

from sfu.consumer import Consumer
from sfu.media import MediaKind

RATE_SMOOTHING = 0.5


class SendRates:
    def __init__(self) -> None:
        self.audio = 0.0  # bit/s of all audio Consumers
        self.video = 0.0  # bit/s of all video Consumers
        self._rate: dict[Consumer, float] = {}
        self._bytes: dict[Consumer, int] = {}

    @property
    def total(self) -> float:
        return self.audio + self.video

    def of(self, consumer: Consumer) -> float:
        """What ``consumer`` is being sent (0 if not measured yet)."""
        return self._rate.get(consumer, 0.0)

    def measure(self, live: list[Consumer], elapsed: float) -> set[Consumer]:
        """One tick, ``elapsed`` s after the last; returns the Consumers gone since."""
        audio = video = 0.0
        for consumer in live:
            sent = consumer.counters.bytes
            delta = sent - self._bytes.get(consumer, sent)
            self._bytes[consumer] = sent
            measured = delta * 8 / elapsed
            rate = self._rate.get(consumer)
            rate = measured if not rate else rate + RATE_SMOOTHING * (measured - rate)
            self._rate[consumer] = rate
            if consumer.kind is MediaKind.AUDIO:
                audio += rate
            else:
                video += rate
        self.audio, self.video = audio, video
        gone = set(self._rate) - set(live)
        for consumer in gone:
            self._rate.pop(consumer, None)
            self._bytes.pop(consumer, None)
        return gone
