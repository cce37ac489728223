"""Chat is relayed (never stored); a subscriber can pause a video; demo tokens in dev mode."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from sfu.media import Source
from sfu.participant import Role
from signaling.client import ClientError
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from tests.conftest import RunningServer


async def test_chat_is_relayed_to_everyone_and_never_logged(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    doctor = server.client(server.token("chat", "doctor", Role.SPECIALIST, name="Dr A"))
    nurse = server.client(server.token("chat", "nurse", Role.HEALTH_WORKER))
    patient = server.client(server.token("chat", "patient", Role.PATIENT))
    try:
        for c in (doctor, nurse, patient):
            await c.connect()
            await c.join()
        with pytest.raises(ClientError) as err:  # in the lobby: no chat
            await patient.request({"type": "chat", "text": "hello?"})
        assert err.value.code == "not_admitted"
        secret_text = "X-ray shows fracture of the left radius"
        await doctor.request({"type": "chat", "text": secret_text})
        for c in (doctor, nurse):
            event = await c.wait_event("chat")
            assert event["text"] == secret_text and event["name"] == "Dr A"
            assert event["from"] == doctor.participant_id and event["role"] == "specialist"
        assert not any(e.get("type") == "chat" for e in patient.events)
        assert secret_text not in caplog.text
        with pytest.raises(ClientError) as err:
            await doctor.request({"type": "chat", "text": "x" * 2001})
        assert err.value.code == "bad_message"
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave(), patient.leave())


async def test_subscriber_pauses_and_resumes_one_video(server: RunningServer) -> None:
    doctor = server.client(server.token("pause", "doctor", Role.SPECIALIST))
    nurse = server.client(server.token("pause", "nurse", Role.HEALTH_WORKER))
    try:
        await doctor.connect()
        await doctor.join()
        published = await doctor.publish(
            [(ToneTrack(), Source.MICROPHONE), (CameraTrack(), Source.CAMERA)]
        )
        await nurse.connect()
        await nurse.join()
        video = await nurse.wait_for_track(lambda t: t.kind == "video")
        audio = await nurse.wait_for_track(lambda t: t.kind == "audio")
        vreader, areader = TrackReader(video.track), TrackReader(audio.track)
        await vreader.wait_frames(5)
        await nurse.request({"type": "pause_video", "track_id": video.track_id, "paused": True})
        event = await nurse.wait_event("track_paused")
        assert event == {
            "type": "track_paused",
            "track_id": video.track_id,
            "paused": True,
            "reason": "subscriber",
        }
        room = server.room("pause")
        nurse_side = next(p for p in room.participants.values() if p.identity == "nurse")
        consumer = nurse_side.consumers[video.track_id]
        await asyncio.sleep(0.5)
        sent = consumer.counters.packets
        audio_before = areader.stats.frames
        await asyncio.sleep(1.5)
        assert consumer.counters.packets == sent  # no video forwarded while paused
        assert areader.stats.frames > audio_before + 30  # audio continues
        # the publisher muting and unmuting does not undo the subscriber's pause
        camera = next(t for t in published.values() if t != audio.track_id)
        await doctor.mute(camera, True)
        await doctor.mute(camera, False)
        await asyncio.sleep(0.5)
        assert consumer.counters.packets == sent
        await nurse.request({"type": "pause_video", "track_id": video.track_id, "paused": False})
        frames = vreader.stats.frames
        await vreader.wait_frames(frames + 5, timeout=5)
        with pytest.raises(ClientError) as err:
            await nurse.request({"type": "pause_video", "track_id": audio.track_id})
        assert err.value.code == "not_found"
        await vreader.stop()
        await areader.stop()
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())


async def test_demo_tokens_only_in_development_mode(
    server: RunningServer, server_factory: object
) -> None:
    async with aiohttp.ClientSession() as http:
        url = server.server.make_url("/demo/token")
        async with http.get(url, params={"room": "demo", "identity": "p1", "role": "patient"}) as r:
            token = (await r.json())["token"]
        async with http.get(url, params={"identity": "p1", "role": "wizard"}) as r:
            assert r.status == 400
        async with http.get(server.server.make_url("/"), allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == "/client/demo/index.html"
    client = server.client(token)
    await client.connect()
    joined = await client.join()
    assert joined["state"] == "lobby" and joined["room"] == "demo"
    await client.leave()
    production: RunningServer = await server_factory(  # type: ignore[operator]
        auth={"issuers": [{"id": "portal", "algorithm": "HS256", "secret": "x" * 32}]}
    )
    async with (
        aiohttp.ClientSession() as http,
        http.get(production.server.make_url("/demo/token")) as r,
    ):
        assert r.status == 404


@pytest.mark.parametrize("flag", ["audio_only", "on_hold"])
async def test_a_said_so_state_is_told_to_the_others_and_in_the_roster(
    server: RunningServer, flag: str
) -> None:
    """The other side labels the tile "Audio only" or "on hold", not a camera that seems broken."""
    room = f"said-{flag}".replace("_", "-")
    doctor = server.client(server.token(room, "doctor", Role.SPECIALIST))
    nurse = server.client(server.token(room, "nurse", Role.HEALTH_WORKER))
    try:
        await doctor.connect()
        await doctor.join()
        await nurse.connect()
        await nurse.join()
        await nurse.request({"type": flag, "enabled": True})
        event = await doctor.wait_event(f"participant_{flag}")
        assert event == {
            "type": f"participant_{flag}",
            "participant_id": nurse.participant_id,
            "enabled": True,
        }
        assert not any(e.get("type") == f"participant_{flag}" for e in nurse.events)
        late = server.client(server.token(room, "late", Role.SPECIALIST))
        await late.connect()
        joined = await late.join()
        info = next(p for p in joined["participants"] if p["id"] == nurse.participant_id)
        assert info[flag] is True
        other = "on_hold" if flag == "audio_only" else "audio_only"
        assert info[other] is False
        await late.leave()
        with pytest.raises(ClientError) as err:
            await nurse.request({"type": flag, "enabled": "yes"})
        assert err.value.code == "bad_message"
        setter = nurse.set_audio_only if flag == "audio_only" else nurse.set_on_hold
        await setter(False)
        event = await doctor.wait_event(
            f"participant_{flag}", where=lambda e: e["enabled"] is False
        )
        assert event["participant_id"] == nurse.participant_id
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())


async def test_a_clinician_ends_the_consult_for_everyone(server: RunningServer) -> None:
    """`end_consult` needs the admit grant; everyone, the lobby included, gets room_closed."""
    doctor = server.client(server.token("end-consult", "doctor", Role.SPECIALIST))
    patient = server.client(server.token("end-consult", "patient", Role.PATIENT))
    waiting = server.client(server.token("end-consult", "second", Role.PATIENT))
    try:
        await doctor.connect()
        await doctor.join()
        await patient.connect()
        lobby = asyncio.create_task(patient.join())
        await doctor.wait_event("lobby", where=lambda e: len(e["waiting"]) == 1)
        await doctor.admit(doctor.events[-1]["waiting"][0]["id"])
        await lobby
        await waiting.connect()
        second = asyncio.create_task(waiting.join())
        await doctor.wait_event("lobby", where=lambda e: len(e["waiting"]) == 1)
        with pytest.raises(ClientError) as err:
            await patient.request({"type": "end_consult"})
        assert err.value.code == "forbidden"
        assert server.room("end-consult").participants  # nothing happened
        await doctor.end_consult()
        await asyncio.wait([second], timeout=5)
        for client in (doctor, patient, waiting):
            event = await client.wait_event("room_closed")
            assert event["reason"] == "ended"
    finally:
        await asyncio.gather(
            doctor.leave(), patient.leave(), waiting.leave(), return_exceptions=True
        )
