"""Consent-gated recording through the server, with real aiortc participants."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import signal
from pathlib import Path

import av
import pytest

from benchmarks.server_process import ServerProcess
from recording.audit import verify_file
from recording.crypto_stream import open_recording
from sfu.media import Source
from sfu.participant import Role
from signaling.client import ClientError, ConsultClient
from signaling.config import Secret
from signaling.demo_media import CameraTrack, ToneTrack
from signaling.tokens import mint_token
from tests.conftest import Keys, RunningServer


async def join(server: RunningServer, room: str, identity: str, role: Role) -> ConsultClient:
    client = server.client(server.token(room, identity, role))
    await client.connect()
    await client.join()
    await client.publish(
        [(ToneTrack(), Source.MICROPHONE), (CameraTrack(320, 240, 15), Source.CAMERA)]
    )
    return client


def decode(path: Path, keys: Keys) -> tuple[list[float], float, float]:
    """Video frame times (s), the first audio frame's time and the audio seconds of one
    decrypted participant file (both on the file's one timeline)."""
    result = open_recording(path, keys.private, keys.audit_public)  # signed by the server
    assert result.problem is None and result.signed, result.problem
    data = b"".join(result.chunks)
    container = av.open(io.BytesIO(data))
    times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    container = av.open(io.BytesIO(data))
    frames = list(container.decode(audio=0))
    audio = sum(f.samples for f in frames) / 48000
    return times, float(frames[0].pts * frames[0].time_base), audio


async def test_consent_by_all_records_everyone_and_plays(
    rec_server: RunningServer, keys: Keys
) -> None:
    doctor = await join(rec_server, "r1", "doctor", Role.SPECIALIST)
    nurse = await join(rec_server, "r1", "nurse", Role.HEALTH_WORKER)
    try:
        await doctor.request({"type": "recording_start"})
        for c in (doctor, nurse):
            asked = await c.wait_event("consent_request")
            assert asked["state"] == "awaiting_consent"
        await doctor.request({"type": "consent", "given": True})
        await nurse.request({"type": "consent", "given": True})
        state = await nurse.wait_event("recording_state", where=lambda e: e["state"] == "recording")
        assert sorted(state["recorded"]) == sorted([doctor.participant_id, nurse.participant_id])
        await asyncio.sleep(3.5)
        await doctor.request({"type": "recording_stop"})
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())
    files = sorted(keys.directory.glob("*.rec"))
    assert len(files) == 2 and all(f.with_suffix(".done").exists() for f in files)
    for path in files:
        times, audio_start, audio = decode(path, keys)
        video_s = times[-1] - times[0]
        print(f"video {times[0]:.3f}-{times[-1]:.3f} s, audio {audio_start:.3f} s + {audio:.3f} s")
        assert 2.5 < video_s < 4.5 and 2.5 < audio < 4.5, (video_s, audio)
        # in sync: video and audio end together on the file's timeline (video starts at
        # the first keyframe: the audio before it is kept, so their lengths differ by
        # the publisher's keyframe latency, 0.4 s on a loaded CI machine)
        assert abs(times[-1] - (audio_start + audio)) < 0.3, (times[-1], audio_start, audio)
        assert times[0] - audio_start < 1.5, (times[0], audio_start)  # a keyframe came soon
    anchor = keys.directory / "audit.log.checkpoints"  # the default: next to the log
    report = verify_file(keys.directory / "audit.log", keys.audit_public, anchor)
    assert report.ok and report.anchored is not None and report.anchored.seq == report.entries
    entries = [json.loads(line) for line in (keys.directory / "audit.log").read_text().splitlines()]
    events = [e["event"] for e in entries]
    assert "consent_given" in events and events[-1] == "recording_stopped"
    # each file's digest is in the (anchored) log, before recording_stopped
    sealed = {
        e["file"]: (e["chunks"], e["digest"]) for e in entries if e["event"] == "recording_sealed"
    }
    for path in files:
        result = open_recording(path, keys.private, keys.audit_public)
        assert sealed[path.stem] == (len(result.chunks), result.digest)


async def test_no_consent_writes_nothing_but_audit(rec_server: RunningServer, keys: Keys) -> None:
    doctor = await join(rec_server, "r2", "doctor", Role.SPECIALIST)
    nurse = await join(rec_server, "r2", "nurse", Role.HEALTH_WORKER)
    try:
        with pytest.raises(ClientError) as err:
            await nurse.request({"type": "recording_start"})  # no record grant
        assert err.value.code == "forbidden"
        await doctor.request({"type": "recording_start"})
        await doctor.request({"type": "consent", "given": True})
        await asyncio.sleep(2.0)  # the nurse never consents
        await doctor.request({"type": "recording_stop"})
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())
    assert sorted(p.name for p in keys.directory.iterdir()) == [
        "audit.log",
        "audit.log.checkpoints",
    ]


