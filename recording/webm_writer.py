"""Forwarded RTP to WebM without transcoding: depacketize VP8/Opus, remux with PyAV.

One ``ParticipantWebm`` per recorded participant holds its audio and video
in one streaming ("live") WebM whose bytes are drained every second into the
encryption layer. Timestamps are milliseconds on one clock per participant
(packet arrival), so audio and video stay in sync without SR mapping.
"""

from __future__ import annotations

import fractions

import av

from sfu.rtp import RtpPacket, seq_delta, vp8_is_keyframe_start

MS = fractions.Fraction(1, 1000)
FIRST_KEYFRAME_WAIT_MS = 10_000
"""How long audio is held for the first video keyframe before the WebM is opened without
video (a camera that sends nothing). A simulcast top layer the recording has just turned
on can take seconds on a loaded server; opened without it, the file would have no video
at all. Nothing is lost meanwhile: the audio held is written once the file opens."""


def vp8_descriptor_length(payload: bytes) -> int:
    """Length of the RFC 7741 payload descriptor at the start of a VP8 RTP payload."""
    if not payload:
        return 0
    pos = 1
    if payload[0] & 0x80:
        ext = payload[1]
        pos = 2
        if ext & 0x80:
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:
            pos += 1
        if ext & 0x30:
            pos += 1
    return pos


def vp8_dimensions(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header (RFC 6386 9.1)."""
    if len(frame) < 10 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return width, height


class Vp8Assembler:
    """Rebuilds VP8 frames from RTP packets; after a gap, waits for the next keyframe."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._timestamp: int | None = None
        self._next_seq: int | None = None
        self._broken = True  # nothing usable until a keyframe starts
        self.dropped_frames = 0

    @property
    def broken(self) -> bool:
        """Waiting for a keyframe: none yet, or a packet was lost since the last one."""
        return self._broken

    def push(self, packet: RtpPacket) -> tuple[bytes, bool] | None:
        """Returns (frame, keyframe) when a frame completes."""
        gap = self._next_seq is not None and seq_delta(packet.seq, self._next_seq) != 0
        self._next_seq = (packet.seq + 1) & 0xFFFF
        if gap:
            self._broken = True
            self._parts = []
        keyframe_start = vp8_is_keyframe_start(packet.payload)
        starts = bool(packet.payload) and bool(packet.payload[0] & 0x10)
        if starts:
            if self._parts:
                self.dropped_frames += 1  # previous frame never saw its marker
            self._parts = []
            self._timestamp = packet.timestamp
            if keyframe_start:
                self._broken = False
        if self._broken or packet.timestamp != self._timestamp:
            return None
        self._parts.append(packet.payload[vp8_descriptor_length(packet.payload) :])
        if not packet.marker:
            return None
        frame = b"".join(self._parts)
        self._parts = []
        return frame, bool(frame) and not frame[0] & 0x01


class _StreamOut:
    """A write-only, non-seekable sink: the muxer must stream (no seeking back)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None


class ParticipantWebm:
    """A streaming WebM of one participant's audio and video."""

    def __init__(self, video: bool, audio: bool) -> None:
        self._out = _StreamOut()
        self._want_video, self._want_audio = video, audio
        self._container: av.container.OutputContainer | None = None
        self._video_stream: av.video.stream.VideoStream | None = None
        self._audio_stream: av.audio.stream.AudioStream | None = None
        self._pending_audio: list[tuple[bytes, int]] = []
        self._last_pts: dict[str, int] = {}
        self.video_frames = 0
        self.audio_frames = 0
        self._vp8 = Vp8Assembler()

    def _open(self, size: tuple[int, int] | None) -> None:
        # live: no seeking back; 1 s clusters: at most ~1 s is held in the muxer
        options = {"live": "1", "cluster_time_limit": "1000", "cluster_size_limit": "2000000"}
        container = av.open(self._out, mode="w", format="webm", options=options)
        if self._want_video and size is not None:
            self._video_stream = container.add_stream("libvpx", rate=30)
            self._video_stream.width, self._video_stream.height = size
            self._video_stream.time_base = MS
        if self._want_audio:
            self._audio_stream = container.add_stream("libopus", rate=48000)
            self._audio_stream.time_base = MS
        self._container = container

    def _mux(self, stream: av.stream.Stream, data: bytes, at_ms: int, key: bool, kind: str) -> None:
        assert self._container is not None
        at_ms = max(at_ms, self._last_pts.get(kind, -1) + 1)  # strictly increasing per stream
        self._last_pts[kind] = at_ms
        packet = av.Packet(data)
        packet.stream = stream
        packet.pts = packet.dts = at_ms
        packet.time_base = MS
        packet.is_keyframe = key
        self._container.mux(packet)

    @property
    def awaiting_keyframe(self) -> bool:
        """Video would be written once a keyframe comes (before the first, or after a loss)."""
        video_possible = self._container is None or self._video_stream is not None
        return self._want_video and video_possible and self._vp8.broken

    def add_video(self, packet: RtpPacket, at_ms: int) -> None:
        frame = self._vp8.push(packet)
        if frame is None:
            return
        data, key = frame
        if self._container is None:
            if not key:
                return
            self._open(vp8_dimensions(data))
            for audio, audio_ms in self._pending_audio:
                self._write_audio(audio, audio_ms)
            self._pending_audio = []
        if self._video_stream is not None:
            self._mux(self._video_stream, data, at_ms, key, "video")
            self.video_frames += 1

    def add_audio(self, packet: RtpPacket, at_ms: int) -> None:
        # of RED audio only the primary Opus frame is kept (sfu/red.py)
        payload = packet.payload if packet.red_primary is None else packet.red_primary
        if not payload:
            return
        if self._container is None:
            if self._want_video and at_ms < FIRST_KEYFRAME_WAIT_MS:
                self._pending_audio.append((payload, at_ms))  # until the first keyframe
                return
            self._open(None)  # no keyframe for that long: record what we have
            for audio, audio_ms in self._pending_audio:
                self._write_audio(audio, audio_ms)
            self._pending_audio = []
        self._write_audio(payload, at_ms)

    def _write_audio(self, data: bytes, at_ms: int) -> None:
        if self._audio_stream is not None:
            self._mux(self._audio_stream, data, at_ms, True, "audio")
            self.audio_frames += 1

    def drain(self) -> bytes:
        """The WebM bytes produced since the last drain."""
        data = b"".join(self._out.parts)
        self._out.parts.clear()
        return data

    def close(self) -> bytes:
        if self._container is not None:
            self._container.close()
            self._container = None
        return self.drain()
