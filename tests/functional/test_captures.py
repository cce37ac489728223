"""Clinical captures through the server (docs/capture.md), with real clients.

Protocol-level: grants, the lobby, bad input, resumption after a reload,
consent-gated encrypted storage and its audit. What a person sees (the photo's
full size, the widget's progress and viewer, a thin link) is in
tests/browser/test_captures.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

import pytest

from recording.audit import verify_file
from recording.captures import read_capture
from recording.crypto_stream import RecordingFormatError
from sfu.participant import Role
from signaling import capture_frames
from signaling.client import ClientError, ConsultClient
from signaling.client_captures import (
    begin_capture,
    fetch_capture,
    resume_capture,
    send_capture,
    send_chunks,
)
from tests.conftest import Keys, RunningServer

PHOTO = os.urandom(150_000)  # what a 1080p JPEG weighs; random: nothing compresses it


async def joined(server: RunningServer, room: str, identity: str, role: Role) -> ConsultClient:
    client = server.client(server.token(room, identity, role))
    await client.connect()
    await client.join()
    return client


def audit_events(keys: Keys) -> list[dict[str, object]]:
    log = keys.directory / "audit.log"
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_a_requested_photo_is_delivered_then_stored_once_consent_is_given(
    rec_server: RunningServer, keys: Keys
) -> None:
    doctor = await joined(rec_server, "c1", "doctor", Role.SPECIALIST)
    nurse = await joined(rec_server, "c1", "nurse", Role.HEALTH_WORKER)
    try:
        ask = await doctor.request({"type": "capture_request", "kind": "photo", "note": "rash"})
        requested = await nurse.wait_event("capture_requested")
        assert requested["request_id"] == ask["request_id"] and requested["name"]
        consent = await nurse.wait_event("capture_consent_request")
        assert set(consent["awaiting"]) == {doctor.participant_id, nurse.participant_id}

        upload = await send_capture(
            nurse,
            PHOTO,
            kind="photo",
            mime="image/jpeg",
            width=1920,
            height=1080,
            note="left forearm",
            request_id=ask["request_id"],
        )
        assert upload.bytes_sent == len(PHOTO)
        ready = await doctor.wait_event("capture_ready")
        assert ready["capture_id"] == upload.capture_id and ready["stored"] is False
        assert (ready["width"], ready["height"], ready["note"]) == (1920, 1080, "left forearm")
        assert await doctor.wait_event("capture_started")  # the doctor saw it coming
        assert await fetch_capture(doctor, upload.capture_id) == PHOTO
        await doctor.request({"type": "capture_viewed", "capture_id": upload.capture_id})
        assert not list((keys.directory / "captures").glob("*.rec"))  # no consent yet

        await doctor.request({"type": "capture_consent", "given": True})
        await nurse.request({"type": "capture_consent", "given": True})
        await nurse.wait_event("capture_stored", timeout=10)
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())

    [path] = (keys.directory / "captures").glob("*.rec")
    opened = read_capture(path, keys.private, keys.audit_public)
    assert opened.data == PHOTO
    described = opened.description
    assert described["sha256"] == hashlib.sha256(PHOTO).hexdigest()
    assert described["note"] == "left forearm" and described["room"] == "c1"
    assert described["requested_by"]["identity"] == "doctor"
    assert {p["identity"] for p in described["consent"]["given_by"]} == {"doctor", "nurse"}
    # the plain header says nothing of the note or the people's names
    raw = path.read_bytes()
    assert b"left forearm" not in raw and b"rash" not in raw
    assert (os.stat(path).st_mode & 0o777) == 0o600

    report = verify_file(keys.directory / "audit.log", keys.audit_public)
    assert report.ok
    events = [e["event"] for e in audit_events(keys)]
    for step in (
        "capture_requested",
        "capture_uploaded",
        "capture_viewed",
        "capture_consent_given",
        "capture_stored",
    ):
        assert step in events, (step, events)
    stored = next(e for e in audit_events(keys) if e["event"] == "capture_stored")
    assert stored["digest"] == opened.digest
    text = (keys.directory / "audit.log").read_text()
    assert "left forearm" not in text and "rash" not in text


async def test_a_tampered_capture_fails_verification(rec_server: RunningServer, keys: Keys) -> None:
    doctor = await joined(rec_server, "c2", "doctor", Role.SPECIALIST)
    nurse = await joined(rec_server, "c2", "nurse", Role.HEALTH_WORKER)
    try:
        await asyncio.gather(
            *(c.request({"type": "capture_request", "kind": "photo"}) for c in (doctor,))
        )
        for client in (doctor, nurse):
            await client.request({"type": "capture_consent", "given": True})
        await send_capture(nurse, PHOTO, kind="photo", mime="image/jpeg")
        await nurse.wait_event("capture_stored", timeout=10)
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())
    [path] = (keys.directory / "captures").glob("*.rec")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingFormatError, match="fails authentication"):
        read_capture(path, keys.private, keys.audit_public)


async def test_the_lobby_neither_sends_nor_sees_captures(server: RunningServer) -> None:
    nurse = await joined(server, "c3", "nurse", Role.HEALTH_WORKER)
    doctor = await joined(server, "c3", "doctor", Role.SPECIALIST)
    waiting = await joined(server, "c3", "pat", Role.PATIENT)
    try:
        assert waiting.state == "lobby"
        with pytest.raises(ClientError) as err:
            await begin_capture(waiting, PHOTO, kind="photo", mime="image/jpeg")
        assert err.value.code == "not_admitted"
        frame = capture_frames.encode(capture_frames.UPLOAD, "c0123", 0, b"x" * 10)
        await waiting.send_bytes(frame)
        refused = await waiting.wait_event("error", where=lambda e: "ref" not in e)
        assert refused["code"] == "not_admitted"
        upload = await send_capture(nurse, PHOTO[:5000], kind="photo", mime="image/jpeg")
        await doctor.wait_event("capture_ready")
        with pytest.raises(ClientError) as err:
            await waiting.request({"type": "capture_fetch", "capture_id": upload.capture_id})
        assert err.value.code == "not_admitted"
        seen = {e.get("type") for e in waiting.events}
        assert not any(str(t).startswith("capture_") for t in seen), seen
        assert not waiting.frames
    finally:
        await asyncio.gather(nurse.leave(), doctor.leave(), waiting.leave())


async def test_grants_decide_who_asks_and_who_sends(server: RunningServer) -> None:
    doctor = await joined(server, "c4", "doctor", Role.SPECIALIST)
    interpreter = await joined(server, "c4", "interp", Role.INTERPRETER)
    observer = await joined(server, "c4", "obs", Role.OBSERVER)
    try:
        with pytest.raises(ClientError) as err:
            await interpreter.request({"type": "capture_request", "kind": "photo"})
        assert err.value.code == "forbidden"
        with pytest.raises(ClientError) as err:
            await begin_capture(observer, PHOTO, kind="photo", mime="image/jpeg")
        assert err.value.code == "forbidden"
        await doctor.request({"type": "capture_request", "kind": "clip"})
        asked = await interpreter.wait_event("capture_requested")
        assert asked["kind"] == "clip" and asked["max_seconds"] == 10
    finally:
        await asyncio.gather(doctor.leave(), interpreter.leave(), observer.leave())


async def test_bad_captures_get_clear_errors_and_nothing_is_stored(
    rec_server: RunningServer, keys: Keys
) -> None:
    doctor = await joined(rec_server, "c5", "doctor", Role.SPECIALIST)
    nurse = await joined(rec_server, "c5", "nurse", Role.HEALTH_WORKER)

    async def error_after(frame: bytes) -> dict[str, object]:
        before = len(nurse.events)
        await nurse.send_bytes(frame)
        await nurse.wait_until(lambda: any(e.get("type") == "error" for e in nurse.events[before:]))
        return next(e for e in nurse.events[before:] if e.get("type") == "error")

    try:
        for client in (doctor, nurse):  # consent given: anything complete would be stored
            await doctor.request({"type": "capture_request", "kind": "photo"})
            await client.request({"type": "capture_consent", "given": True})
        with pytest.raises(ClientError) as err:
            await begin_capture(
                nurse, b"x" * (8 * 1024 * 1024 + 1), kind="photo", mime="image/jpeg"
            )
        assert err.value.code == "capture_too_large"
        with pytest.raises(ClientError) as err:
            await begin_capture(nurse, PHOTO, kind="photo", mime="text/html")
        assert err.value.code == "bad_message"

        upload = await begin_capture(nurse, PHOTO, kind="photo", mime="image/jpeg")
        cid = upload.capture_id
        assert (await error_after(b"\x01"))["code"] == "bad_message"  # truncated header
        assert (await error_after(b"\x07\x01c" + bytes(8)))["code"] == "bad_message"
        wrong = await error_after(capture_frames.encode(1, cid, 500, b"y" * 10))
        assert wrong["code"] == "capture_offset" and wrong["offset"] == 0
        big = capture_frames.encode(1, cid, 0, b"z" * (upload.chunk + 1))
        assert (await error_after(big))["code"] in ("capture_too_large", "message_too_large")

        other = await begin_capture(nurse, b"a" * 1000, kind="photo", mime="image/jpeg")
        corrupt = await error_after(capture_frames.encode(1, other.capture_id, 0, b"b" * 1000))
        assert corrupt["code"] == "capture_corrupt"
        with pytest.raises(ClientError) as err:  # dropped: it cannot be resumed
            await resume_capture(nurse, other)
        assert err.value.code == "not_found"
        with pytest.raises(ClientError) as err:
            await doctor.request({"type": "capture_fetch", "capture_id": cid})
        assert err.value.code == "not_found"  # incomplete: nothing to fetch
        assert (await nurse.request({"type": "ping"}))["type"] == "pong"
        assert (await doctor.request({"type": "ping"}))["type"] == "pong"
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())
    assert not list((keys.directory / "captures").glob("*"))


async def test_a_reloaded_page_resumes_without_sending_a_byte_twice(server: RunningServer) -> None:
    doctor = await joined(server, "c6", "doctor", Role.SPECIALIST)
    nurse = await joined(server, "c6", "nurse", Role.HEALTH_WORKER)
    try:
        upload = await begin_capture(nurse, PHOTO, kind="photo", mime="image/jpeg")
        await send_chunks(nurse, upload, chunk=8192, stop_after=60_000)
        cut = upload.offset
        assert 60_000 <= cut < len(PHOTO)
        await nurse.close()  # the page goes away mid-transfer

        # another identity cannot take it over
        intruder = await joined(server, "c6", "nurse2", Role.HEALTH_WORKER)
        with pytest.raises(ClientError) as err:
            await resume_capture(intruder, upload)
        assert err.value.code == "not_found"
        await intruder.leave()

        reloaded = await joined(server, "c6", "nurse", Role.HEALTH_WORKER)
        await resume_capture(reloaded, upload)
        assert upload.offset == cut
        await send_chunks(reloaded, upload, chunk=8192)
        assert upload.bytes_sent == len(PHOTO)  # nothing sent twice
        ready = await doctor.wait_event("capture_ready")
        assert await fetch_capture(doctor, ready["capture_id"]) == PHOTO
        done = await reloaded.request({"type": "capture_resume", "capture_id": upload.capture_id})
        assert done["complete"] is True and done["offset"] == len(PHOTO)
        await reloaded.leave()
    finally:
        await doctor.leave()