async def test_withdrawal_stops_writing_and_late_joiner_pauses_all(
    rec_server: RunningServer, keys: Keys
) -> None:
    loop = asyncio.get_running_loop()
    doctor = await join(rec_server, "r3", "doctor", Role.SPECIALIST)
    nurse = await join(rec_server, "r3", "nurse", Role.HEALTH_WORKER)
    late: ConsultClient | None = None
    try:
        await doctor.request({"type": "recording_start"})
        await doctor.request({"type": "consent", "given": True})
        await nurse.request({"type": "consent", "given": True})
        await asyncio.sleep(2.0)
        withdrawn_at = loop.time()
        await nurse.request({"type": "consent", "given": False})  # acked only once applied
        acked_at = loop.time()
        await asyncio.sleep(2.0)
        await nurse.request({"type": "consent", "given": True})
        resumed_at = loop.time()
        await asyncio.sleep(1.5)
        late = await join(rec_server, "r3", "interp", Role.INTERPRETER)  # no consent yet
        await late.wait_event("consent_request")
        late_id = late.participant_id
        state = await doctor.wait_event(
            "recording_state", where=lambda e: e["state"] == "paused" and e["awaiting"] == [late_id]
        )
        assert state["recorded"] == []  # under "all", nobody is written while one is missing
        await asyncio.sleep(1.0)
        await doctor.request({"type": "recording_stop"})
    finally:
        clients = [c for c in (doctor, nurse, late) if c is not None]
        await asyncio.gather(*(c.leave() for c in clients))
    files = {p.name.split("-")[-1].removesuffix(".rec"): p for p in keys.directory.glob("*.rec")}
    assert late.participant_id not in files  # never written without consent
    nurse_times, _, _ = decode(files[nurse.participant_id], keys)
    # frames are stamped with their arrival time: the withdrawal shows as one hole, as
    # long as the time between the withdrawal's ack and the renewed consent, ~2 s in
    gaps = [(b - a, a - nurse_times[0]) for a, b in itertools.pairwise(nurse_times)]
    hole, at = max(gaps)
    assert hole >= (resumed_at - acked_at) - 0.5, (hole, resumed_at - acked_at)
    assert 1.0 < at < 3.0, at
    assert acked_at - withdrawn_at < 0.5
    assert nurse_times[-1] - nurse_times[0] > hole + 2.5  # and it resumed after re-consent


async def test_sigkill_mid_recording_is_marked_interrupted_and_decrypts(keys: Keys) -> None:
    """The server is killed mid-recording; after restart the recording is marked
    interrupted and everything up to the last flushed chunk decrypts and plays."""
    base = keys.directory.parent
    recording = {
        "enabled": True,
        "directory": str(keys.directory),
        "recipients": [{"kid": "h1", "public_key_file": str(base / "h.pub")}],
        "audit_log": str(keys.directory / "audit.log"),
        "audit_signing_key_file": str(base / "audit.key"),
    }
    server = ServerProcess(config={"recording": recording})
    await server.start()
    secret = Secret(server.secret_file.read_text().strip())
    doctor = ConsultClient(
        server.ws_url,
        mint_token(secret, room="kill", identity="doctor", role=Role.SPECIALIST),
        ice_addresses=["127.0.0.1"],
    )
    try:
        await doctor.connect()
        await doctor.join()
        await doctor.publish(
            [(ToneTrack(), Source.MICROPHONE), (CameraTrack(320, 240, 15), Source.CAMERA)]
        )
        await doctor.request({"type": "recording_start"})
        await doctor.request({"type": "consent", "given": True})
        await asyncio.sleep(3.5)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(5)
    finally:
        await doctor.close()
    (path,) = keys.directory.glob("*.rec")
    assert not path.with_suffix(".done").exists()

    restarted = ServerProcess(config={"recording": recording})
    await restarted.start()
    restarted.stop()
    server.stop()
    assert path.with_suffix(".interrupted").exists()
    assert '"recording_interrupted"' in (keys.directory / "audit.log").read_text()
    anchor = keys.directory / "audit.log.checkpoints"
    assert verify_file(keys.directory / "audit.log", keys.audit_public, anchor).ok
    result = open_recording(path, keys.private, keys.audit_public)
    assert not result.complete and "no final chunk" in (result.problem or "")
    assert result.signed  # every chunk flushed before the kill is signed
    data = b"".join(result.chunks)
    container = av.open(io.BytesIO(data))
    times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    # recorded ~3.5 s, flushed every second: at least ~2 s survive the kill
    assert times and times[-1] - times[0] > 1.8, times[-1:]
