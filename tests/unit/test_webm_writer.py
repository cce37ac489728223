"""Forwarded RTP becomes a playable WebM without transcoding."""

from __future__ import annotations

import io

import av

from benchmarks.loadgen.rtp_source import packetize
from benchmarks.synthetic_media import opus_clip, vp8_clip
from recording.webm_writer import ParticipantWebm, vp8_dimensions
from sfu.rtp import RtpPacket


def rtp_stream(kind: str, frames: int, drop: set[int] | None = None) -> list[tuple[RtpPacket, int]]:
    clip = vp8_clip() if kind == "video" else opus_clip()
    packets = []
    seq = 100
    step_ms = 33 if kind == "video" else 20
    for i, frame in enumerate(packetize(clip)[:frames]):
        for j, payload in enumerate(frame.payloads):
            last = j == len(frame.payloads) - 1
            packet = RtpPacket(
                last, 96, seq & 0xFFFF, i * (3000 if kind == "video" else 960), 1234, {}, payload
            )
            if not drop or seq not in drop:
                packets.append((packet, i * step_ms))
            seq += 1
    return packets


def decode(data: bytes) -> tuple[int, set[tuple[int, int]], int, float]:
    container = av.open(io.BytesIO(data))
    video = list(container.decode(video=0)) if container.streams.video else []
    container = av.open(io.BytesIO(data))
    audio = list(container.decode(audio=0)) if container.streams.audio else []
    duration = max(float(f.pts * f.time_base) for f in video)
    return len(video), {(f.width, f.height) for f in video}, len(audio), duration


def test_vp8_and_opus_rtp_remux_into_a_playable_webm() -> None:
    webm = ParticipantWebm(video=True, audio=True)
    chunks = []
    video, audio = rtp_stream("video", 90), rtp_stream("audio", 150)
    events = sorted(
        [(ms, "v", p) for p, ms in video] + [(ms, "a", p) for p, ms in audio],
        key=lambda e: (e[0], e[1]),
    )
    for n, (ms, kind, packet) in enumerate(events):
        if kind == "v":
            webm.add_video(packet, ms)
        else:
            webm.add_audio(packet, ms)
        if n % 200 == 0:
            chunks.append(webm.drain())  # streamed out as it goes
    chunks.append(webm.close())
    # streamed in ~1 s clusters: most bytes leave before the end, not only at close()
    total = sum(len(c) for c in chunks)
    assert sum(len(c) for c in chunks[:-1]) > 0.5 * total
    frames, sizes, audio_frames, duration = decode(b"".join(chunks))
    assert frames == 90 and sizes == {(640, 360)}
    assert audio_frames == 150
    assert abs(duration - 89 * 0.033) < 0.05


def test_a_lost_packet_drops_frames_until_the_next_keyframe() -> None:
    webm = ParticipantWebm(video=True, audio=False)
    packets = rtp_stream("video", 90, drop={110})  # a packet of an early frame
    for packet, ms in packets:
        webm.add_video(packet, ms)
    data = webm.close()
    frames, _, _, _ = decode(data) if data else (0, set(), 0, 0.0)
    # the clip has a keyframe every 60 frames: frames between the loss and it are skipped
    assert 25 <= frames < 90
    assert webm.video_frames == frames


def test_vp8_keyframe_dimensions() -> None:
    clip = vp8_clip()
    assert vp8_dimensions(clip.frames[0]) == (640, 360)
    assert vp8_dimensions(clip.frames[1]) is None
