"""Fanout: who receives a Producer's packets, and what happens when one of them fails.

The Consumers of a track (one per subscriber) and the recorder's taps
(``Producer.taps``, called synchronously with every accepted packet of the
top layer). A Consumer that raises is closed alone (sfu/faults.py) and the
room is told (``on_consumer_failed``); the others go on. The per-packet
loops run inline in ``Producer.receive_rtp`` (hot); sender reports go out
from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sfu.faults import FAULTS
from sfu.rtcp import SenderReport
from sfu.rtp import RtpPacket

if TYPE_CHECKING:
    from sfu.consumer import Consumer


class Fanout:
    """A track's Consumers and taps; a failing Consumer is cut off alone."""

    __slots__ = ("consumers", "on_consumer_failed", "taps")

    def __init__(self) -> None:
        self.consumers: set[Consumer] = set()
        # public hook for the recorder: called synchronously with every accepted
        # packet of the top layer
        self.taps: list[Callable[[RtpPacket, int], None]] = []
        # the room's: a Consumer whose forward raised was closed
        self.on_consumer_failed: Callable[[Consumer], None] | None = None

    def sender_report(self, report: SenderReport, layer_index: int) -> None:
        """Relay the publisher's SR of one layer to every Consumer (each translates it)."""
        for consumer in list(self.consumers):
            try:
                consumer.translate_sender_report(report, layer_index)
            except Exception as exc:
                FAULTS.record("consumer", consumer, exc)
                self.drop_failed([consumer])

    def drop_failed(self, failed: list[Consumer]) -> None:
        """Close Consumers that raised, and tell the room."""
        for consumer in failed:
            consumer.close()
            if self.on_consumer_failed is not None:
                try:
                    self.on_consumer_failed(consumer)
                except Exception as exc:
                    FAULTS.record("consumer", consumer, exc)

    def close(self) -> None:
        """The track ended: close its Consumers; nobody receives any more."""
        for consumer in list(self.consumers):
            consumer.close()
        self.consumers.clear()
        self.taps.clear()
