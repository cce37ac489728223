"""RtxStream: a Consumer's retransmission side.

What a Consumer sent lately (a ring of ``RTX_BUFFER_SIZE`` packets, kept
only where the subscriber negotiated NACK), the retransmissions it answers
NACKs with (on the RTX stream where negotiated, else the original packet
again), the probe padding it carries for the DownlinkController, and the
sender reports on the RTX stream whose echoes time the link. The Consumer
forwards; this remembers and repairs.

Retransmission rules:

- a packet is retransmitted at most once per round trip (at least
  ``RETRANSMIT_MIN_INTERVAL``): a receiver behind a full link asks again
  before the first repair could arrive;
- nothing while the track is paused (the Consumer does not ask): its
  picture restarts at a keyframe anyway, and repairs into a full link feed
  a NACK storm (real Chromium at 60 kbit/s drew 800 kbit/s of them);
- at a resume, what was retransmitted in the ``REPEAT_WINDOW`` seconds
  before the pause is sent once more (``REPEAT_MAX`` at most): aiortc's
  receiver asks for a packet only once, and one lost on the link that
  caused the pause would block its jitter buffer.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from sfu.media import PacketClass, PacketSink, TrafficCounters
from sfu.rtcp import ReportBlock, SenderReport, build_sr, ntp_now
from sfu.rtp import RtpPacket, abs_send_time, build_header
from sfu.sr_echo import SrEcho

logger = logging.getLogger(__name__)

RTX_BUFFER_SIZE = 1024  # power of two; ~10 s of 800 kbps video
REPEAT_WINDOW = 5.0  # seconds before a pause whose retransmissions are sent again at the resume
REPEAT_MAX = 32  # packets at most
RETRANSMITTED_KEPT = 256  # retransmissions remembered (repeat at a resume; once per round trip)
RETRANSMIT_MIN_INTERVAL = 0.1  # s: the same packet is not retransmitted again sooner
RTX_REPORTS_KEPT = 32  # sender reports on the RTX stream whose echo may still come

Serialize = Callable[[RtpPacket, bytes, int, int, int, bytes], bytes]
"""The Consumer's packet builder: (packet, payload, payload type, seq, timestamp, abs-send-time)."""

_Entry = tuple[int, int, RtpPacket, bytes, int]  # out seq, out ts, packet, payload, payload type


