"""Synthetic camera/microphone tracks and a receiver that counts what it decodes.

Used by the demo call, the tests and anyone scripting a consult without devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import time
from dataclasses import dataclass, field

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000


class CameraTrack(MediaStreamTrack):
    """A moving test pattern (decodable, changes every frame) at a fixed size."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._start: float | None = None
        self._count = 0
        y = np.arange(height, dtype=np.uint16)[:, None]
        x = np.arange(width, dtype=np.uint16)[None, :]
        self._base = ((x + y) % 256).astype(np.uint8)

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        target = self._start + self._count / self.fps
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        shift = (self._count * 4) % 256
        luma = (self._base + shift).astype(np.uint8)
        img = np.stack([luma, 255 - luma, np.full_like(luma, 128)], axis=-1)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = int(self._count * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._count += 1
        return frame


class ToneTrack(MediaStreamTrack):
    """A 440 Hz tone in 20 ms frames."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self.frequency = frequency
        self._start: float | None = None
        self._count = 0

    async def recv(self) -> av.AudioFrame:
        samples = AUDIO_RATE // 50
        if self._start is None:
            self._start = time.monotonic()
        target = self._start + self._count * 0.02
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(samples) + self._count * samples) / AUDIO_RATE
        pcm = (np.sin(2 * math.pi * self.frequency * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._count * samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._count += 1
        return frame


@dataclass
class Received:
    frames: int = 0
    samples: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    first_at: float | None = None
    peak: int = 0


class TrackReader:
    """Pulls decoded frames from a remote track and counts them."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.stats = Received()
        self.started = time.monotonic()
        self._progress = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await self.track.recv()
                stats = self.stats
                if stats.first_at is None:
                    stats.first_at = time.monotonic()
                stats.frames += 1
                if isinstance(frame, av.VideoFrame):
                    stats.sizes.add((frame.width, frame.height))
                elif isinstance(frame, av.AudioFrame):
                    stats.samples += frame.samples
                    if stats.frames % 10 == 0:
                        stats.peak = max(stats.peak, int(np.abs(frame.to_ndarray()).max()))
                self._progress.set()

    async def wait_frames(self, count: int, timeout: float = 15.0) -> Received:
        async with asyncio.timeout(timeout):
            while self.stats.frames < count:
                self._progress.clear()
                await self._progress.wait()
        return self.stats

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
