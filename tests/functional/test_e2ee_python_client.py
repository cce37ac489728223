"""The Python client in end-to-end encrypted rooms (signaling/client_e2ee.py, docs/e2ee.md).

Real server, real aiortc peers: the clients encrypt every VP8 and Opus frame
before packetization and decrypt before decoding (sfu/aiortc_hooks/frames.py).
What the server forwards is captured before decryption and shown to be
undecodable; decrypted with the key, the same frames decode at the size sent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import av
import numpy as np
import pytest

from e2ee.frames import ConsultKey, FrameKind, decrypt_frame, encode_key, parse_key
from sfu.media import Source
from sfu.participant import Role
from signaling import client_e2ee
from signaling.client import ConsultClient, RawFrame
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from tests.conftest import RunningServer
from tests.helpers.polling import until

KEY = encode_key(1, os.urandom(32))
DOCTOR_SIZE = (320, 240)
NURSE_SIZE = (256, 192)


@asynccontextmanager
async def consult(
    server: RunningServer,
    room: str,
    doctor_key: str,
    nurse_key: str,
    nurse_raw: Callable[[RawFrame], None] | None = None,
) -> AsyncIterator[tuple[ConsultClient, ConsultClient]]:
    """A specialist and a health worker in a required room, each publishing camera and tone."""
    doctor = server.client(
        server.token(room, "dr", Role.SPECIALIST, e2ee="required"), e2ee_key=doctor_key
    )
    nurse = server.client(
        server.token(room, "hw", Role.HEALTH_WORKER, e2ee="required"),
        e2ee_key=nurse_key,
        e2ee_raw_frames=nurse_raw,
    )
    try:
        for client, size in ((doctor, DOCTOR_SIZE), (nurse, NURSE_SIZE)):
            await client.connect()
            reply = await client.join()
            assert reply["e2ee"] == "required"
            await client.publish(
                [(ToneTrack(), Source.MICROPHONE), (CameraTrack(*size, 15), Source.CAMERA)]
            )
        yield doctor, nurse
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())


async def readers_of(
    client: ConsultClient, other: ConsultClient
) -> tuple[TrackReader, TrackReader]:
    video = await client.wait_for_track(
        lambda t: t.participant_id == other.participant_id and t.kind == "video"
    )
    audio = await client.wait_for_track(
        lambda t: t.participant_id == other.participant_id and t.kind == "audio"
    )
    return TrackReader(video.track), TrackReader(audio.track)


async def test_two_python_clients_decode_each_other_in_a_required_room(
    server: RunningServer,
) -> None:
    async with consult(server, "e2ee-py-pair", KEY, KEY) as (doctor, nurse):
        readers: list[TrackReader] = []
        try:
            for client, other, size in ((doctor, nurse, NURSE_SIZE), (nurse, doctor, DOCTOR_SIZE)):
                video, audio = await readers_of(client, other)
                readers += [video, audio]
                seen = await video.wait_frames(30, timeout=20)
                heard = await audio.wait_frames(50, timeout=20)
                assert seen.sizes == {size}, seen.sizes
                assert heard.samples >= 50 * 960 and heard.peak > 1000, heard
                print(f"{client.participant_id}: {seen.frames} frames at {seen.sizes}, {heard}")
            for client in (doctor, nurse):
                counts = client.e2ee.counts
                print(client.participant_id, counts)
                assert counts.encrypted > 100 and counts.decrypted > 100, counts
                assert counts.dropped == 0 and counts.passed == 0, counts
                assert set(client.e2ee.receive_states.values()) == {"ok"}
                assert client.e2ee.clear_senders == set()  # the other said it encrypts
            # the SFU still reads what it needs from the clear header: the key frames
            room = server.room("e2ee-py-pair")
            video_producers = [p for p in room.producers() if p.kind.value == "video"]
            assert len(video_producers) == 2
            assert all(p.counters.keyframes >= 1 for p in video_producers)
        finally:
            for reader in readers:
                await reader.stop()


async def test_a_client_with_a_wrong_key_decodes_no_video(server: RunningServer) -> None:
    wrong = encode_key(1, os.urandom(32))  # the same key id, other bytes
    async with consult(server, "e2ee-py-wrong", KEY, wrong) as (doctor, nurse):
        video, audio = await readers_of(nurse, doctor)
        try:
            await until(lambda: nurse.e2ee.counts.dropped > 60, 20, "dropped frames")
            await asyncio.sleep(2)
            counts = nurse.e2ee.counts
            print(
                "wrong key:",
                counts,
                "video frames",
                video.stats.frames,
                "audio",
                audio.stats.frames,
            )
            assert video.stats.frames == 0 and audio.stats.frames == 0
            assert counts.decrypted == 0 and counts.dropped > 60, counts
            assert set(nurse.e2ee.receive_states.values()) == {"wrong-key"}
            # the doctor cannot decrypt the nurse's frames either (and decodes none)
            assert doctor.e2ee.counts.decrypted == 0 and doctor.e2ee.counts.dropped > 0
        finally:
            await video.stop()
            await audio.stop()


def decode_vp8(frames: list[bytes]) -> tuple[list[av.VideoFrame], int]:
    """The pictures PyAV's VP8 decoder gives for ``frames``, and how many raised."""
    decoder = av.CodecContext.create("vp8", "r")
    pictures: list[av.VideoFrame] = []
    errors = 0
    for index, frame in enumerate(frames):
        packet = av.Packet(frame)
        packet.pts = index  # the picture says which frame it came from
        try:
            pictures += decoder.decode(packet)
        except av.FFmpegError:
            errors += 1
    return pictures, errors


