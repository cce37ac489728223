"""Simulcast in, one layer out per subscriber: RID demux, switching, layer control.

The publisher is a replay of three pre-encoded VP8 layers (320x180, 640x360,
1280x720) sent the way Chrome sends simulcast (RID extension, no a=ssrc);
subscribers are real aiortc peers that decode what they get.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import av
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from benchmarks.loadgen.simulcast_source import (
    SimulcastPublication,
    publish_simulcast,
    simulcast_clips,
)
from benchmarks.synthetic_media import opus_clip
from sfu.consumer import Consumer
from sfu.participant import Role
from signaling.client import ClientError, ConsultClient
from tests.conftest import RunningServer

SMALL, MEDIUM, LARGE = (320, 180), (640, 360), (1280, 720)


@dataclass
class SizeLog:
    """Decoded frame sizes in order of arrival, and when each size began."""

    frames: int = 0
    changes: list[tuple[float, tuple[int, int]]] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int] | None:
        return self.changes[-1][1] if self.changes else None

    def sizes(self) -> list[tuple[int, int]]:
        return [s for _, s in self.changes]


class DecodeErrors(logging.Handler):
    """Counts aiortc's 'failed to decode' warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "decode" in record.getMessage().lower():
            self.count += 1


async def read_sizes(track: MediaStreamTrack, log: SizeLog) -> None:
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            frame = await track.recv()
            if isinstance(frame, av.VideoFrame):
                log.frames += 1
                size = (frame.width, frame.height)
                if size != log.size:
                    log.changes.append((time.monotonic(), size))


@dataclass
class Call:
    publisher: ConsultClient
    publication: SimulcastPublication
    track_id: str


@contextlib.asynccontextmanager
async def simulcast_call(server: RunningServer, room: str) -> AsyncIterator[Call]:
    clips = simulcast_clips()
    publisher = server.client(server.token(room, "doctor", Role.SPECIALIST))
    await publisher.connect()
    await publisher.join()
    publication = await publish_simulcast(publisher, clips, opus_clip(bitrate=24_000))
    track_id = next(t for mid, t in publisher.published.items() if mid == publication.video.mid)
    try:
        yield Call(publisher, publication, track_id)
    finally:
        await publication.stop()
        await publisher.leave()


async def watch(client: ConsultClient) -> tuple[SizeLog, asyncio.Task[None], str]:
    remote = await client.wait_for_track(lambda t: t.kind == "video", timeout=20)
    log = SizeLog()
    task = asyncio.get_running_loop().create_task(read_sizes(remote.track, log))
    return log, task, remote.track_id


async def wait_size(
    log: SizeLog, size: tuple[int, int], timeout: float, consumer: Consumer | None = None
) -> float:
    start = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            while log.size != size:
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"no {size} within {timeout} s: {describe(consumer)}") from None
    return time.monotonic() - start


def describe(consumer: Consumer | None) -> str:
    if consumer is None:
        return ""
    layers = [
        (lay.rid, lay.active, int(lay.known_bitrate), [int(b) for b in lay.rates.bitrate])
        for lay in consumer.producer.layers
    ]
    return (
        f"state={consumer.state.value} target={consumer.target_layer} "
        f"current={consumer.current_layer} size={consumer.render_size} layers={layers}"
    )


def consumer_of(server: RunningServer, room: str, identity: str, kind: str = "video") -> Consumer:
    return next(
        c
        for p in server.room(room).participants.values()
        if p.identity == identity
        for c in p.consumers.values()
        if c.kind.value == kind
    )


async def test_layers_are_demultiplexed_by_rid(server: RunningServer) -> None:
    async with simulcast_call(server, "sc-rid") as call:
        room = server.room("sc-rid")
        producer = room.find_producer(call.track_id)
        assert [layer.rid for layer in producer.layers] == ["q", "h", "f"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            layer.ssrc and layer.width and layer.rates.total > 0 for layer in producer.layers
        ):
            await asyncio.sleep(0.1)
        assert [(layer.width, layer.height) for layer in producer.layers] == [SMALL, MEDIUM, LARGE]
        assert {layer.ssrc for layer in producer.layers} == {
            s.ssrc for s in call.publication.video.layers
        }
        assert all(layer.stream and layer.stream.packets > 10 for layer in producer.layers)


