"""Media that costs the load generator almost nothing.

A VP8 clip and an Opus clip are encoded once (cached on disk), then replayed
as ``av.Packet``s: aiortc's sender only packetizes them (no encoding).
"""

from __future__ import annotations

import asyncio
import fractions
import math
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

CACHE_DIR = Path(__file__).resolve().parent / "results" / "cache"


@dataclass(frozen=True)
class EncodedClip:
    kind: str
    frames: list[bytes]
    keyframes: list[bool]
    frame_duration: int  # in time_base units
    time_base: fractions.Fraction

    @property
    def bitrate(self) -> float:
        seconds = len(self.frames) * self.frame_duration * self.time_base
        return sum(len(f) for f in self.frames) * 8 / float(seconds)


def _cached(name: str) -> EncodedClip | None:
    path = CACHE_DIR / f"{name}.pickle"
    if path.exists():
        clip: EncodedClip = pickle.loads(path.read_bytes())
        return clip
    return None


def _store(name: str, clip: EncodedClip) -> EncodedClip:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    (CACHE_DIR / f"{name}.pickle").write_bytes(pickle.dumps(clip))
    return clip


def vp8_clip(
    width: int = 640,
    height: int = 360,
    fps: int = 30,
    bitrate: int = 800_000,
    seconds: int = 10,
    gop: int = 60,
) -> EncodedClip:
    name = f"vp8-{width}x{height}-{fps}-{bitrate}-{seconds}-{gop}"
    cached = _cached(name)
    if cached is not None:
        return cached
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, fps)
    codec.framerate = fractions.Fraction(fps, 1)
    codec.gop_size = gop
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "error-resilient": "1",
        "auto-alt-ref": "0",
    }
    y = np.arange(height)[:, None]
    x = np.arange(width)[None, :]
    frames: list[bytes] = []
    keys: list[bool] = []
    for i in range(seconds * fps):
        luma = ((x + y * 2 + i * 6) % 256).astype(np.uint8)
        noise = ((x * 7 + y * 13 + i * 31) % 17).astype(np.uint8)
        img = np.stack([luma, (255 - luma) // 2 + noise, np.full_like(luma, (i * 3) % 256)], -1)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        for packet in codec.encode(frame):
            frames.append(bytes(packet))
            keys.append(bool(packet.is_keyframe))
    for packet in codec.encode(None):
        frames.append(bytes(packet))
        keys.append(bool(packet.is_keyframe))
    return _store(name, EncodedClip("video", frames, keys, 3000, fractions.Fraction(1, 90000)))


def opus_clip(seconds: int = 10, bitrate: int = 32_000) -> EncodedClip:
    # constrained VBR keeps the clip at its bitrate: plain VBR spends nearly
    # twice as much on a pure tone, which would make a "24 kbit/s" voice
    # stream fill a 60 kbit/s link on its own
    name = f"opus-cvbr-{seconds}-{bitrate}"
    cached = _cached(name)
    if cached is not None:
        return cached
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48000
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, 48000)
    codec.options = {"vbr": "constrained"}
    frames: list[bytes] = []
    for i in range(seconds * 50):
        t = (np.arange(960) + i * 960) / 48000
        tone = (np.sin(2 * math.pi * 440 * t) * 6000).astype(np.int16)
        pcm = np.repeat(tone, 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = i * 960
        frames.extend(bytes(p) for p in codec.encode(frame))
    return _store(
        name, EncodedClip("audio", frames, [True] * len(frames), 960, fractions.Fraction(1, 48000))
    )


class ReplayTrack(MediaStreamTrack):
    """Replays an EncodedClip in real time, looping, as av.Packets."""

    def __init__(self, clip: EncodedClip) -> None:
        super().__init__()
        self.kind = clip.kind
        self.clip = clip
        self._index = 0
        self._start: float | None = None
        self.sent_frames = 0

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        clip = self.clip
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + float(self._index * clip.frame_duration * clip.time_base)
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        data = clip.frames[self._index % len(clip.frames)]
        packet = av.Packet(data)
        packet.pts = self._index * clip.frame_duration
        packet.time_base = clip.time_base
        self._index += 1
        self.sent_frames += 1
        return packet