async def test_what_the_server_forwards_does_not_decode_without_the_key(
    server: RunningServer,
) -> None:
    raw: list[RawFrame] = []
    async with consult(server, "e2ee-py-raw", KEY, KEY, raw.append) as (doctor, nurse):
        video, audio = await readers_of(nurse, doctor)
        try:
            await video.wait_frames(60, timeout=20)
        finally:
            await video.stop()
            await audio.stop()
    forwarded = [
        f.data for f in raw if f.codec == "VP8" and f.participant_id == doctor.participant_id
    ]
    assert len(forwarded) >= 60
    key_id, key_raw = parse_key(KEY)
    keys = {key_id: ConsultKey.from_raw(key_id, key_raw)}
    clear = [decrypt_frame(keys, FrameKind.VP8, f) for f in forwarded]
    # with the key: every frame decodes, at the size sent
    pictures, errors = decode_vp8(clear)
    assert errors == 0 and len(pictures) == len(clear)
    assert {(p.width, p.height) for p in pictures} == {DOCTOR_SIZE}
    # without it: FFmpeg's decoder refuses (almost) all; what it gives is not the picture.
    # (The key frame's 10 clear bytes carry its size, and ~1 in 20 random bitstreams
    # parses: such a picture is noise, not the sent test pattern.)
    garbage, refused = decode_vp8(forwarded)
    print(
        f"{len(forwarded)} forwarded VP8 frames: {refused} refused, {len(garbage)} pictures "
        f"without the key; {len(pictures)} pictures at {DOCTOR_SIZE} with it"
    )
    assert refused >= 0.9 * len(forwarded), (refused, len(forwarded))
    sent = {p.pts: p.to_ndarray(format="gray") for p in pictures}
    assert len(sent) == len(clear)
    for picture in garbage:
        truth = sent[picture.pts]
        if (picture.width, picture.height) == DOCTOR_SIZE:
            diff = np.abs(picture.to_ndarray(format="gray").astype(int) - truth.astype(int)).mean()
            assert diff > 20, diff
    # the clear header is all that is readable: a key frame's size, nothing else
    first = forwarded[0]
    assert not first[0] & 0x01 and first[3:6] == b"\x9d\x01\x2a"
    assert first[-1] == key_id
    # Opus frames were forwarded encrypted too: the TOC in clear, 29 bytes more
    opus = [f.data for f in raw if f.codec == "opus"]
    assert opus and all(len(f) > 29 for f in opus)
    assert decrypt_frame(keys, FrameKind.OPUS, opus[0])


async def test_rotation_keeps_frames_flowing(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_e2ee, "KEY_OVERLAP", 2.0)  # the old key is forgotten sooner
    new_key = encode_key(2, os.urandom(32))
    async with consult(server, "e2ee-py-rotate", KEY, KEY) as (doctor, nurse):
        readers: list[TrackReader] = []
        try:
            for client, other in ((doctor, nurse), (nurse, doctor)):
                video, _ = await readers_of(client, other)
                readers.append(video)
                await video.wait_frames(20, timeout=20)
            before = [r.stats.frames for r in readers]
            # the two rotate 0.4 s apart, as two pages told by the portal would
            doctor.set_e2ee_key(new_key)
            assert doctor.e2ee.send_key_id == 1 and set(doctor.e2ee.keys) == {1, 2}
            await asyncio.sleep(0.4)
            nurse.set_e2ee_key(new_key)
            gaps = await watch_gaps(readers, seconds=4.5)
            for client in (doctor, nurse):
                counts = client.e2ee.counts
                print(client.participant_id, counts, "keys", sorted(client.e2ee.keys))
                assert client.e2ee.send_key_id == 2
                assert set(client.e2ee.keys) == {2}  # key 1 forgotten after the overlap
                assert counts.by_key.get(1, 0) > 0 and counts.by_key.get(2, 0) > 0, counts
                assert counts.dropped == 0, counts
            after = [r.stats.frames - b for r, b in zip(readers, before, strict=True)]
            print("frames decoded during the rotation:", after, "longest gaps (s):", gaps)
            assert all(n >= 4.5 * 15 * 0.7 for n in after), after
            assert all(gap < 1.0 for gap in gaps), gaps  # 15 fps: a frame every 67 ms
        finally:
            for reader in readers:
                await reader.stop()


