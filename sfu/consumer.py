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

Its parts, one job each: sfu/layer_selection.py (target and current
layers), sfu/audio_shaping.py (RED on or off, the Opus bitrate wished),
sfu/stream_numbering.py and sfu/vp8_numbering.py (continuous numbering),
sfu/header_writer.py (header extensions), sfu/rtx_stream.py (retransmissions,
padding), sfu/sr_echo.py (round trips).
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass

from sfu import red
from sfu.audio_shaping import AudioShaping
from sfu.header_writer import HeaderWriter
from sfu.layer_selection import LayerSelection
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
        # target and current layers, the subscriber's display hints (sfu/layer_selection.py)
        self.layer_selection = LayerSelection()
        self._class = PacketClass.VIDEO if self.kind is MediaKind.VIDEO else PacketClass.AUDIO
        self._echo = SrEcho(SR_KEPT)  # the media stream's sender reports, for the round trip
        self.rtt_ms: float | None = None  # from the subscriber's reports on this stream
        self.pause_reasons: set[str] = set()  # e.g. "muted", "subscriber"; forwarding when empty
        # RED on or off, the Opus bitrate this link wishes (sfu/audio_shaping.py)
        self.audio_shaping = AudioShaping()

    def __repr__(self) -> str:
        return f"Consumer({self.id} of {self.producer.id} to {self.subscriber_id})"

    # -- the parts' state, for the allocation, metrics and tests ----------------------

    @property
    def target_layer(self) -> int:
        return self.layer_selection.target_layer

    @property
    def current_layer(self) -> int:
        """The spatial layer being forwarded (-1 before the first keyframe)."""
        return self.layer_selection.current_layer

    @property
    def temporal(self) -> int:
        """The highest VP8 temporal layer being forwarded."""
        return self.layer_selection.temporal

    @property
    def layer_switches(self) -> int:
        return self.layer_selection.layer_switches

    @property
    def render_size(self) -> tuple[int, int] | None:
        """The subscriber's rendered size of this track (device pixels), if it said."""
        return self.layer_selection.render_size

    @render_size.setter
    def render_size(self, size: tuple[int, int] | None) -> None:
        self.layer_selection.render_size = size

    @property
    def pinned(self) -> bool:
        return self.layer_selection.pinned

    @pinned.setter
    def pinned(self, pinned: bool) -> None:
        self.layer_selection.pinned = pinned

    @property
    def red_enabled(self) -> bool:
        """Forward RED where negotiated (sfu/red_choice.py); else the primary block alone."""
        return self.audio_shaping.red_enabled

    @red_enabled.setter
    def red_enabled(self, on: bool) -> None:
        self.audio_shaping.red_enabled = on

    @property
    def audio_cap_bps(self) -> int | None:
        """The Opus bitrate this subscriber's link wishes of the publisher (sfu/audio_cap.py)."""
        return self.audio_shaping.cap_bps

    @audio_cap_bps.setter
    def audio_cap_bps(self, cap: int | None) -> None:
        self.audio_shaping.cap_bps = cap

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
        self.audio_shaping.bind(params.payload_type, self.producer.codec.payload_type)
        if not self.pause_reasons:
            self._await_start()

    def _await_start(self) -> None:
        self.set_state(ConsumerState.WAITING_KEYFRAME)
        if self._class is PacketClass.VIDEO:
            self.producer.request_keyframe(self.layer_selection.target_layer)

    def set_target(self, layer: int, temporal: int) -> None:
        """Forward ``layer`` (from its next keyframe) up to temporal layer ``temporal``."""
        selection = self.layer_selection
        if not selection.retarget(layer, temporal):
            return
        if self.state is ConsumerState.WAITING_KEYFRAME or (
            self.state is ConsumerState.FORWARDING and layer != selection.current_layer
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
        selection = self.layer_selection
        if state is ConsumerState.FORWARDING:
            if packet.layer != selection.current_layer:
                if packet.layer != selection.target_layer:
                    return
                if not packet.keyframe:  # a switch waits for this layer's keyframe
                    self.producer.request_keyframe_if_unanswered(packet.layer)
                    return
                self._start(packet)
        elif state is ConsumerState.WAITING_KEYFRAME:
            if packet.layer != selection.target_layer:
                return
            if self._class is PacketClass.VIDEO and not packet.keyframe:
                self.producer.request_keyframe_if_unanswered(packet.layer)
                return
            self._start(packet)
        else:
            return
        payload = packet.payload
        desc = packet.vp8
        if desc is not None and desc.tid is not None:
            if desc.start and selection.temporal != selection.target_temporal:
                selection.follow_temporal(desc.tid, desc.layer_sync)
            if desc.tid > selection.temporal:
                self._numbers.seq.drop(packet.seq)
                self._vp8.drop(desc)
                return
        params = self.params
        assert params is not None
        payload_type = params.payload_type
        if packet.red_primary is not None:
            shaping = self.audio_shaping
            if shaping.red_enabled and params.red_payload_type is not None:
                payload_type = params.red_payload_type
                if shaping.red_inner_pt is not None:
                    payload = red.retag(payload, shaping.red_inner_pt)
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
        self.layer_selection.started(packet.layer)
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
        level_ext = self.producer.audio.level_ext
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
            self.producer.request_keyframe(self.layer_selection.current_layer)
        elif self.state is ConsumerState.WAITING_KEYFRAME:
            self.producer.request_keyframe(self.layer_selection.target_layer)

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
            or layer != self.layer_selection.current_layer
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
