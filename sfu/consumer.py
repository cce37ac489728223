"""Consumer: one Producer delivered to one subscriber.

Rewrites SSRC, sequence number, timestamp, payload type and header-extension
ids for the subscriber's negotiated m-line, keeps a retransmission buffer to
answer NACKs with RTX, starts video at a keyframe, translates the
publisher's sender reports, and records the subscriber's receiver reports
(the inputs of bandwidth-driven layer choice).

Of a simulcast Producer it forwards one layer: the *target* layer (set by
the subscriber's bandwidth allocation) becomes the *current* one at its next
keyframe, with sequence numbers, timestamps and VP8 picture ids continuing
where the previous layer left off. Of a VP8 layer with temporal layers it
may forward only the lower ones, closing the numbering holes it leaves.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from dataclasses import dataclass

from sfu import red
from sfu.media import MediaKind, PacketClass, PacketSink, TrafficCounters
from sfu.producer import Producer
from sfu.rtcp import ReportBlock, SenderReport, build_sdes_cname, build_sr, ntp_middle, ntp_now
from sfu.rtp import RtpPacket, abs_send_time, build_header, seq_delta
from sfu.sequence_map import NumberMap
from sfu.vp8 import Vp8Descriptor, rewrite

logger = logging.getLogger(__name__)

RTX_BUFFER_SIZE = 1024  # power of two; ~10 s of 800 kbps video
REPEAT_WINDOW = 5.0  # seconds before a pause whose retransmissions are sent again at the resume
REPEAT_MAX = 32  # packets at most
RETRANSMITTED_KEPT = 256  # retransmissions remembered (repeat at a resume; once per round trip)
RETRANSMIT_MIN_INTERVAL = 0.1  # s: the same packet is not retransmitted again sooner


class ConsumerState(enum.Enum):
    NEW = "new"  # not negotiated with the subscriber yet
    WAITING_KEYFRAME = "waiting_keyframe"
    FORWARDING = "forwarding"
    PAUSED = "paused"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class OutboundParams:
    """What the subscriber's m-line negotiated for this Consumer."""

    mid: str
    ssrc: int
    rtx_ssrc: int | None
    payload_type: int
    rtx_payload_type: int | None
    mid_ext: int | None
    abs_send_time_ext: int | None
    audio_level_ext: int | None
    nack: bool
    cname: str
    red_payload_type: int | None = None  # the subscriber answered RED (sfu/red.py)
    transport_cc_ext: int | None = None  # the subscriber answered transport-cc (sfu/twcc.py)


