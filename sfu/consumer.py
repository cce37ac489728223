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
import time
from dataclasses import dataclass

from sfu import red
from sfu.header_writer import HeaderWriter
from sfu.media import MediaKind, PacketClass, PacketSink, TrafficCounters
from sfu.producer import Producer
from sfu.rtcp import ReportBlock, SenderReport, build_sdes_cname, build_sr
from sfu.rtp import RtpPacket
from sfu.rtx_stream import RtxStream
from sfu.sr_echo import SrEcho
from sfu.stream_numbering import StreamNumbering
from sfu.vp8_numbering import Vp8Numbering

logger = logging.getLogger(__name__)

SR_KEPT = 8  # translated sender reports whose echo may still come


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
        self._numbers = StreamNumbering()  # continuous seq/timestamps (sfu/stream_numbering.py)
        self._vp8 = Vp8Numbering()  # continuous picture ids (sfu/vp8_numbering.py)
        self._headers = HeaderWriter()  # negotiated header extensions (sfu/header_writer.py)
        self._rtx = RtxStream(
            self.counters
        )  # history, retransmissions, padding (sfu/rtx_stream.py)
        # layers: what the allocation wants, and what is being forwarded
        self.target_layer = 0
        self.target_temporal = 3
        self.current_layer = -1
        self.temporal = 3
        self.layer_switches = 0
        # what the subscriber said about how it shows this track
        self.render_size: tuple[int, int] | None = None
        self.pinned = False
        self._class = PacketClass.VIDEO if self.kind is MediaKind.VIDEO else PacketClass.AUDIO
        self._echo = SrEcho(SR_KEPT)  # the media stream's sender reports, for the round trip
        self.rtt_ms: float | None = None  # from the subscriber's reports on this stream
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
        self._headers.bind(params, self.kind)
        self._rtx.bind(sink, self._serialize, params.nack, params.rtx_ssrc, params.rtx_payload_type)
        if params.payload_type != self.producer.codec.payload_type:
            self._red_inner_pt = params.payload_type
        if not self.pause_reasons:
            self._await_start()

    def _await_start(self) -> None:
        self.set_state(ConsumerState.WAITING_KEYFRAME)
        if self._class is PacketClass.VIDEO:
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
            if packet.layer != self.target_layer or (
                self._class is PacketClass.VIDEO and not packet.keyframe
            ):
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
                self._numbers.seq.drop(packet.seq)
                self._vp8.drop(desc)
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
                    self._numbers.seq.drop(packet.seq)
                    return
        numbers = self._numbers
        out_seq = numbers.seq.map(packet.seq)
        if out_seq is None:
            return  # older than where this layer started
        if desc is not None and self._vp8.pictures is not None:
            rewritten = self._vp8.rewrite(payload, desc)
            if rewritten is None:
                return
            payload = rewritten
        out_ts = (packet.timestamp + numbers.ts_offset) & 0xFFFFFFFF
        data = self._serialize(packet, payload, payload_type, out_seq, out_ts, send_time)
        self._rtx.record(out_seq, out_ts, packet, payload, payload_type)
        numbers.sent(out_seq, out_ts)
        assert self._sink is not None
        if self._sink.send_rtp(data, self._class):
            counters = self.counters
            counters.packets += 1
            counters.bytes += len(data)
        else:
            self.counters.dropped += 1

    def _start(self, packet: RtpPacket) -> None:
        """First packet of a (re)start or of a new layer: continue our own numbering."""
        self._numbers.restart(
            packet.seq, packet.timestamp, self.producer.codec.clock_rate, self.counters.packets > 0
        )
        self._vp8.restart(packet.vp8)
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
        level_ext = self.producer.audio_level_ext
        return self._headers.packet(
            packet, payload, payload_type, out_seq, out_ts, params.ssrc, send_time, level_ext
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
        ext = self._headers.padding_extensions()
        return self._rtx.send_padding(count, size, ext, self._numbers.last_ts)

    def send_rtx_report(self) -> bool:
        """Send a sender report on the RTX stream (sfu/downlink.py times its probes by it).

        The receiver echoes it in its next report block for that stream, so
        the round trip measured from it includes whatever queue the SR waited
        in on the way down: a probe that built a queue shows, loss or not.
        (Only on RTX, never on the media stream, whose SRs carry the
        publisher's clock for lip sync.)
        """
        return self._rtx.send_report(self._numbers.last_ts)

    def rtx_round_trip(self, block: ReportBlock) -> tuple[float, float] | None:
        """(round trip in seconds, when the echoed SR was sent) from an RTX report block."""
        return self._rtx.round_trip(block)

    @property
    def last_out_seq(self) -> int | None:
        """Sequence number of the latest media packet sent (None before the first)."""
        return self._numbers.last_seq

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
        """The subscriber's report on this stream: the round trip, if it echoes our SR.

        (Its loss and jitter are read by sfu/downlink.py from the whole report.)
        """
        round_trip = self._echo.round_trip(block)
        if round_trip is not None:
            self.rtt_ms = round_trip[0] * 1000.0

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
            rtp_timestamp=(report.rtp_timestamp + self._numbers.ts_offset) & 0xFFFFFFFF,
            packet_count=self.counters.packets & 0xFFFFFFFF,
            octet_count=self.counters.bytes & 0xFFFFFFFF,
        )
        self._echo.sent(report.ntp)
        self._sink.send_rtcp(build_sr(translated) + build_sdes_cname(params.ssrc, params.cname))