async def test_subscriber_decodes_each_layer_as_it_is_switched(server: RunningServer) -> None:
    errors = DecodeErrors()
    logging.getLogger("aiortc").addHandler(errors)
    room = "sc-switch"
    async with simulcast_call(server, room):
        viewer = server.client(server.token(room, "clinic", Role.HEALTH_WORKER))
        await viewer.connect()
        await viewer.join()
        log, reader, track_id = await watch(viewer)
        try:
            consumer = consumer_of(server, room, "clinic")
            downlink = server.room(room).participants[viewer.participant_id or ""]
            assert downlink.subscriber is not None
            estimator = downlink.subscriber.downlink.estimator
            # no size said, a fresh link: starts small, then probes up to the top
            await wait_size(log, SMALL, timeout=10, consumer=consumer)
            try:
                await wait_size(log, LARGE, timeout=40, consumer=consumer)
            except AssertionError as exc:
                raise AssertionError(f"{exc} {estimator} {vars(estimator)}") from None
            # a thumbnail: straight down to the lowest layer
            await viewer.track_settings(track_id, 320, 180)
            await wait_size(log, SMALL, timeout=5)
            # a medium tile: the middle layer, not more
            await viewer.track_settings(track_id, 600, 340)
            await wait_size(log, MEDIUM, timeout=10)
            frames = log.frames
            await asyncio.sleep(2)
            assert log.size == MEDIUM
            assert log.frames > frames + 15, "video keeps decoding after the switches"
            consumer = consumer_of(server, room, "clinic")
            assert consumer.layer_switches >= 3
            assert errors.count == 0, "no decode errors across layer switches"
            assert set(log.sizes()) == {SMALL, MEDIUM, LARGE}
        finally:
            reader.cancel()
            logging.getLogger("aiortc").removeHandler(errors)
            await viewer.leave()


async def test_two_subscribers_get_their_own_layer_and_unused_layers_stop(
    server: RunningServer,
) -> None:
    room = "sc-two"
    async with simulcast_call(server, room) as call:
        thumb = server.client(server.token(room, "thumb", Role.HEALTH_WORKER))
        full = server.client(server.token(room, "full", Role.OBSERVER))
        for c in (thumb, full):
            await c.connect()
            await c.join()
        thumb_log, thumb_reader, thumb_track = await watch(thumb)
        full_log, full_reader, full_track = await watch(full)
        try:
            await thumb.track_settings(thumb_track, 160, 90)
            await full.track_settings(full_track, 640, 360)
            await wait_size(full_log, MEDIUM, timeout=20)
            await asyncio.sleep(1)
            assert thumb_log.size == SMALL, "a thumbnail gets the lowest layer on a fast link"
            # nobody needs the 720p layer: the publisher is told to stop it
            event = await call.publisher.wait_event(
                "publisher_layers",
                timeout=15,
                where=lambda e: any(lay["rid"] == "f" and not lay["active"] for lay in e["layers"]),
            )
            assert event["track_id"] == call.track_id
            top = call.publication.video.layers[2]
            assert not top.active
            sent = top.packets_sent
            await asyncio.sleep(1)
            assert top.packets_sent == sent, "the publisher stopped sending the top layer"
            full_estimator = server.room(room).participants[full.participant_id or ""]
            assert full_estimator.subscriber is not None
            assert full_log.size == MEDIUM and thumb_log.size == SMALL, (
                describe(consumer_of(server, room, "full")),
                full_log.changes,
                {
                    k: v
                    for k, v in vars(full_estimator.subscriber.downlink.estimator).items()
                    if k in ("decreases", "last_decrease_reason", "probes_ok", "probes_failed")
                },
            )
            # someone wants it again: the publisher is told to resume it
            await full.track_settings(full_track, 1280, 720)
            await call.publisher.wait_event(
                "publisher_layers",
                timeout=10,
                where=lambda e: all(lay["active"] for lay in e["layers"]),
            )
            await wait_size(full_log, LARGE, timeout=20)
            assert thumb_log.size == SMALL
        finally:
            thumb_reader.cancel()
            full_reader.cancel()
            await thumb.leave()
            await full.leave()


@pytest.mark.parametrize(
    "bad", [{"width": -1, "height": 5}, {"width": "x", "height": 1}, {"width": 5}]
)
async def test_track_settings_validation(server: RunningServer, bad: dict[str, object]) -> None:
    room = "sc-bad"
    async with simulcast_call(server, room) as call:
        viewer = server.client(server.token(room, "clinic", Role.HEALTH_WORKER))
        await viewer.connect()
        await viewer.join()
        await viewer.wait_for_track(lambda t: t.kind == "video", timeout=20)
        with pytest.raises(ClientError) as bad_size:
            await viewer.request({"type": "track_settings", "track_id": call.track_id, **bad})
        assert bad_size.value.code == "bad_message"
        with pytest.raises(ClientError) as unknown:
            await viewer.track_settings("nope", 1, 1)
        assert unknown.value.code == "not_found"
        await viewer.track_settings(call.track_id, 320, 180, pinned=True)  # still serving
        await viewer.leave()
