"""RembHistory: the REMBs a subscriber's receivers sent, and which were decreases.

A receiver's REMB covers all its video streams: one covering one more (or
one less) track replaces the earlier one rather than adding to it.
Receivers only raise REMB slowly and lower it when they are sent less (it
is bounded by what arrives), so only a REMB below what was sent on its
streams means a queue: below ``remb_drop`` of the same receiver's previous
one, or for a first one, below ``first_remb_drop`` of what was sent. What
the link carries for video is then the sum of the fresh REMBs (younger than
``remb_ttl``); sfu/bandwidth.py adds the audio.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfu.tuning import TUNING


@dataclass(slots=True)
class _Remb:
    bitrate: int
    at: float


class RembHistory:
    """The latest REMB per receiver (by the streams it covers), and the latest decrease."""

    __slots__ = ("_rembs", "last_decrease")

    def __init__(self) -> None:
        self._rembs: dict[tuple[str, ...], _Remb] = {}
        self.last_decrease = -1e9  # when a REMB last decreased (monotonic s)

    @property
    def seen(self) -> bool:
        """Whether any receiver sent a REMB."""
        return bool(self._rembs)

    def add(self, key: tuple[str, ...], bitrate: int, sent_video: float, now: float) -> bool:
        """A REMB covering the streams ``key``, which carried ``sent_video`` bit/s; a decrease?"""
        overlapping = [k for k in self._rembs if set(k) & set(key)]
        previous = max((self._rembs.pop(k) for k in overlapping), key=lambda r: r.at, default=None)
        self._rembs[key] = _Remb(bitrate, now)
        if previous is None:
            decreased = bitrate < sent_video * TUNING.first_remb_drop
        else:
            decreased = bitrate < previous.bitrate * TUNING.remb_drop and bitrate < sent_video
        if decreased:
            self.last_decrease = now
        return decreased

    def fresh_total(self, now: float) -> float:
        """What the receivers say the link carries for video: their fresh REMBs (bit/s)."""
        return sum(r.bitrate for r in self._rembs.values() if now - r.at < TUNING.remb_ttl)
