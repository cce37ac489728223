"""TransportSender: how one subscriber transport's RTP leaves the server.

Consumers hand it finished packets with their class (audio, retransmission,
video, padding). It paces them (sfu/pacer.py: audio never waits, a keyframe
burst is spread at the pacing rate) and, right before each packet leaves,
stamps what belongs to the moment of sending:

- the transport-wide sequence number, when the subscriber negotiated
  transport-cc: the Consumer reserved its slot as the first header
  extension element (bytes 17-18 of a packet with no CSRC), and the send
  time and size go into a history the transport feedback is resolved
  against (sfu/twcc.py);
- abs-send-time, for a packet that waited in the pacer's queue: a receiver
  that estimates from it (REMB) must see when the packet really left.

While a subscriber's link is so thin that all its video is paused
(``sparse_audio_feedback``), only one audio packet in ``AUDIO_FEEDBACK_GAP``
gets a sequence number; the others carry padding in the slot. A browser
sends transport feedback for what carries one, and spaces it by its own
send estimate, not by the link: real Chromium at 60 kbit/s returned 13-16
feedback packets a second for the audio alone, ~10 kbit/s of an uplink that
also carries its own voice (report.json's link_samples: that uplink dropped
10-15 packets a second). Probe padding is always numbered: probes still get
the feedback that decides a resume. A numbered audio packet is recorded with
the size of those left unnumbered before it, so the acknowledged rate
still counts all the audio that arrived.

RTCP is never paced: it goes straight to the SRTP egress.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sfu.media import PacketClass, PacketSink
from sfu.pacer import Pacer
from sfu.rtp import abs_send_time
from sfu.twcc import SentPacketHistory, TransportSequence

AUDIO_FEEDBACK_GAP = 0.2  # s between numbered audio packets while the link is thin
SLOT = 16  # the first extension element of a packet we built (12-byte header, no CSRC)
WIRE_OVERHEAD = 10 + 8 + 20 + 14  # SRTP tag, UDP, IPv4, Ethernet: what a link carries besides


class TransportSender:
    """Pacer + transport-wide sequence numbers + send history for one subscriber transport."""

    __slots__ = (
        "_ast_ext",
        "_audio_numbered_at",
        "_audio_unnumbered",
        "_egress",
        "_sent_at_share",
        "_sequence",
        "_twcc_byte",
        "history",
        "on_stamped",
        "pacer",
        "send_rtp",
        "sparse_audio_feedback",
    )

    def __init__(self, egress: PacketSink) -> None:
        self._egress = egress
        self._twcc_byte = 0  # the slot's element header byte; 0: transport-cc not negotiated
        self._ast_ext: int | None = None
        self._sequence = TransportSequence()
        self.history = SentPacketHistory()
        self.pacer = Pacer(egress.send_rtp, prepare=self._prepare)
        # the per-packet path, bound once: straight to SRTP while nothing needs the
        # pacer (unpaced, no transport-cc), else through it (set_rate, configure)
        self.send_rtp = egress.send_rtp
        # called with each packet's unwrapped transport-wide sequence number (probe clusters)
        self.on_stamped: Callable[[int], None] | None = None
        self._sent_at_share = (0, 0)  # (bytes, packets) sent when payload_share() was last asked
        self.sparse_audio_feedback = False  # all video paused for bandwidth (sfu/downlink.py)
        self._audio_numbered_at = -1e9
        self._audio_unnumbered = 0  # wire bytes of the audio packets left unnumbered since

    def configure(self, transport_cc_ext: int | None, abs_send_time_ext: int | None) -> None:
        """The extension ids the subscriber negotiated (one id space per bundled transport).

        An audio m-line has no abs-send-time: None there leaves the known id.
        """
        self._twcc_byte = (transport_cc_ext << 4) | 1 if transport_cc_ext is not None else 0
        if abs_send_time_ext is not None:
            self._ast_ext = abs_send_time_ext
        self._route()

    def set_rate(self, bps: float) -> None:
        """The pacing rate (0: unpaced)."""
        self.pacer.rate_bps = bps
        self._route()

    def _route(self) -> None:
        paced = self.pacer.rate_bps > 0 or self._twcc_byte or self.pacer.queued_packets
        self.send_rtp = self.pacer.send_rtp if paced else self._egress.send_rtp

    @property
    def transport_cc(self) -> bool:
        return bool(self._twcc_byte)

    def send_rtcp(self, data: bytes) -> bool:
        return self._egress.send_rtcp(data)

    def payload_share(self) -> float | None:
        """The share of the bits on the wire that RTP packets are, since the last call.

        Transport feedback measures the link in bits on the wire (headers of
        UDP, IP and Ethernet, and the SRTP tag included), while what is sent
        is priced in RTP bits: 64 kbit/s of 20 ms audio is 84 on the wire.
        None when nothing was sent.
        """
        pacer = self.pacer
        sent_bytes, sent_packets = pacer.sent_bytes, pacer.sent_packets
        before_bytes, before_packets = self._sent_at_share
        self._sent_at_share = (sent_bytes, sent_packets)
        rtp = sent_bytes - before_bytes
        if rtp <= 0:
            return None
        return rtp / (rtp + (sent_packets - before_packets) * WIRE_OVERHEAD)

    def close(self) -> None:
        self.pacer.close()

    def _prepare(self, data: bytes, cls: PacketClass, queued: bool) -> bytes:
        if queued and self._ast_ext is not None and cls is not PacketClass.AUDIO:
            data = _restamp_abs_send_time(data, self._ast_ext)
        byte = self._twcc_byte
        if byte and len(data) > SLOT + 3 and data[0] & 0x1F == 0x10 and data[SLOT] == byte:
            now = time.monotonic()
            size = len(data) + WIRE_OVERHEAD
            if cls is PacketClass.AUDIO and self.sparse_audio_feedback:
                if now - self._audio_numbered_at < AUDIO_FEEDBACK_GAP:
                    self._audio_unnumbered += size
                    # the element becomes three padding bytes (RFC 8285 allows them between)
                    return b"".join((data[:SLOT], bytes(3), data[SLOT + 3 :]))
                self._audio_numbered_at = now
                size += self._audio_unnumbered
                self._audio_unnumbered = 0
            seq = self._sequence.next_seq()
            data = b"".join((data[: SLOT + 1], seq.to_bytes(2, "big"), data[SLOT + 3 :]))
            sent = self.history.on_sent(seq, now, size, int(cls))
            if self.on_stamped is not None:
                self.on_stamped(sent)
        return data


def _restamp_abs_send_time(data: bytes, ext_id: int) -> bytes:
    """``data`` with its abs-send-time element (one-byte form) set to now."""
    if data[0] & 0x1F != 0x10 or data[12:14] != b"\xbe\xde":
        return data
    end = 16 + 4 * int.from_bytes(data[14:16], "big")
    pos = 16
    while pos < end and pos < len(data):
        header = data[pos]
        if header == 0:  # padding
            pos += 1
            continue
        length = (header & 0x0F) + 1
        if header >> 4 == ext_id and length == 3:
            return data[: pos + 1] + abs_send_time(time.time()) + data[pos + 4 :]
        pos += 1 + length
    return data
