"""AudioShaping: what one subscriber's link makes of a track's audio.

RED (sfu/red.py) is forwarded while the subscriber negotiated it and its
link has room for it (sfu/red_choice.py sets ``red_enabled``), its blocks
retagged when the subscriber numbers Opus differently; otherwise the primary
block goes alone. And the Opus bitrate this link wishes of the publisher
(sfu/audio_cap.py via sfu/downlink.py; the Producer asks for the smallest).
The per-packet RED choice itself stays inline in ``Consumer.forward`` (hot).
"""

from __future__ import annotations


class AudioShaping:
    """RED on or off, the payload type RED blocks are retagged to, and the wished Opus bitrate."""

    __slots__ = ("cap_bps", "red_enabled", "red_inner_pt")

    def __init__(self) -> None:
        self.red_enabled = True
        self.cap_bps: int | None = None  # None: no wish
        self.red_inner_pt: int | None = None  # retag the RED blocks to this payload type

    def bind(self, subscriber_pt: int, publisher_pt: int) -> None:
        """The subscriber's payload type for the codec: RED blocks carry it where it differs."""
        if subscriber_pt != publisher_pt:
            self.red_inner_pt = subscriber_pt
