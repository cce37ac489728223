"""Whether a subscriber's link has room for redundant audio (RED, sfu/red.py).

RED about doubles what audio costs. On a link too weak for it, the loss RED
would repair is smaller than the loss its own overload causes, so the
primary Opus frames go alone: RED is forwarded while audio with RED takes
under ``RED_SHARE_OFF`` of the estimate, and comes back below
``RED_SHARE_ON`` (a quarter and 15 %: at half, RED stayed on at 250 kbit/s,
where the lowest video layer at full frame rate, ~160 kbit/s on the wire,
and Opus with RED, ~94, do not fit together). Audio with RED is priced at
what the publisher sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from sfu.consumer import Consumer
from sfu.media import MediaKind

logger = logging.getLogger(__name__)

RED_SHARE_OFF = 0.25  # RED audio falls back to plain Opus once it would take this share
RED_SHARE_ON = 0.15  # of the estimate, and comes back below this one


class RedChoice:
    """RED on or off for one subscriber's audio Consumers, with hysteresis."""

    __slots__ = ("negotiated", "on", "subscriber_id")

    def __init__(self, subscriber_id: str) -> None:
        self.subscriber_id = subscriber_id
        self.on = True  # RED forwarded (where negotiated): the link has room for it
        self.negotiated = False  # some audio Consumer could send RED

    def choose(
        self,
        live: Iterable[Consumer],
        estimate: float,
        rate: Callable[[Consumer], float | None],
        congested: bool = True,
    ) -> None:
        """Decide from the estimate; ``rate``: what a Consumer is sent now (bit/s, or None).

        ``congested``: the link showed congestion lately. Only then does RED
        go: an estimate that is low because little is sent (a wide link
        carrying audio and a small video) proves nothing about room.
        """
        red = [
            c
            for c in live
            if c.kind is MediaKind.AUDIO
            and c.producer.red_payload_type is not None
            and c.params is not None
            and c.params.red_payload_type is not None
        ]
        self.negotiated = bool(red)
        if not red:
            return
        cost = sum(c.producer.layers[0].known_bitrate or 2 * (rate(c) or 0.0) for c in red)
        on = self.on
        if on and congested and cost > estimate * RED_SHARE_OFF:
            on = False
        elif not on and cost < estimate * RED_SHARE_ON:
            on = True
        if on != self.on:
            logger.info(
                "subscriber %s: RED audio %s (%d of %d bit/s)",
                self.subscriber_id,
                "resumed" if on else "off",
                cost,
                estimate,
            )
            self.on = on
        for consumer in red:
            consumer.red_enabled = on

    @property
    def reported(self) -> bool | None:
        """For the quality event: on, off, or None when no audio track has RED at both ends."""
        return self.on if self.negotiated else None
