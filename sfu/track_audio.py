"""TrackAudio: the audio side of one published track.

How its packets are read (the RED payload type, sfu/red.py, and the
ssrc-audio-level extension id its publisher was answered with), the level
of the latest packet (sfu/speaker.py picks the loudest), and what its
publisher was last asked to send (the ``publisher_audio`` message: an Opus
bitrate cap and thin-link packets, sfu/publisher_peer.py). A video track
keeps the defaults. The Producer reads the level inline, per packet.
"""

from __future__ import annotations

SILENCE = 127  # -dBov: the level of a silent (or unmeasured) track


class TrackAudio:
    """A track's RED and level extension, its latest level, and the Opus it was asked for."""

    __slots__ = ("cap", "level", "level_ext", "red_payload_type", "thin_packets")

    def __init__(self) -> None:
        self.red_payload_type: int | None = None  # when the publisher was answered with RED
        self.level_ext: int | None = None  # publisher's id for ssrc-audio-level
        self.level = SILENCE  # -dBov of the latest packet
        self.cap: int | None = None  # the Opus bitrate the publisher was last asked for
        self.thin_packets = False  # ...and whether in thin-link packets

    def ask(self, cap: int | None, thin_packets: bool) -> bool:
        """The publisher is to send ``cap`` (None: no cap); True when that is a new request."""
        if cap == self.cap and thin_packets == self.thin_packets:
            return False
        self.cap = cap
        self.thin_packets = thin_packets
        return True
