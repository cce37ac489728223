"""Producer: one incoming media track, fanned out to its Consumers.

The Producer sees every packet of its track once: it unwraps RTX, drops
duplicates, tracks loss for upstream NACKs, spots keyframes, stamps the
egress abs-send-time once, and hands the same parsed packet to every
Consumer. It also turns the Consumers' keyframe requests into one
rate-limited PLI to the publisher.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sfu.media import CodecInfo, MediaKind, Source, TrafficCounters
from sfu.rtcp import SenderReport
from sfu.rtp import RtpPacket, abs_send_time, is_keyframe_start, rtx_unwrap
from sfu.stream_stats import ReceiveStream

if TYPE_CHECKING:
    from sfu.consumer import Consumer

logger = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL = 0.25
"""Minimum seconds between two keyframe requests sent to one publisher track."""


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
    ) -> None:
        self.id = producer_id
        self.participant_id = participant_id
        self.kind = kind
        self.source = source
        self.codec = codec
        self.mid = mid
        self.muted = False
        self.state = ProducerState.LIVE
        self.ssrc: int | None = None
        self.rtx_ssrc: int | None = None
        self.audio_level_ext: int | None = None  # publisher's id for ssrc-audio-level
        self.stream: ReceiveStream | None = None
        self.consumers: set[Consumer] = set()
        # public hook for the recorder: called with every accepted packet, synchronously
        self.taps: list[Callable[[RtpPacket, int], None]] = []
        self.counters = TrafficCounters()
        self.last_sr: SenderReport | None = None
        self.last_sr_arrival: float = 0.0
        self._is_video = kind is MediaKind.VIDEO
        self._codec_name = codec.name
        self._request_upstream = request_keyframe_upstream
        self._keyframe_interval = keyframe_interval
        self._last_keyframe_request = -1e9
        self._pending_request: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"Producer({self.id} {self.source} {self._codec_name})"

    # -- lifecycle ---------------------------------------------------------

    def set_state(self, state: ProducerState) -> None:
        if state is not self.state:
            logger.debug("%r %s -> %s", self, self.state.value, state.value)
            self.state = state

    def bind_ssrc(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.stream = ReceiveStream(ssrc, self.codec.clock_rate)

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.add(consumer)

    def remove_consumer(self, consumer: Consumer) -> None:
        self.consumers.discard(consumer)

    def close(self) -> None:
        if self.state is ProducerState.CLOSED:
            return
        self.set_state(ProducerState.CLOSED)
        if self._pending_request is not None:
            self._pending_request.cancel()
            self._pending_request = None
        for consumer in list(self.consumers):
            consumer.close()
        self.consumers.clear()
        self.taps.clear()

    # -- packet path -------------------------------------------------------

    def receive_rtp(self, packet: RtpPacket, arrival_ms: int, size: int) -> None:
        """One decrypted packet for this track (media or RTX SSRC)."""
        rtx = False
        if packet.ssrc != self.ssrc:
            if self.ssrc is None or packet.ssrc != self.rtx_ssrc:
                return
            if not rtx_unwrap(packet, self.ssrc, self.codec.payload_type):
                return  # RTX padding probe: not media
            rtx = True
        elif packet.payload_type != self.codec.payload_type:
            self.counters.dropped += 1
            return
        stream = self.stream
        assert stream is not None
        if not stream.receive(packet.seq, packet.timestamp, arrival_ms, size, rtx):
            return
        counters = self.counters
        counters.packets += 1
        counters.bytes += size
        if not packet.payload:
            return  # padding-only packet
        if self._is_video and is_keyframe_start(self._codec_name, packet.payload):
            packet.keyframe = True
            counters.keyframes += 1
            if self._pending_request is not None:
                self._pending_request.cancel()
                self._pending_request = None
        if self.consumers:
            ast = abs_send_time(time.time())
            for consumer in self.consumers:
                consumer.forward(packet, ast)
        if self.taps:
            for tap in self.taps:
                tap(packet, arrival_ms)

    def receive_sender_report(self, report: SenderReport) -> None:
        self.last_sr = report
        self.last_sr_arrival = time.monotonic()
        for consumer in self.consumers:
            consumer.translate_sender_report(report)

    # -- keyframes ----------------------------------------------------------

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per interval.

        A request inside the interval is not lost: one request is sent when
        the interval ends, unless a keyframe arrived in between.
        """
        if not self._is_video or self.state is ProducerState.CLOSED or self.ssrc is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait = self._last_keyframe_request + self._keyframe_interval - now
        if wait <= 0:
            self._send_keyframe_request()
        elif self._pending_request is None:
            self._pending_request = loop.call_later(wait, self._send_keyframe_request)

    def _send_keyframe_request(self) -> None:
        self._pending_request = None
        if self.state is ProducerState.CLOSED or self.ssrc is None:
            return
        self._last_keyframe_request = asyncio.get_running_loop().time()
        self.counters.keyframe_requests += 1
        self._request_upstream(self.ssrc)
