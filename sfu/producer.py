"""Producer: one incoming media track, fanned out to its Consumers.

The Producer sees every packet of its track once: it finds the simulcast
layer (sfu/layers.py) the packet belongs to, unwraps RTX, drops duplicates,
tracks loss for upstream NACKs, spots keyframes (and VP8 picture sizes and
temporal layers), stamps the egress abs-send-time once, and hands the same
parsed packet to every Consumer, which keeps the layer it was given. It
turns the Consumers' keyframe requests into one rate-limited PLI per layer,
and works out which layers some Consumer (or the recorder) still needs.

Its parts, one job each: sfu/fanout.py (who receives the packets, a failing
Consumer cut off alone), sfu/publisher_layers.py (layers by SSRC, which to
send), sfu/keyframe_requests.py (the PLI rate limit), sfu/uplink_watch.py
(a camera's uplink verdict), sfu/track_audio.py (RED, level, Opus asked for).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sfu import red
from sfu.fanout import Fanout
from sfu.faults import FAULTS
from sfu.keyframe_requests import KEYFRAME_REQUEST_INTERVAL, KeyframeRequests
from sfu.layers import Layer
from sfu.media import CodecInfo, MediaKind, Source, TrafficCounters
from sfu.publisher_layers import PublisherLayers
from sfu.rtcp import SenderReport
from sfu.rtp import RtpPacket, abs_send_time, is_keyframe_start, rtx_unwrap
from sfu.stream_stats import ReceiveStream
from sfu.track_audio import TrackAudio
from sfu.uplink_health import DownlinkHint, UplinkState
from sfu.uplink_watch import UplinkWatch
from sfu.vp8 import keyframe_size, parse_descriptor

if TYPE_CHECKING:
    from sfu.consumer import Consumer

logger = logging.getLogger(__name__)


class ProducerState(enum.Enum):
    LIVE = "live"
    CLOSED = "closed"


class Producer:
    def __init__(
        self,
        producer_id: str,
        participant_id: str,
        kind: MediaKind,
        source: Source,
        codec: CodecInfo,
        mid: str,
        request_keyframe_upstream: Callable[[int], None],
        keyframe_interval: float = KEYFRAME_REQUEST_INTERVAL,
        rids: list[str] | None = None,
    ) -> None:
        self.id = producer_id
        self.participant_id = participant_id
        self.kind = kind
        self.source = source
        self.codec = codec
        self.mid = mid
        self.muted = False
        self.state = ProducerState.LIVE
        self.counters = TrafficCounters()
        self.last_sr: dict[int, tuple[SenderReport, float]] = {}  # by layer SSRC
        # the Consumers and the recorder's taps (sfu/fanout.py)
        self.fanout = Fanout()
        # RED, audio level, the Opus the publisher was asked for (sfu/track_audio.py)
        self.audio = TrackAudio()
        # layers by SSRC, and which the publisher should send (sfu/publisher_layers.py)
        self._layers = PublisherLayers(rids, codec.clock_rate)
        # one rate-limited PLI per layer (sfu/keyframe_requests.py)
        self._keyframes = KeyframeRequests(
            request_keyframe_upstream, keyframe_interval, self.counters
        )
        # a camera's uplink verdict (sfu/uplink_watch.py)
        self._uplink = UplinkWatch() if source is Source.CAMERA else None
        self._is_video = kind is MediaKind.VIDEO
        self._codec_name = codec.name
        self._is_vp8 = self._codec_name == "VP8"

    def __repr__(self) -> str:
        return f"Producer({self.id} {self.source} {self._codec_name} x{len(self._layers.layers)})"

    # -- the parts' state -----------------------------------------------------

    @property
    def layers(self) -> list[Layer]:
        """The track's layers, lowest first (one without simulcast)."""
        return self._layers.layers

    @property
    def simulcast(self) -> bool:
        return self._layers.simulcast

    @property
    def consumers(self) -> set[Consumer]:
        return self.fanout.consumers

    @property
    def taps(self) -> list[Callable[[RtpPacket, int], None]]:
        """The recorder's hook: called synchronously with every accepted packet of the top layer."""
        return self.fanout.taps

    @property
    def red_payload_type(self) -> int | None:
        """Payload type of RED (sfu/red.py) when the publisher was answered with it."""
        return self.audio.red_payload_type

    @red_payload_type.setter
    def red_payload_type(self, payload_type: int | None) -> None:
        self.audio.red_payload_type = payload_type

    # -- lifecycle ---------------------------------------------------------

    def set_state(self, state: ProducerState) -> None:
        if state is not self.state:
            logger.debug("%r %s -> %s", self, self.state.value, state.value)
            self.state = state

    @property
    def ssrc(self) -> int | None:
        """The lowest layer's SSRC (the only one without simulcast)."""
        return self._layers.layers[0].ssrc

    @property
    def stream(self) -> ReceiveStream | None:
        return self._layers.layers[0].stream

    def bind_ssrc(self, ssrc: int, layer: Layer | None = None) -> Layer:
        return self._layers.bind_ssrc(ssrc, layer)

    def bind_rtx(self, rtx_ssrc: int, layer: Layer | None = None) -> Layer:
        return self._layers.bind_rtx(rtx_ssrc, layer)

    def layer_by_rid(self, rid: str) -> Layer | None:
        return self._layers.by_rid(rid)

    def ssrcs(self) -> list[int]:
        return list(self._layers.by_ssrc)

    def add_consumer(self, consumer: Consumer) -> None:
        self.fanout.consumers.add(consumer)

    def remove_consumer(self, consumer: Consumer) -> None:
        self.fanout.consumers.discard(consumer)

    def close(self) -> None:
        if self.state is ProducerState.CLOSED:
            return
        self.set_state(ProducerState.CLOSED)
        self._keyframes.close()
        for layer in self._layers.layers:
            layer.cancel_request()
        self.fanout.close()

    # -- packet path -------------------------------------------------------

    def receive_rtp(self, packet: RtpPacket, arrival_ms: int, size: int) -> None:
        """One decrypted packet of this track (media or RTX SSRC of any layer)."""
        layer = self._layers.by_ssrc.get(packet.ssrc)
        if layer is None or layer.ssrc is None:
            return
        layer.last_arrival_ms = arrival_ms
        rtx = False
        if packet.ssrc != layer.ssrc:
            if not rtx_unwrap(packet, layer.ssrc, self.codec.payload_type):
                return  # RTX padding probe: not media
            rtx = True
        elif packet.payload_type != self.codec.payload_type:
            if packet.payload_type != self.audio.red_payload_type:
                self.counters.dropped += 1
                return
            packet.red_primary = red.primary(packet.payload, self.codec.payload_type)
            if packet.red_primary is None:
                self.counters.dropped += 1
                return
        stream = layer.stream
        assert stream is not None
        if not stream.receive(packet.seq, packet.timestamp, arrival_ms, size, rtx):
            return
        counters = self.counters
        counters.packets += 1
        counters.bytes += size
        if not packet.payload:
            return  # padding-only packet
        packet.layer = layer.index
        if self._is_video:
            if packet.marker and not rtx:
                layer.rates.frames_now += 1
            if self._is_vp8:
                desc = parse_descriptor(packet.payload)
                packet.vp8 = desc
                if desc is not None:
                    layer.rates.add(desc.tid, size)
                    if desc.keyframe:
                        packet.keyframe = True
                        dims = keyframe_size(packet.payload, desc)
                        if dims is not None:
                            layer.width, layer.height = dims
            else:
                layer.rates.add(None, size)
                packet.keyframe = is_keyframe_start(self._codec_name, packet.payload)
            if packet.keyframe:
                counters.keyframes += 1
                layer.cancel_request()
        else:
            layer.rates.add(None, size)
            audio = self.audio
            if audio.level_ext is not None:
                level = packet.extensions.get(audio.level_ext)
                if level:
                    audio.level = level[0] & 0x7F
        fanout = self.fanout
        consumers = fanout.consumers
        if consumers:
            ast = abs_send_time(time.time())
            failed: list[Consumer] | None = None
            for consumer in consumers:
                try:
                    consumer.forward(packet, ast)
                except Exception as exc:  # one subscriber's bug: that delivery ends alone
                    FAULTS.record("consumer", consumer, exc)
                    failed = [*(failed or ()), consumer]
            if failed:
                fanout.drop_failed(failed)
        taps = fanout.taps
        if taps and layer.index == len(self._layers.layers) - 1:
            for tap in taps:
                try:
                    tap(packet, arrival_ms)
                except Exception as exc:  # a recorder's bug: that recording stops, the call not
                    FAULTS.record("tap", self, exc)
                    taps.remove(tap)
                    break

    def receive_sender_report(self, report: SenderReport) -> None:
        layer = self._layers.by_ssrc.get(report.ssrc)
        if layer is None or layer.ssrc != report.ssrc:
            return
        self.last_sr[report.ssrc] = (report, time.monotonic())
        self.fanout.sender_report(report, layer.index)

    def sample_rates(self, elapsed: float) -> None:
        for layer in self._layers.layers:
            layer.sample(elapsed)

    # -- layers the publisher should send ------------------------------------------

    def needed_layers(self, now: float) -> list[bool] | None:
        """Which layers to keep sending, or None when nothing changed.

        A layer is needed while a Consumer targets it (the lowest always, and
        the top one while the recorder taps it), and so is every layer below
        a needed one; when an unneeded one goes off is sfu/publisher_layers.py's
        business. A camera on a weak uplink gets no layer, then only its
        lowest while on trial (sfu/uplink_health.py).
        """
        layers = self._layers
        uplink = self._uplink
        if uplink is not None and not uplink.video_allowed:
            return layers.all_off(now)
        if not layers.simulcast:
            return layers.keep_up_to(0, now)
        wanted = {0}
        if self.fanout.taps:
            wanted.add(len(layers.layers) - 1)
        for consumer in self.fanout.consumers:
            if not consumer.pause_reasons:
                wanted.add(consumer.target_layer)
        top = max(wanted)
        if uplink is not None and uplink.state is UplinkState.TRIAL:
            top = 0  # a weak uplink gets its camera back on the smallest layer only
        return layers.keep_up_to(top, now)

    @property
    def uplink_weak(self) -> bool:
        """The publisher's camera arrives at a crawl, lossy or not at all (uplink_health)."""
        return self._uplink is not None and self._uplink.weak

    def check_uplink(
        self, now: float, hint: DownlinkHint | None = None, judged: bool = True
    ) -> bool:
        """Judge what arrived of the camera (twice a second); True when ``uplink_weak`` changed.

        ``hint``: what the same participant's downlink says (a link that
        widens usually widens both ways: the camera is then tried again).
        ``judged``: False while nothing of the publisher arrives at all (on
        hold, as the console's other rooms are): not judged, never weak.
        """
        if self._uplink is None:
            return False
        return self._uplink.check(self._layers.layers, self.muted or not judged, now, hint)

    def wanted_audio_cap(self) -> int | None:
        """The smallest Opus bitrate a subscriber's thin link wishes (None: no wish)."""
        caps = [c.audio_cap_bps for c in self.fanout.consumers if c.audio_cap_bps]
        return min(caps) if caps else None

    # -- keyframes ----------------------------------------------------------

    def request_keyframe(self, layer_index: int = 0) -> None:
        """Ask the publisher for a keyframe on one layer, at most once per interval.

        A request inside the interval is not lost: one request is sent when
        the interval ends, unless a keyframe arrived in between
        (sfu/keyframe_requests.py).
        """
        if not self._is_video or self.state is ProducerState.CLOSED:
            return
        layers = self._layers.layers
        layer = layers[min(layer_index, len(layers) - 1)]
        if layer.ssrc is None:
            return
        self._keyframes.request(layer)

    def request_keyframe_if_unanswered(self, layer_index: int) -> None:
        """A consumer still waits for a keyframe of this layer: ask again if the last
        request went unanswered for a while (sfu/keyframe_requests.py)."""
        if not self._is_video or self.state is ProducerState.CLOSED:
            return
        layers = self._layers.layers
        layer = layers[min(layer_index, len(layers) - 1)]
        if layer.ssrc is not None:
            self._keyframes.request_if_unanswered(layer)