class RtxStream:
    """History, retransmissions, padding and RTX sender reports of one Consumer."""

    __slots__ = (
        "_buffer",
        "_bytes",
        "_counters",
        "_echo",
        "_packets",
        "_payload_type",
        "_retransmitted",
        "_seq",
        "_serialize",
        "_sink",
        "_ssrc",
        "paused_at",
    )

    def __init__(self, counters: TrafficCounters) -> None:
        self._counters = counters
        self._buffer: list[_Entry | None] = []
        self._seq = random.randint(0, 0x7FFF)  # below 2^15: SRTP ROC safety
        self._packets = 0
        self._bytes = 0
        self._echo = SrEcho(RTX_REPORTS_KEPT)  # the RTX stream's reports, for the round trip
        self._retransmitted: dict[int, float] = {}  # sequence number -> when, oldest first
        self._sink: PacketSink | None = None
        self._serialize: Serialize | None = None
        self._ssrc: int | None = None
        self._payload_type: int | None = None
        self.paused_at: float | None = None  # when the last pause began (repeat at the resume)

    def bind(
        self,
        sink: PacketSink,
        serialize: Serialize,
        nack: bool,
        rtx_ssrc: int | None,
        rtx_payload_type: int | None,
    ) -> None:
        self._sink = sink
        self._serialize = serialize
        if nack:
            self._buffer = [None] * RTX_BUFFER_SIZE
        if rtx_ssrc is not None and rtx_payload_type is not None:
            self._ssrc, self._payload_type = rtx_ssrc, rtx_payload_type

    def close(self) -> None:
        self._buffer = []
        self._sink = None

    def record(self, out_seq: int, out_ts: int, packet: RtpPacket, payload: bytes, pt: int) -> None:
        """One forwarded packet, kept for retransmission."""
        if self._buffer:
            self._buffer[out_seq & (RTX_BUFFER_SIZE - 1)] = (out_seq, out_ts, packet, payload, pt)

    # -- NACKs ------------------------------------------------------------------------------

    def answer(self, lost: list[int], rtt_s: float | None) -> None:
        """Retransmit what was lost, each packet at most once per round trip."""
        if not self._buffer or self._sink is None:
            return
        now = time.monotonic()
        retransmitted = self._retransmitted
        again_after = max(RETRANSMIT_MIN_INTERVAL, rtt_s or 0.0)
        for seq in lost:
            if now - retransmitted.get(seq, -1e9) < again_after:
                continue  # sent again less than a round trip ago: still on its way
            if self._retransmit(seq):
                retransmitted.pop(seq, None)
                retransmitted[seq] = now
                if len(retransmitted) > RETRANSMITTED_KEPT:
                    del retransmitted[next(iter(retransmitted))]

    def repeat_after_pause(self) -> None:
        """At a resume: send again (REPEAT_MAX at most) what was retransmitted before the pause."""
        if self.paused_at is None:
            return
        since = self.paused_at - REPEAT_WINDOW
        self.paused_at = None
        repeated = [seq for seq, when in self._retransmitted.items() if when >= since]
        repeated = repeated[-REPEAT_MAX:]
        if repeated:
            logger.debug("%d retransmission(s) repeated at the resume", len(repeated))
        for seq in repeated:
            self._retransmit(seq)
        self._retransmitted.clear()

    def _retransmit(self, seq: int) -> bool:
        """One buffered packet again, on RTX where negotiated; False if it is gone."""
        sink, serialize = self._sink, self._serialize
        if not self._buffer or sink is None or serialize is None:
            return False
        entry = self._buffer[seq & (RTX_BUFFER_SIZE - 1)]
        if entry is None or entry[0] != seq:
            return False
        _out_seq, out_ts, packet, payload, payload_type = entry
        original = serialize(packet, payload, payload_type, seq, out_ts, abs_send_time(time.time()))
        if self._ssrc is not None and self._payload_type is not None:
            header_len = len(original) - len(payload)
            rtx_header = build_header(
                packet.marker, self._payload_type, self._seq, out_ts, self._ssrc,
                original[12:header_len],
            )  # fmt: skip
            self._seq = (self._seq + 1) & 0xFFFF
            data = rtx_header + seq.to_bytes(2, "big") + payload
        else:
            data = original
        if not sink.send_rtp(data, PacketClass.RETRANSMISSION):
            return False
        self._counters.retransmissions += 1
        return True

    # -- padding and link timing (sfu/downlink.py) ----------------------------------------

    @property
    def can_pad(self) -> bool:
        return self._sink is not None and self._ssrc is not None

    @property
    def last_seq(self) -> int:
        """Sequence number of the latest packet sent on the RTX stream."""
        return (self._seq - 1) & 0xFFFF

    def send_padding(self, count: int, size: int, extension: bytes, timestamp: int) -> int:
        """``count`` padding-only packets of ``size`` padding bytes; returns how many went."""
        sink = self._sink
        if sink is None or self._ssrc is None or self._payload_type is None:
            return 0
        size = max(1, min(size, 255))
        padding = bytes(size - 1) + bytes((size,))
        sent = 0
        for _ in range(count):
            header = bytearray(
                build_header(False, self._payload_type, self._seq, timestamp, self._ssrc, extension)
            )
            header[0] |= 0x20  # P: the payload is all padding
            self._seq = (self._seq + 1) & 0xFFFF
            if sink.send_rtp(bytes(header) + padding, PacketClass.PADDING):
                sent += 1
                self._packets += 1
                self._bytes += size
        return sent

    def send_report(self, timestamp: int) -> bool:
        """A sender report on the RTX stream; its echo gives the round trip, queue included."""
        sink = self._sink
        if sink is None or self._ssrc is None:
            return False
        ntp = ntp_now()
        self._echo.sent(ntp)
        report = SenderReport(
            ssrc=self._ssrc,
            ntp=ntp,
            rtp_timestamp=timestamp,
            packet_count=self._packets & 0xFFFFFFFF,
            octet_count=self._bytes & 0xFFFFFFFF,
        )
        return sink.send_rtcp(build_sr(report))

    def round_trip(self, block: ReportBlock) -> tuple[float, float] | None:
        """(round trip in seconds, when the echoed SR was sent) from an RTX report block."""
        return self._echo.round_trip(block)
