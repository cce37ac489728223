"""Simulcast layers of one Producer: what each carries and what it costs.

A non-simulcast track is a Producer with one layer (rid None). A simulcast
track from a browser has one layer per rid, lowest first (the order of the
offer's ``a=simulcast:send`` list, which the client library sends lowest
first; VP8 keyframes give the true sizes once they arrive). Each layer
measures its bitrate per temporal layer so the allocator can price every
(spatial, temporal) choice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sfu.stream_stats import ReceiveStream

MAX_TEMPORAL = 4
NOMINAL_BITRATES = (150_000, 500_000, 1_500_000)
"""Prices (bit/s) of layers not measured yet, by rank; the client library's maxBitrate."""
RATE_SMOOTHING = 0.12
FPS_SMOOTHING = 0.4  # frame rate: follows a publisher whose frames collapse within ~2 s
"""Weight of the newest half-second measurement in a layer's price: ~4 s memory, so
keyframes (every 2 s from browsers, more after losses) do not make it jump."""
RESTART_SAMPLES = 8
"""Samples (half-seconds) after a layer starts flowing again during which it is priced
at no less than what it cost before: its smoothed rate climbs back from the little
left after the pause, and would make it look cheap to a subscriber on a thin link."""


@dataclass(slots=True)
class LayerRates:
    """Bytes received since the last sample, and smoothed bit/s, per temporal layer."""

    bytes_now: list[int] = field(default_factory=lambda: [0] * MAX_TEMPORAL)
    bitrate: list[float] = field(default_factory=lambda: [0.0] * MAX_TEMPORAL)
    temporal_seen: int = 0  # highest temporal id seen + 1 (1 when no T field)
    frames_now: int = 0  # frames completed (marker bit) since the last sample
    fps: float = 0.0  # smoothed frames per second

    def add(self, tid: int | None, size: int) -> None:
        t = 0 if tid is None else min(tid, MAX_TEMPORAL - 1)
        self.bytes_now[t] += size
        if t >= self.temporal_seen:
            self.temporal_seen = t + 1

    def sample(self, elapsed: float) -> bool:
        """Fold the bytes of the last ``elapsed`` seconds in; False if none arrived."""
        arrived = any(self.bytes_now)
        self.fps += FPS_SMOOTHING * (self.frames_now / elapsed - self.fps)
        self.frames_now = 0
        for t in range(MAX_TEMPORAL):
            rate = self.bytes_now[t] * 8 / elapsed
            if self.bitrate[t] == 0.0:
                self.bitrate[t] = rate  # the first measurement, not a ramp from zero
            else:
                self.bitrate[t] += RATE_SMOOTHING * (rate - self.bitrate[t])
            self.bytes_now[t] = 0
        return arrived

    def up_to(self, temporal: int) -> float:
        """Bit/s of temporal layers 0..temporal together."""
        return float(sum(self.bitrate[: temporal + 1]))

    @property
    def total(self) -> float:
        return float(sum(self.bitrate))


class Layer:
    """One spatial layer (one SSRC, maybe one RTX SSRC) of a Producer."""

    def __init__(self, index: int, rid: str | None, clock_rate: int) -> None:
        self.index = index
        self.rid = rid
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self.rtx_ssrc: int | None = None
        self.stream: ReceiveStream | None = None
        self.rates = LayerRates()
        self.width = 0
        self.height = 0
        self.active = True  # the publisher was not told to stop it
        self.last_arrival_ms = 0  # monotonic ms of the latest packet, media or RTX
        self.known_bitrate = 0.0  # last non-zero measurement, survives a pause
        self.flowing = False  # packets arrived in the last sampling interval
        self.restarting = 0  # samples left during which the price is not below known_bitrate
        self.last_keyframe_request = -1e9
        self.pending_request: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"Layer({self.index} rid={self.rid} {self.width}x{self.height})"

    def bind(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.stream = ReceiveStream(ssrc, self.clock_rate)

    def price(self, temporal: int) -> float:
        """Bit/s this layer costs at ``temporal``; measured, else remembered, else nominal."""
        measured = self.rates.up_to(temporal)
        if self.flowing and measured > 1000 and not self.restarting:
            return float(measured)
        full = self.known_bitrate or NOMINAL_BITRATES[min(self.index, len(NOMINAL_BITRATES) - 1)]
        temporal_layers = max(1, self.rates.temporal_seen)
        # without a measurement, assume each temporal step halves the rate
        remembered = full / float(1 << max(0, temporal_layers - 1 - temporal))
        return max(float(measured), remembered) if self.flowing else remembered

    def sample(self, elapsed: float) -> None:
        # a layer that stopped decays towards 0: remember what it cost while it flowed
        was_flowing = self.flowing
        self.flowing = self.rates.sample(elapsed)
        if self.flowing and not was_flowing and self.known_bitrate:
            self.restarting = RESTART_SAMPLES
        elif self.restarting:
            self.restarting -= 1
        if self.flowing and self.rates.total > 1000 and not self.restarting:
            self.known_bitrate = self.rates.total

    def cancel_request(self) -> None:
        if self.pending_request is not None:
            self.pending_request.cancel()
            self.pending_request = None
