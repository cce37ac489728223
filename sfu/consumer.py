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
from sfu.rtcp import ReportBlock, SenderReport, build_sdes_cname, build_sr, ntp_middle
from sfu.rtp import RtpPacket, abs_send_time, build_header, seq_delta
from sfu.rtx_stream import RtxStream
from sfu.sequence_map import NumberMap
from sfu.vp8 import Vp8Descriptor, rewrite

logger = logging.getLogger(__name__)


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
        self._rtx = RtxStream(
            self.counters
        )  # history, retransmissions, padding (sfu/rtx_stream.py)
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
        self._rtx.bind(sink, self._serialize, params.nack, params.rtx_ssrc, params.rtx_payload_type)
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
            self._rtx.paused_at = time.monotonic()

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
        self._rtx.close()
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
        self._rtx.record(out_seq, out_ts, packet, payload, payload_type)
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
        self._rtx.repeat_after_pause()
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
        """Retransmit what the subscriber lost (sfu/rtx_stream.py), unless paused.

        A paused track retransmits nothing: its picture restarts at a
        keyframe anyway, and a receiver behind a full link keeps asking for
        packets whose repairs are lost again (real Chromium at 60 kbit/s:
        800 kbit/s of retransmissions, a NACK storm).
        """
        self.counters.nacks += 1
        if self.params is None or self.state is ConsumerState.PAUSED:
            return
        self._rtx.answer(lost, None if self.rtt_ms is None else self.rtt_ms / 1000.0)

    @property
    def can_pad(self) -> bool:
        """Whether probe padding can go on this Consumer's RTX stream."""
        return self._rtx.can_pad

    def send_padding(self, count: int, size: int) -> int:
        """Send ``count`` RTX padding-only packets of ``size`` padding bytes (probing).

        Receivers feed them to their bandwidth estimator (they carry
        abs-send-time, and the transport-wide sequence number's slot) and
        drop them. Returns how many were sent.
        """
        ext = self._head_elements
        if self._ast_header:
            ext += bytes((self._ast_header,)) + abs_send_time(time.time())
        if ext:
            pad = -len(ext) % 4
            ext = b"\xbe\xde" + ((len(ext) + pad) // 4).to_bytes(2, "big") + ext + bytes(pad)
        return self._rtx.send_padding(count, size, ext, self._last_out_ts)

    def send_rtx_report(self) -> bool:
        """Send a sender report on the RTX stream (sfu/downlink.py times its probes by it).

        The receiver echoes it in its next report block for that stream, so
        the round trip measured from it includes whatever queue the SR waited
        in on the way down: a probe that built a queue shows, loss or not.
        (Only on RTX, never on the media stream, whose SRs carry the
        publisher's clock for lip sync.)
        """
        return self._rtx.send_report(self._last_out_ts)

    def rtx_round_trip(self, block: ReportBlock) -> tuple[float, float] | None:
        """(round trip in seconds, when the echoed SR was sent) from an RTX report block."""
        return self._rtx.round_trip(block)

    @property
    def last_out_seq(self) -> int | None:
        """Sequence number of the latest media packet sent (None before the first)."""
        return (self._next_out_seq - 1) & 0xFFFF if self._last_out_time else None

    @property
    def last_rtx_seq(self) -> int:
        """Sequence number of the latest packet sent on the RTX stream."""
        return self._rtx.last_seq

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
