"""One bug in one participant's path ends nobody else's call (sfu/faults.py).

Faults are injected into one part of a real call (aiortc peers, real
server): one subscriber's Consumer, a recorder tap, one subscriber's
downlink loop, and a subscriber that never answers its offer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from sfu import subscriber_peer
from sfu.consumer import Consumer
from sfu.downlink import DownlinkController
from sfu.faults import FAULTS
from sfu.media import MediaKind, Source
from sfu.participant import Role
from sfu.peer import PeerState
from signaling.client import ConsultClient
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from tests.conftest import RunningServer


@pytest.fixture(autouse=True)
def first_fault_of_its_kind() -> None:
    """Each test's fault is the first of its kind in the process: logged with its traceback
    (the counts are per process; a unit test run earlier in the same process had made the
    injected consumer fault the second, logged as a count without one)."""
    FAULTS.counts.clear()


@asynccontextmanager
async def three_way(
    server: RunningServer, room: str
) -> AsyncIterator[tuple[ConsultClient, dict[str, ConsultClient], dict[str, TrackReader]]]:
    """A doctor publishing; two nurses each decoding its video."""
    doctor = server.client(server.token(room, "doctor", Role.SPECIALIST))
    nurses = {
        name: server.client(server.token(room, name, Role.HEALTH_WORKER)) for name in ("a", "b")
    }
    readers: dict[str, TrackReader] = {}
    try:
        for client in (doctor, *nurses.values()):
            await client.connect()
            await client.join()
        await doctor.publish(
            [(ToneTrack(), Source.MICROPHONE), (CameraTrack(320, 240, 15), Source.CAMERA)]
        )
        for name, nurse in nurses.items():
            video = await nurse.wait_for_track(lambda t: t.kind == "video")
            readers[name] = TrackReader(video.track)
            await readers[name].wait_frames(5, timeout=20)
        yield doctor, nurses, readers
    finally:
        for reader in readers.values():
            await reader.stop()
        await asyncio.gather(*(c.leave() for c in (doctor, *nurses.values())))


def video_consumer(server: RunningServer, room: str, nurse: ConsultClient) -> Consumer:
    participant = server.room(room).participants[nurse.participant_id or ""]
    return next(c for c in participant.consumers.values() if c.kind is MediaKind.VIDEO)


async def keeps_decoding(reader: TrackReader, seconds: float = 2.0) -> int:
    before = reader.stats.frames
    await asyncio.sleep(seconds)
    return reader.stats.frames - before


async def isolated_faults(server: RunningServer, part: str) -> float:
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.server.make_url("/metrics")) as resp,
    ):
        text = await resp.text()
    line = next(
        x
        for x in text.splitlines()
        if x.startswith(f'digiclinic_isolated_faults_total{{part="{part}"}}')
    )
    return float(line.split()[-1])


async def test_a_consumer_that_raises_ends_only_its_own_delivery(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    room = "fault-consumer"
    async with three_way(server, room) as (doctor, nurses, readers):
        broken = video_consumer(server, room, nurses["a"])
        before = await isolated_faults(server, "consumer")
        forward = Consumer.forward

        def faulty(self: Consumer, packet: Any, send_time: bytes) -> None:
            if self is broken:
                raise RuntimeError("injected bug in one subscriber's forwarding")
            forward(self, packet, send_time)

        monkeypatch.setattr(Consumer, "forward", faulty)
        failed = await nurses["a"].wait_event("track_failed", timeout=5)
        assert failed["reason"] == "internal_error" and failed["track_id"] == broken.producer.id
        # the other nurse, the doctor's own connection and the broken nurse's audio go on
        assert await keeps_decoding(readers["b"]) >= 15
        publisher = server.room(room).participants[doctor.participant_id or ""].publisher
        assert publisher is not None and publisher.state is PeerState.CONNECTED
        assert await isolated_faults(server, "consumer") == before + 1
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and errors[0].exc_info, errors  # one line, with the traceback
        # once the bug is gone, the nurse subscribes again and decodes
        monkeypatch.setattr(Consumer, "forward", forward)
        old_mid = nurses["a"].remote_tracks[broken.producer.id].mid
        await nurses["a"].request({"type": "subscribe", "track_id": broken.producer.id})
        again = await nurses["a"].wait_for_track(
            lambda t: t.track_id == broken.producer.id and t.mid != old_mid, timeout=10
        )
        reader = TrackReader(again.track)
        try:
            await reader.wait_frames(5, timeout=15)
        finally:
            await reader.stop()


async def test_a_recorder_tap_that_raises_is_removed_and_the_call_goes_on(
    server: RunningServer,
) -> None:
    room = "fault-tap"
    async with three_way(server, room) as (_doctor, nurses, readers):
        producer = video_consumer(server, room, nurses["a"]).producer
        before = await isolated_faults(server, "tap")

        def tap(packet: Any, arrival_ms: int) -> None:
            raise ValueError("injected bug in a recorder")

        producer.taps.append(tap)
        await asyncio.sleep(0.5)
        assert tap not in producer.taps
        assert await isolated_faults(server, "tap") == before + 1
        for reader in readers.values():
            assert await keeps_decoding(reader) >= 15


async def test_a_downlink_loop_that_dies_fails_only_that_connection_visibly(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = "fault-loop"
    async with three_way(server, room) as (_doctor, nurses, readers):
        broken = server.room(room).participants[nurses["a"].participant_id or ""].subscriber
        assert broken is not None
        tick = DownlinkController.tick

        def faulty(self: DownlinkController, now: float) -> None:
            if self is broken.downlink:
                raise RuntimeError("injected bug in one subscriber's adaptation")
            tick(self, now)

        monkeypatch.setattr(DownlinkController, "tick", faulty)
        failed = await nurses["a"].wait_event(
            "connection_failed", timeout=5, where=lambda e: e["pc"] == "subscriber"
        )
        assert failed["pc"] == "subscriber"  # told, so it reconnects: never a silent stop
        assert await keeps_decoding(readers["b"]) >= 15
        monkeypatch.setattr(DownlinkController, "tick", tick)


async def test_a_subscriber_that_never_answers_its_offer_is_told_its_connection_failed(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscriber_peer, "ANSWER_TIMEOUT", 1.0)
    room = "fault-answer"
    doctor = server.client(server.token(room, "doctor", Role.SPECIALIST))
    await doctor.connect()
    await doctor.join()
    await doctor.publish([(ToneTrack(), Source.MICROPHONE)])
    url = server.ws_url
    token = server.token(room, "mute-nurse", Role.HEALTH_WORKER)
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await ws.send_json({"type": "join", "token": token, "id": 1})
            seen: list[str] = []
            async with asyncio.timeout(10):
                while True:
                    event = await ws.receive_json()
                    seen.append(event["type"])
                    if event["type"] == "connection_failed":
                        break
            assert "subscriber_offer" in seen and event["pc"] == "subscriber", seen
            # the doctor is unaffected
            assert (await doctor.request({"type": "ping"}))["type"] == "pong"
    finally:
        await doctor.leave()
