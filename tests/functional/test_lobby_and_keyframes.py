"""Lobby admission and prompt keyframes for late joiners."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from unittest.mock import ANY

import pytest

from recording.audit import generate_signing_key
from recording.crypto_stream import generate_keypair
from sfu.media import Source
from sfu.participant import Role
from signaling.client import ClientError, ConsultClient
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from tests.conftest import RunningServer


async def test_patient_gets_no_media_before_admission_then_media_after(
    server: RunningServer,
) -> None:
    doctor = server.client(server.token("lobby-1", "doctor", Role.SPECIALIST))
    patient = server.client(server.token("lobby-1", "patient", Role.PATIENT))
    try:
        await doctor.connect()
        await doctor.join()
        await doctor.publish([(ToneTrack(), Source.MICROPHONE), (CameraTrack(), Source.CAMERA)])
        await patient.connect()
        joined = await patient.join()
        assert joined["state"] == "lobby"
        assert joined["participants"] == [] and joined["ice_servers"] == []

        # in the lobby: cannot publish, is offered nothing, sees nobody
        with pytest.raises(ClientError) as err:
            await patient.publish([(ToneTrack(), Source.MICROPHONE)])
        assert err.value.code == "not_admitted"
        await asyncio.sleep(1.0)
        types = {e["type"] for e in patient.events}
        assert "subscriber_offer" not in types and "track_published" not in types
        assert patient.subscriber_pc is None
        room = server.room("lobby-1")
        lobby_member = next(p for p in room.participants.values() if p.identity == "patient")
        assert lobby_member.consumers == {}

        # the clinician sees who waits and admits; media then flows
        lobby = await doctor.wait_event("lobby", where=lambda e: bool(e["waiting"]))
        assert lobby["waiting"][0]["role"] == "patient"
        await doctor.admit(lobby["waiting"][0]["id"])
        await patient.wait_admitted()
        video = await patient.wait_for_track(lambda t: t.kind == "video")
        reader = TrackReader(video.track)
        stats = await reader.wait_frames(5)
        assert stats.sizes == {(320, 240)}
        await reader.stop()
        await doctor.wait_event("participant_joined")
    finally:
        await asyncio.gather(doctor.leave(), patient.leave())


async def test_denied_patient_is_told_and_removed(server: RunningServer) -> None:
    doctor = server.client(server.token("lobby-2", "doctor", Role.HEALTH_WORKER))
    patient = server.client(server.token("lobby-2", "patient", Role.PATIENT))
    try:
        await doctor.connect()
        await doctor.join()
        await patient.connect()
        await patient.join()
        lobby = await doctor.wait_event("lobby", where=lambda e: bool(e["waiting"]))
        await doctor.deny(lobby["waiting"][0]["id"])
        await patient.wait_event("denied")
        with pytest.raises(ClientError):
            await patient.wait_admitted(timeout=3)
        room = server.room("lobby-2")
        assert [p.identity for p in room.participants.values()] == ["doctor"]
        # the lobby list the clinician sees is empty again
        await doctor.wait_event("lobby", where=lambda e: e["waiting"] == [])
    finally:
        await asyncio.gather(doctor.leave(), patient.close())


async def test_admit_needs_the_admit_grant(server: RunningServer) -> None:
    interpreter = server.client(server.token("lobby-3", "interp", Role.INTERPRETER))
    patient = server.client(server.token("lobby-3", "patient", Role.PATIENT))
    try:
        await interpreter.connect()
        await interpreter.join()
        await patient.connect()
        await patient.join()
        room = server.room("lobby-3")
        waiting = next(p for p in room.participants.values() if p.identity == "patient")
        with pytest.raises(ClientError) as err:
            await interpreter.admit(waiting.id)
        assert err.value.code == "forbidden"
        assert not any(e["type"] == "lobby" for e in interpreter.events)
    finally:
        await asyncio.gather(interpreter.leave(), patient.leave())


LOBBY_PROBES: list[dict[str, object]] = [
    {"type": "consent", "given": True},
    {"type": "consent", "given": False},
    {"type": "recording_start"},
    {"type": "recording_stop"},
    {"type": "chat", "text": "hello"},
    {"type": "audio_only", "enabled": True},
    {"type": "on_hold", "enabled": True},
    {"type": "mute", "track_id": "x:1", "muted": True},
    {"type": "subscribe", "track_id": "x:1"},
    {"type": "unsubscribe", "track_id": "x:1"},
    {"type": "pause_video", "track_id": "x:1", "paused": True},
    {"type": "track_settings", "track_id": "x:1", "pinned": True},
    {"type": "admit", "participant_id": "x"},
    {"type": "deny", "participant_id": "x"},
    {"type": "subscriber_answer", "sdp": "v=0"},
    {"type": "ice_candidate", "pc": "publisher", "candidate": None},
]


async def _lobby_answers(patient: ConsultClient) -> list[str]:
    codes = []
    for probe in LOBBY_PROBES:
        with pytest.raises(ClientError) as err:
            await patient.request(dict(probe))
        codes.append(err.value.code)
    return codes


async def test_a_patient_in_the_lobby_gets_not_admitted_for_everything_and_learns_nothing(
    server_factory: Callable[..., object], tmp_path: Path
) -> None:
    """Whether a recording runs must not show through the lobby, nor be written in its name."""
    _, public_pem = generate_keypair()
    audit_key, _ = generate_signing_key()
    (tmp_path / "h.pub").write_bytes(public_pem)
    (tmp_path / "audit.key").write_bytes(audit_key)
    audit_log = tmp_path / "audit.log"
    server: RunningServer = await server_factory(  # type: ignore[operator]
        recording={
            "enabled": True,
            "directory": str(tmp_path / "recordings"),
            "recipients": [{"kid": "h1", "public_key_file": str(tmp_path / "h.pub")}],
            "audit_log": str(audit_log),
            "audit_signing_key_file": str(tmp_path / "audit.key"),
        }
    )
    doctor = server.client(server.token("lobby-4", "doctor", Role.SPECIALIST))
    patient = server.client(server.token("lobby-4", "patient", Role.PATIENT))
    try:
        await doctor.connect()
        await doctor.join()
        await patient.connect()
        assert (await patient.join())["state"] == "lobby"
        without_recording = await _lobby_answers(patient)
        await doctor.request({"type": "recording_start"})
        with_recording = await _lobby_answers(patient)
        assert without_recording == with_recording == ["not_admitted"] * len(LOBBY_PROBES)
        assert not any(e["type"] in ("consent_request", "recording_state") for e in patient.events)
        # nothing was written in the patient's name; the doctor's session went on
        assert patient.participant_id not in audit_log.read_text()
        assert await doctor.request({"type": "ping"}) == {"type": "pong", "ref": ANY}
        # once admitted, the same consent is taken
        await doctor.admit(patient.participant_id or "")
        await patient.wait_admitted()
        await patient.request({"type": "consent", "given": True})
        assert patient.participant_id in audit_log.read_text()
    finally:
        await asyncio.gather(doctor.leave(), patient.leave())


async def test_late_joiner_decodes_a_keyframe_within_one_second(server: RunningServer) -> None:
    doctor = server.client(server.token("late-1", "doctor", Role.SPECIALIST))
    early = server.client(server.token("late-1", "early", Role.HEALTH_WORKER))
    late = server.client(server.token("late-1", "late", Role.OBSERVER))
    try:
        await doctor.connect()
        await doctor.join()
        await doctor.publish([(CameraTrack(320, 240, 15), Source.CAMERA)])
        await early.connect()
        await early.join()
        first = TrackReader((await early.wait_for_track(lambda t: t.kind == "video")).track)
        await first.wait_frames(30)  # the call is well under way: no keyframe pending
        producer = next(server.room("late-1").producers())
        requests_before = producer.counters.keyframe_requests

        await late.connect()
        started = time.monotonic()
        await late.join()
        track = await late.wait_for_track(lambda t: t.kind == "video")
        reader = TrackReader(track.track)
        await reader.wait_frames(1, timeout=5)
        assert reader.stats.first_at is not None
        elapsed = reader.stats.first_at - started
        assert elapsed < 1.0, f"first decoded frame after {elapsed:.3f} s"
        assert reader.stats.sizes == {(320, 240)}
        assert producer.counters.keyframe_requests > requests_before
        await asyncio.gather(first.stop(), reader.stop())
    finally:
        await asyncio.gather(doctor.leave(), early.leave(), late.leave())