async def watch_gaps(readers: list[TrackReader], seconds: float) -> list[float]:
    """Watch the readers for ``seconds``: the longest time each went without a frame."""
    loop = asyncio.get_running_loop()
    last = [r.stats.frames for r in readers]
    since = [loop.time()] * len(readers)
    gaps = [0.0] * len(readers)
    end = loop.time() + seconds
    while loop.time() < end:
        await asyncio.sleep(0.02)
        now = loop.time()
        for i, reader in enumerate(readers):
            if reader.stats.frames != last[i]:
                last[i], since[i] = reader.stats.frames, now
            gaps[i] = max(gaps[i], now - since[i])
    return gaps


def test_set_e2ee_key_needs_a_client_made_with_a_key() -> None:
    client = ConsultClient("ws://127.0.0.1:9/ws", "token")
    with pytest.raises(ValueError, match="without a consult key"):
        client.set_e2ee_key(KEY)


async def test_key_ring_rotation_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    """As web-client/client/e2ee.js: decrypt at once, send later, forget after the overlap."""
    monkeypatch.setattr(client_e2ee, "ROTATE_SEND_DELAY", 0.05)
    monkeypatch.setattr(client_e2ee, "KEY_OVERLAP", 0.1)
    keys = [encode_key(i, os.urandom(32)) for i in (1, 2, 3)]
    sender, receiver = client_e2ee.FrameCrypto(keys[0]), client_e2ee.FrameCrypto(keys[0])
    for crypto in (sender, receiver):
        crypto.joined({"e2ee": "required", "participants": [{"id": "p1", "e2ee": True}]})
    frame = bytes([0x31, 0x05, 0x00]) + os.urandom(100)

    def through() -> bytes | None:
        sealed = sender.encrypt("VP8", frame)
        assert sealed is not None
        return receiver.decrypt("p1", "VP8", sealed)

    assert through() == frame
    receiver.set_key(keys[1])  # the receiver first: it decrypts key 1 and key 2
    sender.set_key(keys[1])
    assert sender.send_key_id == 1 and through() == frame  # still key 1 for now
    await asyncio.sleep(0.08)
    assert sender.send_key_id == 2 and through() == frame
    assert set(sender.keys) == {1, 2}  # the overlap
    await asyncio.sleep(0.15)
    assert set(sender.keys) == {2} and set(receiver.keys) == {2}
    # rotated twice quickly: the second key wins, the first is never sent with
    sender.set_key(keys[0])
    sender.set_key(keys[2])
    await asyncio.sleep(0.08)
    assert sender.send_key_id == 3
    sealed = sender.encrypt("opus", b"\x78" + os.urandom(40))
    assert sealed is not None and sealed[-1] == 3
    assert receiver.decrypt("p1", "opus", sealed) is None  # the receiver never got key 3
    assert receiver.receive_states[("p1", "opus")] == "no-key"
    assert receiver.counts.by_key == {1: 2, 2: 1} and receiver.counts.dropped == 1
    sender.close()
    receiver.close()


def test_frames_in_clear_where_the_room_or_the_sender_says_so() -> None:
    crypto = client_e2ee.FrameCrypto(KEY)
    frame = bytes([0x31, 0x05, 0x00]) + os.urandom(50)
    crypto.joined({"e2ee": "off"})  # a room whose mode is off: nothing to do
    assert crypto.encrypt("VP8", frame) == frame and crypto.decrypt("p1", "VP8", frame) == frame
    crypto.joined({"e2ee": "optional", "participants": [{"id": "p1", "e2ee": False}]})
    assert crypto.decrypt("p1", "VP8", frame) == frame  # p1 sends in clear
    assert crypto.decrypt("p2", "VP8", frame) is None  # p2 (not in clear) fails to decrypt
    crypto.participant({"id": "p1", "e2ee": True})
    assert crypto.decrypt("p1", "VP8", frame) is None
    assert crypto.encrypt("H264", frame) is None  # never sent in clear
    assert crypto.counts.passed == 1 and crypto.counts.dropped == 3
    sealed = crypto.encrypt("VP8", frame)
    assert sealed is not None and crypto.decrypt("p1", "VP8", sealed) == frame