class Consumer:
    def __init__(self, consumer_id: str, producer: Producer, subscriber_id: str) -> None:
        self.id = consumer_id
        self.producer = producer
        self.subscriber_id = subscriber_id
        self.kind = producer.kind
        self.state = ConsumerState.NEW
        self.counters = TrafficCounters()
        self.params: OutboundParams | None = None
        self._sink: PacketSink | None = None
        self._seq = NumberMap(0x10000)
        self._ts_offset = 0
        self._next_out_seq = random.randint(0, 0x7FFF)  # below 2^15: SRTP ROC safety
        self._last_out_ts = random.randint(0, 0xFFFFFFFF)
        self._last_out_time = 0.0
        self._rtx_seq = random.randint(0, 0x7FFF)
        self._buffer: list[tuple[int, int, RtpPacket, bytes, int] | None] = []
        self._is_video = self.kind is MediaKind.VIDEO
        # layers: what the allocation wants, and what is being forwarded
        self.target_layer = 0
        self.target_temporal = 3
        self.current_layer = -1
        self.temporal = 3
        self._pictures: NumberMap | None = None
        self._tl0: NumberMap | None = None
        self._last_pid = -1
        self._last_tl0 = -1
        self.layer_switches = 0
        # what the subscriber said about how it shows this track
        self.render_size: tuple[int, int] | None = None
        self.pinned = False
        # extension elements every packet starts with: the transport-wide sequence
        # number's slot (stamped as it leaves, sfu/transport_sender.py), then the mid
        self._head_elements = b""
        self._class = PacketClass.VIDEO if self._is_video else PacketClass.AUDIO
        self._ast_header = 0
        self._level_header = 0
        self._sr_sent: dict[int, float] = {}
        self._rtx_sr_sent: dict[int, float] = {}  # LSR -> when, for the RTX stream's reports
        self._rtx_packets = 0
        self._rtx_bytes = 0
        # subscriber feedback
        self.fraction_lost = 0.0
        self.jitter = 0
        self.rtt_ms: float | None = None
        self.pause_reasons: set[str] = set()  # e.g. "muted", "subscriber"; forwarding when empty
        # RED: forwarded while the subscriber negotiated it and its link has room
        # (DownlinkController sets red_enabled); otherwise the primary block alone
        self.red_enabled = True
        # audio: the Opus bitrate this subscriber's link wishes of the publisher (sfu/audio_cap.py)
        self.audio_cap_bps: int | None = None
        # retransmissions (when, sequence number) and when the last pause began:
        # some receivers (aiortc) ask for a packet once, so one lost on a link
        # too weak for video blocks their jitter buffer; the resume repeats them
        self._retransmitted: dict[int, float] = {}  # sequence number -> when, oldest first
        self._paused_at: float | None = None
        self._red_inner_pt: int | None = None  # retag the blocks to this payload type

    def __repr__(self) -> str:
        return f"Consumer({self.id} of {self.producer.id} to {self.subscriber_id})"

    def set_state(self, state: ConsumerState) -> None:
        if state is not self.state:
            logger.debug("%r %s -> %s", self, self.state.value, state.value)
            self.state = state

    # -- negotiation -----------------------------------------------------------

    def bind(self, params: OutboundParams, sink: PacketSink) -> None:
        """The subscriber transport is connected: start forwarding."""
        if self.state is ConsumerState.CLOSED:
            return
        self.params = params
        self._sink = sink
        head = b""
        if params.transport_cc_ext is not None:
            head = bytes(((params.transport_cc_ext << 4) | 1, 0, 0))
        if params.mid_ext is not None:
            mid = params.mid.encode()
            head += bytes([(params.mid_ext << 4) | (len(mid) - 1)]) + mid
        self._head_elements = head
        if params.abs_send_time_ext is not None and self.kind is MediaKind.VIDEO:
            self._ast_header = (params.abs_send_time_ext << 4) | 2
        if params.audio_level_ext is not None and self.kind is MediaKind.AUDIO:
            self._level_header = params.audio_level_ext << 4
        if params.nack:
            self._buffer = [None] * RTX_BUFFER_SIZE
        if params.payload_type != self.producer.codec.payload_type:
            self._red_inner_pt = params.payload_type
        if not self.pause_reasons:
            self._await_start()

    def _await_start(self) -> None:
        self.set_state(ConsumerState.WAITING_KEYFRAME)
        if self._is_video:
            self.producer.request_keyframe(self.target_layer)

    def set_target(self, layer: int, temporal: int) -> None:
        """Forward ``layer`` (from its next keyframe) up to temporal layer ``temporal``."""
        self.target_temporal = temporal
        if layer == self.target_layer:
            return
        self.target_layer = layer
        if self.state is ConsumerState.WAITING_KEYFRAME or (
            self.state is ConsumerState.FORWARDING and layer != self.current_layer
        ):
            self.producer.request_keyframe(layer)

    def pause(self, reason: str) -> None:
        self.pause_reasons.add(reason)
        if self.state in (ConsumerState.WAITING_KEYFRAME, ConsumerState.FORWARDING):
            self.set_state(ConsumerState.PAUSED)
            self._paused_at = time.monotonic()

    def resume(self, reason: str) -> None:
        """Lift one pause reason; forwarding restarts (at a keyframe) when none is left."""
        self.pause_reasons.discard(reason)
        if self.pause_reasons:
            return
        if self.state is ConsumerState.PAUSED or (
            self.state is ConsumerState.NEW and self.params is not None
        ):
            self._await_start()

    def close(self) -> None:
        if self.state is ConsumerState.CLOSED:
            return
        self.set_state(ConsumerState.CLOSED)
        self.producer.remove_consumer(self)
        self._buffer = []
        self._sink = None

    # -- packet path -------------------------------------------------------------

    def forward(self, packet: RtpPacket, send_time: bytes) -> None:
        state = self.state
        if state is ConsumerState.FORWARDING:
            if packet.layer != self.current_layer:
                if packet.layer != self.target_layer or not packet.keyframe:
                    return
                self._start(packet)
        elif state is ConsumerState.WAITING_KEYFRAME:
            if packet.layer != self.target_layer or (self._is_video and not packet.keyframe):
                return
            self._start(packet)
        else:
            return
        payload = packet.payload
        desc = packet.vp8
        if desc is not None and desc.tid is not None:
            # down at once; up only where the picture depends on TL0 alone
            if (
                desc.start
                and self.temporal != self.target_temporal
                and (self.target_temporal < self.temporal or desc.tid == 0 or desc.layer_sync)
            ):
                self.temporal = self.target_temporal
            if desc.tid > self.temporal:
                self._seq.drop(packet.seq)
                if desc.start and self._pictures is not None and desc.picture_id is not None:
                    self._pictures.drop(desc.picture_id)
                return
        params = self.params
        assert params is not None
        payload_type = params.payload_type
        if packet.red_primary is not None:
            if self.red_enabled and params.red_payload_type is not None:
                payload_type = params.red_payload_type
                if self._red_inner_pt is not None:
                    payload = red.retag(payload, self._red_inner_pt)
            else:
                payload = packet.red_primary
                if not payload:
                    self._seq.drop(packet.seq)
                    return
        out_seq = self._seq.map(packet.seq)
        if out_seq is None:
            return  # older than where this layer started
        if desc is not None and self._pictures is not None:
            rewritten = self._rewrite_vp8(payload, desc)
            if rewritten is None:
                return
            payload = rewritten
        out_ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        data = self._serialize(packet, payload, payload_type, out_seq, out_ts, send_time)
        if self._buffer:
            self._buffer[out_seq & (RTX_BUFFER_SIZE - 1)] = (
                out_seq,
                out_ts,
                packet,
                payload,
                payload_type,
            )
        if seq_delta(out_seq, self._next_out_seq) >= 0:
            self._next_out_seq = (out_seq + 1) & 0xFFFF
            self._last_out_ts = out_ts
            self._last_out_time = time.monotonic()
        assert self._sink is not None
        if self._sink.send_rtp(data, self._class):
            counters = self.counters
            counters.packets += 1
            counters.bytes += len(data)
        else:
            self.counters.dropped += 1

    def _rewrite_vp8(self, payload: bytes, desc: Vp8Descriptor) -> bytes | None:
        pid = tl0 = None
        if desc.picture_id is not None and self._pictures is not None:
            pid = self._pictures.map(desc.picture_id)
            if pid is None:
                return None
            if desc.start:
                self._last_pid = pid
        if desc.tl0 is not None and self._tl0 is not None:
            tl0 = self._tl0.map(desc.tl0)
            if tl0 is not None:
                self._last_tl0 = tl0
        if pid == desc.picture_id and tl0 == desc.tl0:
            return payload
        return rewrite(payload, desc, pid, tl0)

    def _start(self, packet: RtpPacket) -> None:
        """First packet of a (re)start or of a new layer: continue our own numbering."""
        self._seq.reset(packet.seq, self._next_out_seq)
        if self.counters.packets:
            # keep timestamps moving forward by the time that really passed
            clock = self.producer.codec.clock_rate
            elapsed = time.monotonic() - self._last_out_time
            gap = max(1, int(clock * min(max(elapsed, 0.0), 10.0)))
            self._ts_offset = (self._last_out_ts + gap - packet.timestamp) & 0xFFFFFFFF
        else:
            self._ts_offset = (self._last_out_ts - packet.timestamp) & 0xFFFFFFFF
        desc = packet.vp8
        if desc is not None and desc.picture_id is not None:
            modulus = 1 << desc.picture_id_bits
            self._pictures = NumberMap(modulus)
            first = desc.picture_id if self._last_pid < 0 else (self._last_pid + 1) % modulus
            self._pictures.reset(desc.picture_id, first)
            if desc.tl0 is not None:
                self._tl0 = NumberMap(0x100)
                first_tl0 = desc.tl0 if self._last_tl0 < 0 else (self._last_tl0 + 1) & 0xFF
                self._tl0.reset(desc.tl0, first_tl0)
            else:
                self._tl0 = None
        else:
            self._pictures = self._tl0 = None
        if self._paused_at is not None:
            self._repeat_retransmissions(self._paused_at - REPEAT_WINDOW)
            self._paused_at = None
        if self.current_layer >= 0 and packet.layer != self.current_layer:
            self.layer_switches += 1
        self.current_layer = packet.layer
        self.temporal = self.target_temporal
        self.set_state(ConsumerState.FORWARDING)

    def _serialize(
        self,
        packet: RtpPacket,
        payload: bytes,
        payload_type: int,
        out_seq: int,
        out_ts: int,
        send_time: bytes,
    ) -> bytes:
        params = self.params
        assert params is not None
        body = self._head_elements
        if self._ast_header:
            body += bytes((self._ast_header,)) + send_time
        if self._level_header:
            level_ext = self.producer.audio_level_ext
            level = packet.extensions.get(level_ext) if level_ext is not None else None
            if level:
                body += bytes((self._level_header,)) + level[:1]
        if body:
            pad = -len(body) % 4
            ext = b"\xbe\xde" + (len(body) // 4 + (pad > 0)).to_bytes(2, "big") + body
            if pad:
                ext += b"\x00" * pad
        else:
            ext = b""
        return (
            build_header(packet.marker, payload_type, out_seq, out_ts, params.ssrc, ext) + payload
        )

    # -- feedback from the subscriber ------------------------------------------------

    def handle_nack(self, lost: list[int]) -> None:
        """Retransmit what the subscriber lost, each packet at most once per round trip.

        A paused track retransmits nothing: its picture restarts at a
        keyframe anyway, and a receiver behind a full link keeps asking for
        packets whose repairs are lost again (real Chromium at 60 kbit/s:
        800 kbit/s of retransmissions, a NACK storm).
        """
        self.counters.nacks += 1
        if not self._buffer or self._sink is None or self.params is None:
            return
        if self.state is ConsumerState.PAUSED:
            return
        now = time.monotonic()
        retransmitted = self._retransmitted
        again_after = max(RETRANSMIT_MIN_INTERVAL, (self.rtt_ms or 0.0) / 1000.0)
        for seq in lost:
            if now - retransmitted.get(seq, -1e9) < again_after:
                continue  # sent again less than a round trip ago: still on its way
            if self._retransmit(seq):
                retransmitted.pop(seq, None)
                retransmitted[seq] = now
                if len(retransmitted) > RETRANSMITTED_KEPT:
                    del retransmitted[next(iter(retransmitted))]

    def _repeat_retransmissions(self, since: float) -> None:
        """Send again (REPEAT_MAX at most) what was retransmitted since ``since``."""
        repeated = [seq for seq, when in self._retransmitted.items() if when >= since]
        repeated = repeated[-REPEAT_MAX:]
        if repeated:
            logger.debug("%r: %d retransmission(s) repeated at the resume", self, len(repeated))
        for seq in repeated:
            self._retransmit(seq)
        self._retransmitted.clear()

    def _retransmit(self, seq: int) -> bool:
        """One buffered packet again, on RTX where negotiated; False if it is gone."""
        params, sink = self.params, self._sink
        if not self._buffer or params is None or sink is None:
            return False
        entry = self._buffer[seq & (RTX_BUFFER_SIZE - 1)]
        if entry is None or entry[0] != seq:
            return False
        _out_seq, out_ts, packet, payload, payload_type = entry
        now_ast = abs_send_time(time.time())
        if params.rtx_ssrc is not None and params.rtx_payload_type is not None:
            original = self._serialize(packet, payload, payload_type, seq, out_ts, now_ast)
            header_len = len(original) - len(payload)
            rtx_header = build_header(
                packet.marker,
                params.rtx_payload_type,
                self._rtx_seq,
                out_ts,
                params.rtx_ssrc,
                original[12:header_len],
            )
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            data = rtx_header + seq.to_bytes(2, "big") + payload
        else:
            data = self._serialize(packet, payload, payload_type, seq, out_ts, now_ast)
        if not sink.send_rtp(data, PacketClass.RETRANSMISSION):
            return False
        self.counters.retransmissions += 1
        return True

    @property
    def can_pad(self) -> bool:
        """Whether probe padding can go on this Consumer's RTX stream."""
        params = self.params
        return (
            self._sink is not None
            and params is not None
            and params.rtx_ssrc is not None
            and params.rtx_payload_type is not None
        )

    def send_padding(self, count: int, size: int) -> int:
        """Send ``count`` RTX padding-only packets of ``size`` padding bytes (probing).

        Receivers feed them to their bandwidth estimator (they carry
        abs-send-time) and drop them. Returns how many were sent.
        """
        params = self.params
        if not self.can_pad or params is None or self._sink is None:
            return 0
        assert params.rtx_ssrc is not None and params.rtx_payload_type is not None
        size = max(1, min(size, 255))
        padding = bytes(size - 1) + bytes((size,))
        ast = abs_send_time(time.time())
        ext = self._head_elements
        if self._ast_header:
            ext += bytes((self._ast_header,)) + ast
        if ext:
            pad = -len(ext) % 4
            ext = b"\xbe\xde" + ((len(ext) + pad) // 4).to_bytes(2, "big") + ext + bytes(pad)
        sent = 0
        for _ in range(count):
            header = bytearray(
                build_header(
                    False,
                    params.rtx_payload_type,
                    self._rtx_seq,
                    self._last_out_ts,
                    params.rtx_ssrc,
                    ext,
                )
            )
            header[0] |= 0x20  # P: the payload is all padding
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            if self._sink.send_rtp(bytes(header) + padding, PacketClass.PADDING):
                sent += 1
                self._rtx_packets += 1
                self._rtx_bytes += size
        return sent

    def send_rtx_report(self) -> bool:
        """Send a sender report on the RTX stream (sfu/downlink.py times its probes by it).

        The receiver echoes it in its next report block for that stream, so
        the round trip measured from it includes whatever queue the SR waited
        in on the way down: a probe that built a queue shows, loss or not.
        (Only on RTX, never on the media stream, whose SRs carry the
        publisher's clock for lip sync.)
        """
        params = self.params
        if not self.can_pad or params is None or self._sink is None:
            return False
        assert params.rtx_ssrc is not None
        ntp = ntp_now()
        self._rtx_sr_sent[ntp_middle(ntp)] = time.monotonic()
        if len(self._rtx_sr_sent) > 32:
            self._rtx_sr_sent.pop(next(iter(self._rtx_sr_sent)))
        report = SenderReport(
            ssrc=params.rtx_ssrc,
            ntp=ntp,
            rtp_timestamp=self._last_out_ts,
            packet_count=self._rtx_packets & 0xFFFFFFFF,
            octet_count=self._rtx_bytes & 0xFFFFFFFF,
        )
        return self._sink.send_rtcp(build_sr(report))

    def rtx_round_trip(self, block: ReportBlock) -> tuple[float, float] | None:
        """(round trip in seconds, when the echoed SR was sent) from an RTX report block."""
        sent = self._rtx_sr_sent.get(block.lsr) if block.lsr else None
        if sent is None:
            return None
        rtt = time.monotonic() - sent - block.dlsr / 65536.0
        return (rtt, sent) if rtt >= 0 else None

    @property
    def last_out_seq(self) -> int | None:
        """Sequence number of the latest media packet sent (None before the first)."""
        return (self._next_out_seq - 1) & 0xFFFF if self._last_out_time else None

    @property
    def last_rtx_seq(self) -> int:
        """Sequence number of the latest packet sent on the RTX stream."""
        return (self._rtx_seq - 1) & 0xFFFF

    def handle_keyframe_request(self) -> None:
        self.counters.keyframe_requests += 1
        if self.state is ConsumerState.FORWARDING:
            self.producer.request_keyframe(self.current_layer)
        elif self.state is ConsumerState.WAITING_KEYFRAME:
            self.producer.request_keyframe(self.target_layer)

    def handle_report_block(self, block: ReportBlock) -> None:
        self.fraction_lost = block.fraction_lost / 256.0
        self.jitter = block.jitter
        sent = self._sr_sent.get(block.lsr)
        if sent is not None:
            rtt = time.monotonic() - sent - block.dlsr / 65536.0
            if rtt >= 0:
                self.rtt_ms = rtt * 1000.0

    def translate_sender_report(self, report: SenderReport, layer: int = 0) -> None:
        """Relay the SR of the layer being forwarded, with this subscriber's SSRC and timestamps."""
        if (
            self.state is not ConsumerState.FORWARDING
            or self._sink is None
            or layer != self.current_layer
        ):
            return
        params = self.params
        assert params is not None
        translated = SenderReport(
            ssrc=params.ssrc,
            ntp=report.ntp,
            rtp_timestamp=(report.rtp_timestamp + self._ts_offset) & 0xFFFFFFFF,
            packet_count=self.counters.packets & 0xFFFFFFFF,
            octet_count=self.counters.bytes & 0xFFFFFFFF,
        )
        lsr = ntp_middle(report.ntp)
        self._sr_sent[lsr] = time.monotonic()
        if len(self._sr_sent) > 8:
            self._sr_sent.pop(next(iter(self._sr_sent)))
        self._sink.send_rtcp(build_sr(translated) + build_sdes_cname(params.ssrc, params.cname))
