"""Loss on one subscriber's downlink is repaired by NACK + RTX from the SFU."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from sfu.consumer import Consumer
from sfu.media import Source
from sfu.participant import Role
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from tests.conftest import RunningServer
from tests.helpers.udp_relay import RelayCounters, UdpImpairmentRelay

WINDOW = 6.0
FPS = 20


@dataclass
class Outcome:
    frames: dict[str, int]
    sizes: set[tuple[int, int]]
    audio_frames: int
    retransmissions: int
    relay: RelayCounters
    paused: list[dict[str, object]]  # track_paused events the lossy subscriber got


async def run_lossy_consult(server: RunningServer, loss: float) -> Outcome:
    relay = UdpImpairmentRelay(down_loss=loss)
    await relay.start()
    room = "loss-1"
    publisher = server.client(server.token(room, "doctor", Role.SPECIALIST))
    lossy = server.client(
        server.token(room, "clinic", Role.HEALTH_WORKER),
        subscriber_offer_filter=relay.rewrite_server_sdp,
        subscriber_answer_filter=relay.rewrite_client_sdp,
    )
    clean = server.client(server.token(room, "observer", Role.OBSERVER))
    clients = [publisher, lossy, clean]
    try:
        for c in clients:
            await c.connect()
            await c.join()
        await publisher.publish(
            [(ToneTrack(), Source.MICROPHONE), (CameraTrack(320, 240, FPS), Source.CAMERA)]
        )
        readers = {}
        for name, c in (("lossy", lossy), ("clean", clean)):
            video = await c.wait_for_track(lambda t: t.kind == "video")
            audio = await c.wait_for_track(lambda t: t.kind == "audio")
            readers[name] = (TrackReader(video.track), TrackReader(audio.track))
        await readers["clean"][0].wait_frames(10, timeout=20)
        start = {n: r[0].stats.frames for n, r in readers.items()}
        start_audio = readers["lossy"][1].stats.frames
        await asyncio.sleep(WINDOW)
        frames = {n: r[0].stats.frames - start[n] for n, r in readers.items()}
        consumer = next(
            c
            for p in server.room(room).participants.values()
            if p.identity == "clinic"
            for c in p.consumers.values()
            if c.kind.value == "video"
        )
        outcome = Outcome(
            frames=frames,
            sizes=set(readers["lossy"][0].stats.sizes),
            audio_frames=readers["lossy"][1].stats.frames - start_audio,
            retransmissions=consumer.counters.retransmissions,
            relay=relay.counters,
            paused=[e for e in lossy.events if e.get("type") == "track_paused"],
        )
        for v, a in readers.values():
            await v.stop()
            await a.stop()
        return outcome
    finally:
        await asyncio.gather(*(c.leave() for c in clients))
        relay.close()


async def test_five_percent_loss_is_repaired_by_nack_and_rtx(server: RunningServer) -> None:
    outcome = await run_lossy_consult(server, loss=0.05)
    assert outcome.relay.down_dropped > 20, outcome.relay
    assert outcome.retransmissions > 0
    # video keeps decoding at the right size, about as often as on the clean path
    assert outcome.sizes == {(320, 240)}
    assert outcome.frames["clean"] >= WINDOW * FPS * 0.7, outcome.frames
    assert outcome.frames["lossy"] >= 0.85 * outcome.frames["clean"], outcome.frames
    # random loss is not congestion: the wide link never pauses the video
    assert outcome.paused == []
    # audio keeps arriving (Opus is not NACKed: a few 20 ms frames are simply lost)
    assert outcome.audio_frames > WINDOW * 50 * 0.5


async def test_control_without_rtx_the_same_loss_freezes_video(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shows the test above measures the repair: with NACKs ignored, video stalls."""
    monkeypatch.setattr(Consumer, "handle_nack", lambda self, lost: None)
    outcome = await run_lossy_consult(server, loss=0.05)
    assert outcome.relay.down_dropped > 20
    assert outcome.retransmissions == 0
    assert outcome.frames["lossy"] < 0.5 * outcome.frames["clean"], outcome.frames
