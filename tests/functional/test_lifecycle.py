"""Room lifecycle, renegotiation at any time, and clean teardown."""

from __future__ import annotations

import asyncio
import gc
import os

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from sfu.consumer import Consumer
from sfu.media import Source
from sfu.participant import Role
from sfu.producer import Producer
from signaling.client import ClientError
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from tests.conftest import RunningServer


def live_objects(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


def open_sockets() -> int:
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


async def test_many_join_leave_cycles_leave_nothing_behind(server: RunningServer) -> None:
    room_id = "cycles"
    doctor = server.client(server.token(room_id, "doctor", Role.SPECIALIST))
    await doctor.connect()
    await doctor.join()
    await doctor.publish([(ToneTrack(), Source.MICROPHONE), (CameraTrack(), Source.CAMERA)])

    async def cycle(i: int) -> None:
        guest = server.client(server.token(room_id, f"guest{i}", Role.HEALTH_WORKER))
        await guest.connect()
        await guest.join()
        await guest.publish([(ToneTrack(), Source.MICROPHONE), (CameraTrack(), Source.CAMERA)])
        reader = TrackReader((await guest.wait_for_track(lambda t: t.kind == "video")).track)
        await reader.wait_frames(2)
        await doctor.wait_for_track(lambda t: t.participant_id == guest.participant_id)
        await reader.stop()
        await guest.leave()

    await cycle(0)  # warm up lazily created state
    await asyncio.sleep(0.5)
    tasks_before = len(asyncio.all_tasks())
    sockets_before = open_sockets()
    for i in range(1, 9):
        await cycle(i)
    await asyncio.sleep(1.0)

    room = server.room(room_id)
    assert [p.identity for p in room.participants.values()] == ["doctor"]
    doctor_side = next(iter(room.participants.values()))
    assert doctor_side.consumers == {}
    assert doctor_side.subscriber is not None and doctor_side.subscriber.consumers == {}
    # server-side objects: only the doctor's own publisher + subscriber connection remain
    # (the test's clients live in this process too: the doctor client holds 2 more)
    assert live_objects(Producer) == 2
    assert live_objects(Consumer) == 0
    assert live_objects(RTCPeerConnection) == 4
    assert live_objects(RTCDtlsTransport) == 4
    assert len(asyncio.all_tasks()) <= tasks_before + 2
    assert open_sockets() <= sockets_before + 2
    await doctor.leave()
    await asyncio.sleep(0.2)
    assert live_objects(Producer) == 0
    assert live_objects(RTCPeerConnection) == 0


async def test_publish_more_unpublish_and_subscribe_during_the_call(server: RunningServer) -> None:
    doctor = server.client(server.token("reneg", "doctor", Role.SPECIALIST))
    nurse = server.client(server.token("reneg", "nurse", Role.HEALTH_WORKER), auto_subscribe=False)
    try:
        await doctor.connect()
        await doctor.join()
        await nurse.connect()
        await nurse.join()
        first = await doctor.publish([(ToneTrack(), Source.MICROPHONE)])
        assert len(first) == 1
        # add a camera and a screen share later in the same call
        published = await doctor.publish(
            [
                (CameraTrack(320, 240), Source.CAMERA),
                (CameraTrack(640, 360, 5), Source.SCREEN_SHARE),
            ]
        )
        assert len(published) == 3
        announced = await nurse.wait_event(
            "track_published", where=lambda e: e["track"]["source"] == "screen_share"
        )
        screen_id = announced["track"]["id"]
        assert nurse.remote_tracks == {}  # not auto-subscribed
        await nurse.subscribe(screen_id)
        screen = await nurse.wait_for_track(lambda t: t.track_id == screen_id)
        reader = TrackReader(screen.track)
        stats = await reader.wait_frames(3)
        assert stats.sizes == {(640, 360)} and screen.source == "screen_share"
        await reader.stop()

        await nurse.unsubscribe(screen_id)
        room = server.room("reneg")
        nurse_side = next(p for p in room.participants.values() if p.identity == "nurse")
        assert nurse_side.consumers == {}

        camera_id = next(t for m, t in doctor.published.items() if m == "1")
        await nurse.subscribe(camera_id)
        await nurse.wait_for_track(lambda t: t.track_id == camera_id)
        await doctor.unpublish(camera_id)
        await nurse.wait_event("track_unpublished", where=lambda e: e["track_id"] == camera_id)
        assert nurse_side.consumers == {}
        assert len(list(room.producers())) == 2
        with pytest.raises(ClientError) as err:
            await nurse.subscribe(camera_id)
        assert err.value.code == "not_found"
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())


async def test_mute_state_is_shared(server: RunningServer) -> None:
    doctor = server.client(server.token("mute", "doctor", Role.SPECIALIST))
    nurse = server.client(server.token("mute", "nurse", Role.HEALTH_WORKER))
    try:
        await doctor.connect()
        await doctor.join()
        await nurse.connect()
        await nurse.join()
        published = await doctor.publish([(ToneTrack(), Source.MICROPHONE)])
        mic = next(iter(published.values()))
        await doctor.mute(mic, True)
        event = await nurse.wait_event("track_muted")
        assert event == {
            "type": "track_muted",
            "participant_id": doctor.participant_id,
            "track_id": mic,
            "muted": True,
        }
        await doctor.mute(mic, False)
        await nurse.wait_event("track_muted", where=lambda e: e["muted"] is False)
        with pytest.raises(ClientError) as err:
            await nurse.mute(mic, True)  # not nurse's track
        assert err.value.code == "not_found"
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())


async def test_room_closes_after_empty_timeout_and_capacity_is_enforced(
    server_factory: object,
) -> None:
    server: RunningServer = await server_factory(
        rooms={"max_participants": 2, "empty_timeout": 0.5}
    )  # type: ignore[operator]
    a = server.client(server.token("cap", "a", Role.SPECIALIST))
    b = server.client(server.token("cap", "b", Role.HEALTH_WORKER))
    c = server.client(server.token("cap", "c", Role.OBSERVER))
    for client in (a, b, c):
        await client.connect()
    await a.join()
    await b.join()
    with pytest.raises(ClientError) as err:
        await c.join()
    assert err.value.code == "room_full"
    dup = server.client(server.token("cap", "a", Role.SPECIALIST))
    await dup.connect()
    await b.leave()
    with pytest.raises(ClientError) as err:
        await dup.join()
    assert err.value.code == "duplicate_identity"
    await asyncio.gather(a.leave(), c.close(), dup.close())
    assert "dev/cap" in server.rooms.rooms
    await asyncio.sleep(0.9)
    assert "dev/cap" not in server.rooms.rooms
