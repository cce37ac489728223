"""Producer: one incoming media track, fanned out to its Consumers.

The Producer sees every packet of its track once: it finds the simulcast
layer (sfu/layers.py) the packet belongs to, unwraps RTX, drops duplicates,
tracks loss for upstream NACKs, spots keyframes (and VP8 picture sizes and
temporal layers), stamps the egress abs-send-time once, and hands the same
parsed packet to every Consumer, which keeps the layer it was given. It
turns the Consumers' keyframe requests into one rate-limited PLI per layer,
and works out which layers some Consumer (or the recorder) still needs.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sfu import red
from sfu.faults import FAULTS
from sfu.layers import Layer
from sfu.media import CodecInfo, MediaKind, Source, TrafficCounters
from sfu.rtcp import SenderReport
from sfu.rtp import RtpPacket, abs_send_time, is_keyframe_start, rtx_unwrap
from sfu.stream_stats import ReceiveStream
from sfu.uplink_health import UplinkHealth, UplinkState
from sfu.vp8 import keyframe_size, parse_descriptor

if TYPE_CHECKING:
    from sfu.consumer import Consumer

logger = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL = 0.25
"""Minimum seconds between two keyframe requests sent to one publisher layer."""
KEYFRAME_INTERVAL_RTTS = 1.25  # upstream keyframe requests: at most one per this many RTTs
LAYER_STOP_DELAY = 5.0
LAYER_MIN_ON = 10.0  # seconds a layer switched on stays on at least
LAYER_STALE = 2.0  # seconds without a packet: the publisher is not sending the layer
"""Seconds a layer must be unneeded before the publisher is told to stop it."""


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
        self.layers = [Layer(i, rid, codec.clock_rate) for i, rid in enumerate(rids or [None])]
        self.simulcast = len(self.layers) > 1
        self.audio_level_ext: int | None = None  # publisher's id for ssrc-audio-level
        self.audio_level = 127  # -dBov of the latest packet (127 = silence)
        # payload type of RED (sfu/red.py) when the publisher was answered with it
        self.red_payload_type: int | None = None
        self.audio_cap: int | None = None  # the Opus bitrate the publisher was last asked for
        self.thin_packets = False  # ...and whether in thin-link packets (sfu/publisher_peer.py)
        self.consumers: set[Consumer] = set()
        # public hook for the recorder: called synchronously with every accepted
        # packet of the top layer
        self.taps: list[Callable[[RtpPacket, int], None]] = []
        # the room's: a Consumer whose forward raised was closed (sfu/faults.py)
        self.on_consumer_failed: Callable[[Consumer], None] | None = None
        self.counters = TrafficCounters()
        self.last_sr: dict[int, tuple[SenderReport, float]] = {}  # by layer SSRC
        self._by_ssrc: dict[int, Layer] = {}
        self._is_video = kind is MediaKind.VIDEO
        self._codec_name = codec.name
        self._is_vp8 = self._codec_name == "VP8"
        self._request_upstream = request_keyframe_upstream
        self._keyframe_interval = keyframe_interval
        self._unneeded_since: dict[int, float] = {}
        self._uplink = UplinkHealth() if source is Source.CAMERA else None
        self._uplink_counts = (0, 0)  # packets expected and received at the last check
        self._switched: dict[int, float] = {}  # layer index -> when it was last switched on/off

    def __repr__(self) -> str:
        return f"Producer({self.id} {self.source} {self._codec_name} x{len(self.layers)})"

    # -- lifecycle ---------------------------------------------------------

    def set_state(self, state: ProducerState) -> None:
        if state is not self.state:
            logger.debug("%r %s -> %s", self, self.state.value, state.value)
            self.state = state

    @property
    def ssrc(self) -> int | None:
        """The lowest layer's SSRC (the only one without simulcast)."""
        return self.layers[0].ssrc

    @property
    def stream(self) -> ReceiveStream | None:
        return self.layers[0].stream

    def bind_ssrc(self, ssrc: int, layer: Layer | None = None) -> Layer:
        layer = layer or self.layers[0]
        if layer.ssrc is not None:
            self._by_ssrc.pop(layer.ssrc, None)
        layer.bind(ssrc)
        self._by_ssrc[ssrc] = layer
        return layer

    def bind_rtx(self, rtx_ssrc: int, layer: Layer | None = None) -> Layer:
        layer = layer or self.layers[0]
        layer.rtx_ssrc = rtx_ssrc
        self._by_ssrc[rtx_ssrc] = layer
        return layer

    def layer_by_rid(self, rid: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.rid == rid), None)

    def ssrcs(self) -> list[int]:
        return list(self._by_ssrc)

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.add(consumer)

    def remove_consumer(self, consumer: Consumer) -> None:
        self.consumers.discard(consumer)

    def close(self) -> None:
        if self.state is ProducerState.CLOSED:
            return
        self.set_state(ProducerState.CLOSED)
        for layer in self.layers:
            layer.cancel_request()
        for consumer in list(self.consumers):
            consumer.close()
        self.consumers.clear()
        self.taps.clear()

    # -- packet path -------------------------------------------------------

    def receive_rtp(self, packet: RtpPacket, arrival_ms: int, size: int) -> None:
        """One decrypted packet of this track (media or RTX SSRC of any layer)."""
        layer = self._by_ssrc.get(packet.ssrc)
        if layer is None or layer.ssrc is None:
            return
        layer.last_arrival_ms = arrival_ms
        rtx = False
        if packet.ssrc != layer.ssrc:
            if not rtx_unwrap(packet, layer.ssrc, self.codec.payload_type):
                return  # RTX padding probe: not media
            rtx = True
        elif packet.payload_type != self.codec.payload_type:
            if packet.payload_type != self.red_payload_type:
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
            if self.audio_level_ext is not None:
                level = packet.extensions.get(self.audio_level_ext)
                if level:
                    self.audio_level = level[0] & 0x7F
        if self.consumers:
            ast = abs_send_time(time.time())
            failed: list[Consumer] | None = None
            for consumer in self.consumers:
                try:
                    consumer.forward(packet, ast)
                except Exception as exc:  # one subscriber's bug: that delivery ends alone
                    FAULTS.record("consumer", consumer, exc)
                    failed = [*(failed or ()), consumer]
            if failed:
                self._drop_failed(failed)
        if self.taps and layer.index == len(self.layers) - 1:
            for tap in self.taps:
                try:
                    tap(packet, arrival_ms)
                except Exception as exc:  # a recorder's bug: that recording stops, the call not
                    FAULTS.record("tap", self, exc)
                    self.taps.remove(tap)
                    break

    def _drop_failed(self, failed: list[Consumer]) -> None:
        for consumer in failed:
            consumer.close()
            if self.on_consumer_failed is not None:
                try:
                    self.on_consumer_failed(consumer)
                except Exception as exc:
                    FAULTS.record("consumer", consumer, exc)

    def receive_sender_report(self, report: SenderReport) -> None:
        layer = self._by_ssrc.get(report.ssrc)
        if layer is None or layer.ssrc != report.ssrc:
            return
        self.last_sr[report.ssrc] = (report, time.monotonic())
        for consumer in list(self.consumers):
            try:
                consumer.translate_sender_report(report, layer.index)
            except Exception as exc:
                FAULTS.record("consumer", consumer, exc)
                self._drop_failed([consumer])

    def sample_rates(self, elapsed: float) -> None:
        for layer in self.layers:
            layer.sample(elapsed)

    # -- layers the publisher should send ------------------------------------------

    def needed_layers(self, now: float) -> list[bool] | None:
        """Which layers to keep sending, or None when nothing changed.

        A layer is needed while a Consumer targets it (the lowest always, and
        the top one while the recorder taps it), and so is every layer below
        a needed one: a browser told to send its top layer and not the middle
        one spends a thin uplink on 720p first (real Chromium on a 250 kbit/s
        uplink: `[q, f]` and `[q, h, f]` in turn).

        Only a layer that *arrives* and that nobody has needed for
        LAYER_STOP_DELAY seconds is switched off (it costs the publisher's
        uplink). One the publisher does not send (never yet, or not for
        LAYER_STALE seconds: a browser drops its upper layers by itself when
        its own estimate is too low for them) is left alone while every layer
        below it is on: it costs nothing, and switching it off and on again
        made Chromium probe its thin uplink every ten seconds. A layer
        switched on stays on at least LAYER_MIN_ON seconds (unless its absence
        would leave a gap below a needed layer).
        """
        if self._uplink is not None and not self._uplink.video_allowed:
            return self._all_layers_off(now)
        if not self.simulcast:
            if self.layers[0].active:
                return None
            self.layers[0].active = True  # back from a weak uplink
            return [True]
        wanted = {0}
        if self.taps:
            wanted.add(len(self.layers) - 1)
        for consumer in self.consumers:
            if not consumer.pause_reasons:
                wanted.add(consumer.target_layer)
        top = max(wanted)
        if self._uplink is not None and self._uplink.state is UplinkState.TRIAL:
            top = 0  # a weak uplink gets its camera back on the smallest layer only
        now_ms = now * 1000
        changed = False
        below_on = True  # every layer below this one stays on
        for layer in self.layers:
            index = layer.index
            if index <= top:
                self._unneeded_since.pop(index, None)
                if not layer.active:
                    layer.active = changed = True
                    self._switched[index] = now
            elif layer.active:
                arriving = (
                    layer.stream is not None and now_ms - layer.last_arrival_ms < LAYER_STALE * 1000
                )
                if arriving:
                    since = self._unneeded_since.setdefault(index, now)
                else:
                    since = now
                    self._unneeded_since.pop(index, None)
                if not below_on or (
                    now - since >= LAYER_STOP_DELAY
                    and now - self._switched.get(index, -1e9) >= LAYER_MIN_ON
                ):
                    layer.active = False
                    changed = True
                    self._switched[index] = now
                    self._unneeded_since.pop(index, None)
            below_on = below_on and layer.active
        return [layer.active for layer in self.layers] if changed else None

    def _all_layers_off(self, now: float) -> list[bool] | None:
        """The publisher's uplink is too weak for its camera: ask for none of it (audio first)."""
        if not any(layer.active for layer in self.layers):
            return None
        for layer in self.layers:
            if layer.active:
                layer.active = False
                self._switched[layer.index] = now
        self._unneeded_since.clear()
        return [False] * len(self.layers)

    @property
    def uplink_weak(self) -> bool:
        """The publisher's camera arrives at a crawl, lossy or not at all (uplink_health)."""
        return self._uplink is not None and self._uplink.weak

    def check_uplink(self, now: float, hint_bps: float | None = None, judged: bool = True) -> bool:
        """Judge what arrived of the camera (twice a second); True when ``uplink_weak`` changed.

        ``hint_bps``: the same participant's downlink estimate (a link that
        widens usually widens both ways: the camera is then tried again).
        ``judged``: False while nothing of the publisher arrives at all (on
        hold, as the console's other rooms are): not judged, never weak.
        """
        health = self._uplink
        if health is None:
            return False
        expected = sum(layer.stream.expected for layer in self.layers if layer.stream)
        received = sum(layer.stream.packets for layer in self.layers if layer.stream)
        before_expected, before_received = self._uplink_counts
        self._uplink_counts = (expected, received)
        delta = expected - before_expected
        loss = max(0, delta - (received - before_received)) / delta if delta > 0 else 0.0
        fps = max(layer.rates.fps for layer in self.layers)
        return health.update(fps, loss, self.muted or not judged, now, hint_bps)

    def wanted_audio_cap(self) -> int | None:
        """The smallest Opus bitrate a subscriber's thin link wishes (None: no wish)."""
        caps = [c.audio_cap_bps for c in self.consumers if c.audio_cap_bps]
        return min(caps) if caps else None

    # -- keyframes ----------------------------------------------------------

    def request_keyframe(self, layer_index: int = 0) -> None:
        """Ask the publisher for a keyframe on one layer, at most once per interval.

        A request inside the interval is not lost: one request is sent when
        the interval ends, unless a keyframe arrived in between.
        """
        if not self._is_video or self.state is ProducerState.CLOSED:
            return
        layer = self.layers[min(layer_index, len(self.layers) - 1)]
        if layer.ssrc is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        # no new request before the last one could have been answered (a long path)
        repair_s = (layer.stream.repair_ms or 0.0) / 1000 if layer.stream is not None else 0.0
        interval = max(self._keyframe_interval, KEYFRAME_INTERVAL_RTTS * repair_s)
        wait = layer.last_keyframe_request + interval - now
        if wait <= 0:
            self._send_keyframe_request(layer)
        elif layer.pending_request is None:
            layer.pending_request = loop.call_later(wait, self._send_keyframe_request, layer)

    def _send_keyframe_request(self, layer: Layer) -> None:
        layer.pending_request = None
        if self.state is ProducerState.CLOSED or layer.ssrc is None:
            return
        layer.last_keyframe_request = asyncio.get_running_loop().time()
        self.counters.keyframe_requests += 1
        self._request_upstream(layer.ssrc)
