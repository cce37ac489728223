"""Forwarded packets of real participants recorded, encrypted, and decoded back."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import av
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from recording.crypto_stream import RecipientKey, generate_keypair, open_recording
from recording.participant_recording import ParticipantRecording
from sfu.media import Source
from sfu.participant import Role
from signaling.demo_media import CameraTrack, ToneTrack
from tests.conftest import RunningServer


async def test_participant_media_is_recorded_encrypted_and_plays_in_sync(
    server: RunningServer, tmp_path: Path
) -> None:
    private_pem, public_pem = generate_keypair()
    private = serialization.load_pem_private_key(private_pem, None)
    assert isinstance(private, X25519PrivateKey)
    signing_key = Ed25519PrivateKey.generate()  # the server's
    doctor = server.client(server.token("rec", "doctor", Role.SPECIALIST))
    try:
        await doctor.connect()
        await doctor.join()
        await doctor.publish(
            [(ToneTrack(), Source.MICROPHONE), (CameraTrack(320, 240, 15), Source.CAMERA)]
        )
        room = server.room("rec")
        participant = next(iter(room.participants.values()))
        await asyncio.sleep(1.0)  # media flowing before recording starts
        recording = ParticipantRecording(
            tmp_path,
            "rec-1",
            participant.id,
            [RecipientKey.from_pem("h1", public_pem)],
            {"room": "rec"},
            signing_key=signing_key,
        )
        assert participant.publisher is not None
        for producer in participant.publisher.producers.values():
            recording.attach(producer)
        for producer in participant.publisher.producers.values():
            producer.request_keyframe()  # the recording starts at a keyframe
        recording.set_writing(True)
        await asyncio.sleep(4.0)
        await asyncio.get_running_loop().run_in_executor(None, recording.close)
    finally:
        await doctor.leave()

    assert recording.path.with_suffix(".done").exists()
    raw = recording.path.read_bytes()
    assert b"webm" not in raw and b"\x1a\x45\xdf\xa3" not in raw  # only ciphertext on disk
    result = open_recording(recording.path, private, signing_key.public_key())
    assert result.complete and result.problem is None and result.signed
    assert recording.sealed == (len(result.chunks), result.digest)
    assert len(result.chunks) >= 4  # written in ~1 s chunks while recording
    data = b"".join(result.chunks)
    container = av.open(io.BytesIO(data))
    video = list(container.decode(video=0))
    container = av.open(io.BytesIO(data))
    audio = list(container.decode(audio=0))
    assert {(f.width, f.height) for f in video} == {(320, 240)}
    video_s = float((video[-1].pts - video[0].pts) * video[0].time_base)
    audio_s = sum(f.samples for f in audio) / 48000
    assert 3.0 < video_s < 4.5 and 3.0 < audio_s < 4.5
    assert len(video) >= 3.0 * 15 * 0.8
    # audio and video in sync: they start and end within 100 ms of each other
    v0, a0 = float(video[0].pts * video[0].time_base), float(audio[0].pts * audio[0].time_base)
    assert abs(v0 - a0) < 0.1, (v0, a0)
    assert abs((v0 + video_s) - (a0 + audio_s)) < 0.15
