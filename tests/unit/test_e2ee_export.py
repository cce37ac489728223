"""The export of an end-to-end encrypted consult's recording (recording/e2ee_export.py).

The WebM is made as the recorder makes it (recording/webm_writer.py, from RTP
packets) out of PyAV-encoded VP8 and Opus frames that e2ee/frames.py encrypted
as a page does; then the at-rest layer as the server writes it, and the
hospital's ``digiclinic-recording export`` with and without the consult keys.
"""

from __future__ import annotations

import fractions
import io
import os
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee.frames import ConsultKey, FrameKind, encode_key, encrypt_frame
from recording.cli import main as recording_cli
from recording.crypto_stream import EncryptedWriter, RecipientKey, generate_keypair
from recording.e2ee_export import decrypt_webm, load_keys
from recording.webm_writer import ParticipantWebm
from sfu.rtp import RtpPacket

WIDTH, HEIGHT = 320, 180
VIDEO_FRAMES, AUDIO_FRAMES = 30, 50  # 1 s at 30 frames/s; 1 s of 20 ms Opus frames
RAW1, RAW2 = os.urandom(32), os.urandom(32)
KEY1, KEY2 = ConsultKey.from_raw(1, RAW1), ConsultKey.from_raw(2, RAW2)


def vp8_frames() -> list[bytes]:
    """30 VP8 frames, a key frame every 15 (as a page sends after a keyframe request)."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.gop_size = 15
    encoder.options = {"deadline": "realtime", "cpu-used": "8"}
    frames: list[bytes] = []
    for i in range(VIDEO_FRAMES):
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        image[40:100, i * 8 : i * 8 + 60] = 255  # a moving square
        picture = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        picture.pts = i
        frames += [bytes(p) for p in encoder.encode(picture)]
    frames += [bytes(p) for p in encoder.encode(None)]
    assert len(frames) == VIDEO_FRAMES
    return frames


def opus_frames() -> list[bytes]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    t = np.arange(48000) / 48000
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    frames: list[bytes] = []
    for i in range(AUDIO_FRAMES):
        chunk = av.AudioFrame.from_ndarray(tone[None, i * 960 : (i + 1) * 960], "s16", "mono")
        chunk.sample_rate, chunk.pts = 48000, i * 960
        frames += [bytes(p) for p in encoder.encode(chunk)]
    frames += [bytes(p) for p in encoder.encode(None)]
    return frames


@pytest.fixture(scope="module")
def clear() -> tuple[list[bytes], list[bytes]]:
    return vp8_frames(), opus_frames()


def recorded(video: list[bytes], audio: list[bytes]) -> bytes:
    """The WebM the recorder writes from these frames, one RTP packet each."""
    webm = ParticipantWebm(video=True, audio=True)
    for i, frame in enumerate(video):  # S bit, partition 0: a whole frame in one packet
        webm.add_video(RtpPacket(True, 96, i, i * 3000, 1, {}, b"\x10" + frame), i * 33)
    for i, frame in enumerate(audio):
        webm.add_audio(RtpPacket(False, 111, i, i * 960, 2, {}, frame), i * 20)
    return webm.close()


def encrypted(frames: list[bytes], kind: FrameKind, rotate_at: int | None = None) -> list[bytes]:
    """As a page sends them: under key 1, then (a rotation) under key 2 from ``rotate_at``."""
    return [
        encrypt_frame(KEY2 if rotate_at is not None and i >= rotate_at else KEY1, kind, f)
        for i, f in enumerate(frames)
    ]


def packets(data: bytes, kind: str) -> list[bytes]:
    with av.open(io.BytesIO(data)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return [bytes(p) for p in container.demux(stream) if p.size]


def decoded_pictures(data: bytes) -> list[av.VideoFrame]:
    """Every picture the vp8 decoder gives (a frame it rejects gives none)."""
    pictures = []
    with av.open(io.BytesIO(data)) as container:
        for packet in container.demux(video=0):
            try:
                pictures += packet.decode()
            except av.FFmpegError:
                continue
    return pictures


def test_the_decrypted_webm_decodes_and_the_encrypted_one_does_not(
    clear: tuple[list[bytes], list[bytes]],
) -> None:
    video, audio = clear
    webm = recorded(encrypted(video, FrameKind.VP8), encrypted(audio, FrameKind.OPUS))
    assert decoded_pictures(webm) == []  # encrypted frames: the vp8 decoder rejects each

    out, report = decrypt_webm(webm, {1: KEY1})
    assert report.failed_frames == 0 and report.problem is None
    assert report.decrypted == {"video": VIDEO_FRAMES, "audio": len(audio)}
    # the frames are those the page encoded, byte for byte, in order
    assert packets(out, "video") == video and packets(out, "audio") == audio
    pictures = decoded_pictures(out)
    print(f"decoded {len(pictures)} pictures, {len(out)} bytes")
    assert len(pictures) == VIDEO_FRAMES
    assert {(p.width, p.height) for p in pictures} == {(WIDTH, HEIGHT)}
    with av.open(io.BytesIO(out)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert samples >= 0.9 * 48000
    # timestamps and key-frame flags are the recording's
    with av.open(io.BytesIO(webm)) as before, av.open(io.BytesIO(out)) as after:
        keep = [(p.pts, p.is_keyframe) for p in before.demux(video=0) if p.size]
        assert [(p.pts, p.is_keyframe) for p in after.demux(video=0) if p.size] == keep
    assert [k for _, k in keep].count(True) == 2


def test_rotated_keys_both_decrypt(clear: tuple[list[bytes], list[bytes]]) -> None:
    video, audio = clear
    webm = recorded(
        encrypted(video, FrameKind.VP8, rotate_at=15), encrypted(audio, FrameKind.OPUS, 25)
    )
    out, report = decrypt_webm(webm, {1: KEY1, 2: KEY2})
    assert report.failed_frames == 0
    assert len(decoded_pictures(out)) == VIDEO_FRAMES
    # with only the first key, the frames under the second are counted, and named by key id
    out, report = decrypt_webm(webm, {1: KEY1})
    assert report.decrypted == {"video": 15, "audio": 25}
    assert report.failed == {2: VIDEO_FRAMES - 15 + len(audio) - 25}
    failed = VIDEO_FRAMES - 15 + len(audio) - 25
    assert (
        f"{failed} frames did not decrypt (key id 2: {failed}, no key given for it)"
        == report.failures()
    )
    assert len(decoded_pictures(out)) == 15


def test_a_failed_video_frame_drops_the_deltas_up_to_the_next_key_frame(
    clear: tuple[list[bytes], list[bytes]],
) -> None:
    video, audio = clear
    frames = encrypted(video, FrameKind.VP8)
    frames[3] = encrypt_frame(KEY2, FrameKind.VP8, video[3])  # one frame under another key
    out, report = decrypt_webm(recorded(frames, encrypted(audio, FrameKind.OPUS)), {1: KEY1})
    assert report.failed == {2: 1} and report.skipped == 15 - 4
    assert "11 video frames after them left out" in report.failures()
    assert len(decoded_pictures(out)) == VIDEO_FRAMES - 12


def test_consult_keys_from_options_and_a_file(tmp_path: Path) -> None:
    listing = tmp_path / "keys.txt"
    listing.write_text(f"# the consult's keys\n{encode_key(2, RAW2)}\n\n")
    keys = load_keys([encode_key(1, RAW1), encode_key(2, RAW2)], [listing])
    assert sorted(keys) == [1, 2]
    with pytest.raises(ValueError, match=r"keys.txt line 1: a consult key is") as bad:
        listing.write_text("1.c2hvcnQ\n")
        load_keys([], [listing])
    assert "c2hvcnQ" not in str(bad.value)  # a key (even a bad one) is never shown
    with pytest.raises(ValueError, match="key id 1 is given twice with different keys"):
        load_keys([encode_key(1, RAW1), encode_key(1, RAW2)], [])


# -- the hospital's command ---------------------------------------------------------------


@pytest.fixture
def hospital(tmp_path: Path) -> SimpleNamespace:
    private_pem, public_pem = generate_keypair()
    signing = Ed25519PrivateKey.generate()
    (tmp_path / "hospital.key").write_bytes(private_pem)
    (tmp_path / "server.pub").write_bytes(
        signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return SimpleNamespace(public=RecipientKey.from_pem("h1", public_pem), signing=signing)


def write_rec(directory: Path, hospital: SimpleNamespace, webm: bytes, e2ee: bool) -> Path:
    """The at-rest file the server writes around ``webm`` (two chunks)."""
    metadata = {"room": "dev/r", "participant": "p1", "role": "specialist"}
    if e2ee:
        metadata |= {"e2ee_room": "required", "e2ee": "v1"}
    writer = EncryptedWriter(
        directory, "rec-p1", [hospital.public], metadata, signing_key=hospital.signing
    )
    half = len(webm) // 2
    writer.write_chunk(webm[:half])
    writer.close(webm[half:])
    return directory / "rec-p1.rec"


def export(tmp_path: Path, rec: Path, *extra: str) -> int:
    base = ["export", str(rec), "--key", str(tmp_path / "hospital.key")]
    base += ["--signer", str(tmp_path / "server.pub"), "--output", str(tmp_path / "out.webm")]
    return recording_cli([*base, *extra])


def test_export_with_the_consult_keys(
    clear: tuple[list[bytes], list[bytes]],
    hospital: SimpleNamespace,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    video, audio = clear
    webm = recorded(
        encrypted(video, FrameKind.VP8, rotate_at=15), encrypted(audio, FrameKind.OPUS, 25)
    )
    rec = write_rec(tmp_path, hospital, webm, e2ee=True)
    listing = tmp_path / "keys.txt"
    listing.write_text(encode_key(2, RAW2) + "\n")
    assert (
        export(tmp_path, rec, "--consult-key", encode_key(1, RAW1), "--consult-keys", str(listing))
        == 0
    )
    output = capsys.readouterr().out
    print(output)
    assert f"{VIDEO_FRAMES} video and {len(audio)} audio frames decrypted" in output
    assert encode_key(1, RAW1).split(".")[1] not in output and "PROBLEM" not in output
    out = (tmp_path / "out.webm").read_bytes()
    assert packets(out, "video") == video
    assert (tmp_path / "out.webm").stat().st_mode & 0o777 == 0o600


def test_export_without_the_consult_key_says_so_and_writes_nothing(
    clear: tuple[list[bytes], list[bytes]],
    hospital: SimpleNamespace,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    video, audio = clear
    webm = recorded(encrypted(video, FrameKind.VP8), encrypted(audio, FrameKind.OPUS))
    rec = write_rec(tmp_path, hospital, webm, e2ee=True)
    assert export(tmp_path, rec) == 2
    error = capsys.readouterr().err
    assert "the consult was end-to-end encrypted" in error and "--consult-key" in error
    assert not (tmp_path / "out.webm").exists()
    # a wrong key: not one frame decrypts, it says which key id, and nothing is written
    assert export(tmp_path, rec, "--consult-key", encode_key(1, os.urandom(32))) == 1
    output = capsys.readouterr().out
    assert (
        "no frame decrypted" in output
        and f"key id 1: {VIDEO_FRAMES + len(audio)}, the key given for it is wrong" in output
    )
    assert not (tmp_path / "out.webm").exists()
    # part of the frames: written, reported, exit 1
    frames = encrypted(video, FrameKind.VP8, rotate_at=15)
    (tmp_path / "other").mkdir()
    rec = write_rec(tmp_path / "other", hospital, recorded(frames, audio=[]), e2ee=True)
    assert export(tmp_path, rec, "--consult-key", encode_key(1, RAW1)) == 1
    output = capsys.readouterr().out
    assert "PROBLEM: 15 frames did not decrypt (key id 2: 15, no key given for it)" in output
    assert len(decoded_pictures((tmp_path / "out.webm").read_bytes())) == 15


def test_a_clear_recording_exports_as_before(
    clear: tuple[list[bytes], list[bytes]],
    hospital: SimpleNamespace,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    webm = recorded(*clear)
    rec = write_rec(tmp_path, hospital, webm, e2ee=False)
    assert export(tmp_path, rec, "--consult-key", encode_key(1, RAW1)) == 0
    assert "not end-to-end encrypted" in capsys.readouterr().out
    assert (tmp_path / "out.webm").read_bytes() == webm
