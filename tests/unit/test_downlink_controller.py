"""Unit tests for sfu/downlink.py: what one subscriber is sent, with real Producers and Consumers.

No network and no background task: ``tick(now)`` is called directly with
times on the monotonic clock; layers are unmeasured, so options are priced
nominally (150 / 500 / 1500 kbit/s).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from sfu.consumer import Consumer, ConsumerState, OutboundParams
from sfu.downlink import DownlinkController
from sfu.layers import NOMINAL_BITRATES
from sfu.media import CodecInfo, MediaKind, Source
from sfu.peer import MediaSettings
from sfu.producer import Producer
from sfu.rtcp import ReportBlock
from sfu.rtp import build_header, parse_rtp
from sfu.tuning import TUNING
from sfu.uplink_health import UplinkState
from tests.unit.consumer_support import Sink

VP8 = CodecInfo("video/VP8", 90_000, 96, rtx_payload_type=97, nack=True)
OPUS = CodecInfo("audio/opus", 48_000, 111, channels=2)
SIZES = ((320, 180), (640, 360), (1280, 720))
LOWEST, MIDDLE, TOP = NOMINAL_BITRATES


def keyframe(layer: int, seq: int) -> bytes:
    width, height = SIZES[layer]
    descriptor = bytes([0x90, 0xE0, 0x80, 0x10, 0x01, 0x00])
    vp8 = b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width, height)
    return build_header(True, VP8.payload_type, seq, 1000 * seq, 0x100 + layer, b"") + (
        descriptor + vp8
    )


@dataclass
class Subscriber:
    controller: DownlinkController
    consumers: list[Consumer]
    events: list[dict[str, Any]]
    t0: float
    sinks: dict[Consumer, Sink] = field(default_factory=dict)

    def tick(self, at: float) -> None:
        self.controller.tick(self.t0 + at)

    def paused_events(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "track_paused"]

    def congestion(self, estimate: float, at: float = 0.0) -> None:
        """A loss report that brings the estimate down to ``estimate``."""
        self.controller.estimator.on_loss(0.5, estimate / 0.75, self.t0 + at)
        assert self.controller.estimator.estimate == pytest.approx(
            max(estimate, TUNING.min_estimate)
        )


def ignore(ssrc: int) -> None:
    """The publisher's keyframe requests go nowhere."""


def video_producer(participant: str, *, rids: int = 3, sizes: bool = True) -> Producer:
    producer = Producer(
        f"video-{participant}",
        participant,
        MediaKind.VIDEO,
        Source.CAMERA,
        VP8,
        "0",
        ignore,
        keyframe_interval=0.0,
        rids=["q", "h", "f"][:rids],
    )
    for layer in producer.layers:
        producer.bind_ssrc(0x100 + layer.index, layer)
        if sizes:
            # one keyframe per layer: the layer is live and its size known
            data = keyframe(layer.index, 1)
            producer.receive_rtp(parse_rtp(data), int(time.monotonic() * 1000), len(data))
    return producer


def audio_producer(participant: str, level: int) -> Producer:
    producer = Producer(
        f"audio-{participant}", participant, MediaKind.AUDIO, Source.MICROPHONE, OPUS, "1", ignore
    )
    producer.bind_ssrc(0x900)
    producer.audio.level = level
    return producer


def params(mid: str) -> OutboundParams:
    return OutboundParams(
        mid, 0x5000 + int(mid), 0x6000 + int(mid), 100, 101, None, None, None, True, "s"
    )


def subscriber(*producers: Producer, start_kbps: int = 300) -> Subscriber:
    consumers: list[Consumer] = []
    events: list[dict[str, Any]] = []
    settings = MediaSettings(
        subscriber_start_bitrate_kbps=start_kbps, subscriber_max_bitrate_kbps=5000
    )
    controller = DownlinkController("bob", settings, lambda: consumers, events.append)
    t0 = time.monotonic()  # not before the controller's own start
    sub = Subscriber(controller, consumers, events, t0)
    for i, producer in enumerate(producers):
        consumer = Consumer(f"c{i}", producer, "bob")
        producer.add_consumer(consumer)
        sink = Sink()
        consumer.bind(params(str(i)), sink)
        consumers.append(consumer)
        sub.sinks[consumer] = sink
    return sub


def state(consumer: Consumer) -> ConsumerState:
    """Not narrowed by mypy across calls that change it."""
    return consumer.state


def targets(sub: Subscriber) -> list[int]:
    return [c.target_layer for c in sub.consumers if c.kind is MediaKind.VIDEO]


# --------------------------------------------------------------------------
# choosing layers
# --------------------------------------------------------------------------


async def test_a_high_estimate_chooses_the_top_layer() -> None:
    sub = subscriber(video_producer("alice"))
    sub.controller.estimator.estimate = 5_000_000
    sub.tick(0.5)
    assert targets(sub) == [2]
    assert sub.events == []


async def test_the_start_estimate_chooses_the_lowest_layer() -> None:
    sub = subscriber(video_producer("alice"), start_kbps=300)
    sub.tick(0.5)
    assert targets(sub) == [0]


async def test_never_paused_before_any_congestion_signal() -> None:
    sub = subscriber(video_producer("alice"), start_kbps=50)
    for i in range(1, 6):
        sub.tick(0.5 * i)
    consumer = sub.consumers[0]
    assert not consumer.pause_reasons
    assert state(consumer) is ConsumerState.WAITING_KEYFRAME
    assert targets(sub) == [0]
    assert sub.paused_events() == []
    assert sub.controller.pauses == 0


async def test_paused_after_congestion_when_the_lowest_layer_does_not_fit() -> None:
    sub = subscriber(video_producer("alice"))
    sub.tick(0.5)
    sub.congestion(50_000, at=0.6)
    sub.tick(1.0)
    consumer = sub.consumers[0]
    assert consumer.pause_reasons == {"bandwidth"}
    assert state(consumer) is ConsumerState.PAUSED
    assert sub.controller.pauses == 1
    assert sub.paused_events() == [
        {"type": "track_paused", "track_id": "video-alice", "paused": True, "reason": "bandwidth"}
    ]
    # what is left (audio, nothing else) is all the estimate assumes now
    assert sub.controller.estimator.estimate == TUNING.min_estimate
    sub.tick(1.5)
    assert sub.controller.pauses == 1
    assert len(sub.paused_events()) == 1


async def test_not_paused_while_the_lowest_layer_is_within_the_pause_tolerance() -> None:
    sub = subscriber(video_producer("alice"))
    sub.tick(0.5)
    estimate = LOWEST / TUNING.pause_tolerance + 5_000
    sub.congestion(estimate, at=0.6)
    sub.tick(1.0)
    assert not sub.consumers[0].pause_reasons
    assert targets(sub) == [0]
    assert sub.paused_events() == []


async def test_resumed_when_the_estimate_recovers() -> None:
    sub = subscriber(video_producer("alice"))
    sub.tick(0.5)
    sub.congestion(50_000, at=0.6)
    sub.tick(1.0)
    consumer = sub.consumers[0]
    assert state(consumer) is ConsumerState.PAUSED
    sub.controller.estimator.estimate = 5_000_000
    sub.tick(1.0 + TUNING.upgrade_hold)
    assert not consumer.pause_reasons
    assert state(consumer) is ConsumerState.WAITING_KEYFRAME
    assert consumer.target_layer == 2
    assert sub.paused_events()[-1] == {
        "type": "track_paused",
        "track_id": "video-alice",
        "paused": False,
        "reason": "bandwidth",
    }
    assert len(sub.paused_events()) == 2


async def test_a_track_paused_for_another_reason_is_left_alone() -> None:
    sub = subscriber(video_producer("alice"))
    consumer = sub.consumers[0]
    consumer.pause("subscriber")
    sub.tick(0.5)
    sub.congestion(50_000, at=0.6)
    sub.tick(1.0)
    assert consumer.pause_reasons == {"subscriber"}
    assert sub.paused_events() == []
    consumer.resume("subscriber")
    sub.tick(1.5)  # now it takes part, and does not fit
    assert consumer.pause_reasons == {"bandwidth"}


async def test_step_down_at_once_and_up_only_after_the_hold() -> None:
    sub = subscriber(video_producer("alice"))
    estimator = sub.controller.estimator
    estimator.estimate = 5_000_000
    sub.tick(0.5)
    assert targets(sub) == [2]
    estimator.cap(700_000, sub.t0 + 0.6, "remb")
    sub.tick(1.0)
    assert targets(sub) == [1]
    estimator.estimate = 5_000_000
    sub.tick(1.0 + TUNING.upgrade_hold - 0.5)
    assert targets(sub) == [1]
    sub.tick(1.0 + TUNING.upgrade_hold)
    assert targets(sub) == [2]


async def test_a_step_up_needs_headroom() -> None:
    sub = subscriber(video_producer("alice"))
    estimator = sub.controller.estimator
    estimator.estimate = MIDDLE  # the middle layer fits exactly, but not with headroom
    sub.tick(0.5)
    assert targets(sub) == [0]
    estimator.estimate = MIDDLE / 0.8
    sub.tick(1.0)
    assert targets(sub) == [1]


# --------------------------------------------------------------------------
# what is offered
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "layer"),
    [
        ((160, 90), 0),
        ((320, 180), 0),
        ((480, 270), 1),
        ((600, 340), 1),  # within SIZE_SLACK of 640x360
        ((640, 360), 1),
        ((1280, 720), 2),
        ((1920, 1080), 2),
        ((0, 0), 0),  # not on screen
    ],
)
async def test_never_more_than_the_rendered_size(size: tuple[int, int], layer: int) -> None:
    sub = subscriber(video_producer("alice"))
    sub.controller.estimator.estimate = 5_000_000
    sub.consumers[0].render_size = size
    sub.tick(0.5)
    assert targets(sub) == [layer]


async def test_a_smaller_render_size_steps_down_at_once() -> None:
    sub = subscriber(video_producer("alice"))
    sub.controller.estimator.estimate = 5_000_000
    sub.tick(0.5)
    assert targets(sub) == [2]
    sub.consumers[0].render_size = (160, 90)
    sub.tick(1.0)
    assert targets(sub) == [0]


async def test_unknown_layer_sizes_do_not_limit() -> None:
    sub = subscriber(video_producer("alice", sizes=False))
    for layer in sub.consumers[0].producer.layers:
        layer.last_arrival_ms = int(time.monotonic() * 1000)  # live, size not known
    sub.controller.estimator.estimate = 5_000_000
    sub.consumers[0].render_size = (160, 90)
    sub.tick(0.5)
    assert targets(sub) == [2]


async def test_a_silent_layer_is_not_offered_unless_the_publisher_was_told_to_stop_it() -> None:
    producer = video_producer("alice")
    sub = subscriber(producer)
    sub.controller.estimator.estimate = 5_000_000
    producer.layers[2].last_arrival_ms -= TUNING.layer_stale_ms + 100
    sub.tick(0.5)
    assert targets(sub) == [1]
    producer.layers[2].active = False  # stopped on purpose: can be asked for again
    sub.tick(1.0)
    assert targets(sub) == [2]


async def test_a_camera_on_trial_is_received_on_what_arrives() -> None:
    """A weak uplink's camera comes back on its lowest layer only: that is what is sent on."""
    producer = video_producer("alice")
    sub = subscriber(producer)
    sub.controller.estimator.estimate = 5_000_000
    sub.tick(0.5)
    assert targets(sub) == [2]
    for layer in producer.layers[1:]:
        layer.active = False  # asked off for the trial
        layer.last_arrival_ms -= TUNING.layer_stale_ms + 100
    producer._uplink.health.state = UplinkState.TRIAL  # type: ignore[union-attr]
    sub.tick(1.0)
    assert targets(sub) == [0]
    producer._uplink.health.state = UplinkState.WELL  # type: ignore[union-attr]
    sub.tick(1.5)
    assert targets(sub) == [2]  # well again: asked back


# --------------------------------------------------------------------------
# priorities
# --------------------------------------------------------------------------


def two_cameras(**kw: Any) -> Subscriber:
    sub = subscriber(video_producer("alice"), video_producer("carol"), **kw)
    # room for both lowest layers and one middle one, with headroom
    sub.controller.estimator.estimate = 800_000
    return sub


async def test_equal_priorities_go_in_order() -> None:
    sub = two_cameras()
    sub.tick(0.5)
    assert targets(sub) == [1, 0]


async def test_pinned_beats_the_others() -> None:
    sub = two_cameras()
    sub.consumers[1].pinned = True
    sub.tick(0.5)
    assert targets(sub) == [0, 1]


async def test_screen_share_beats_a_camera() -> None:
    screen = video_producer("carol")
    screen.source = Source.SCREEN_SHARE
    sub = subscriber(video_producer("alice"), screen)
    sub.controller.estimator.estimate = 800_000
    sub.tick(0.5)
    assert targets(sub) == [0, 1]


async def test_the_active_speaker_beats_the_others_after_two_ticks() -> None:
    sub = subscriber(
        video_producer("alice"),
        video_producer("carol"),
        audio_producer("alice", 127),
        audio_producer("carol", 30),
    )
    sub.controller.estimator.estimate = 800_000
    sub.tick(0.5)
    assert targets(sub) == [1, 0]  # one loud tick is not a speaker yet
    sub.tick(1.0)
    sub.tick(1.0 + TUNING.upgrade_hold)  # alice's video stepped down at 1.0
    assert targets(sub) == [0, 1]


async def test_the_pinned_track_is_the_last_paused() -> None:
    sub = two_cameras()
    sub.consumers[1].pinned = True
    sub.tick(0.5)
    sub.congestion(LOWEST / TUNING.pause_tolerance + 25_000, at=0.6)  # one lowest layer, not two
    sub.tick(1.0)
    assert [bool(c.pause_reasons) for c in sub.consumers] == [True, False]
    assert [e["track_id"] for e in sub.paused_events()] == ["video-alice"]


# --------------------------------------------------------------------------
# feedback
# --------------------------------------------------------------------------


def send(consumer: Consumer, bits: float) -> None:
    """``bits`` more sent by ``consumer`` (what the controller measures)."""
    consumer.counters.bytes += int(bits / 8)


async def test_what_went_through_raises_the_estimate() -> None:
    sub = subscriber(video_producer("alice"))
    sub.tick(0.5)  # first sight of the consumer's counters
    send(sub.consumers[0], 500_000)  # 1 Mbit/s over the next half second
    sub.tick(1.0)
    assert sub.controller.video_rate == pytest.approx(1_000_000)
    assert sub.controller.estimator.estimate == pytest.approx(1_000_000)


async def test_loss_reports_are_weighted_by_what_each_stream_carries() -> None:
    sub = subscriber(video_producer("alice"), audio_producer("alice", 127))
    video, audio = sub.consumers
    sub.tick(0.4)
    send(video, 450_000)  # 900 kbit/s
    send(audio, 50_000)  # 100 kbit/s
    sub.tick(0.9)  # before the first probe may start (it would judge this loss itself)
    assert not sub.controller.estimator.probing
    assert sub.controller.audio_rate == pytest.approx(100_000)
    blocks = [
        (video, ReportBlock(video.params.ssrc if video.params else 0, 64, 0, 0, 0, 0, 0), False),
        (audio, ReportBlock(audio.params.ssrc if audio.params else 0, 0, 0, 0, 0, 0, 0), False),
    ]
    sub.controller.on_report(blocks)
    estimator = sub.controller.estimator
    assert estimator.loss == pytest.approx(0.9 * 0.25)
    assert estimator.estimate == pytest.approx(1_000_000 * (1 - 0.9 * 0.25 / 2))


def rtx_block(consumer: Consumer, fraction_lost: int) -> ReportBlock:
    rtx_ssrc = consumer.params.rtx_ssrc if consumer.params else None
    return ReportBlock(rtx_ssrc or 0, fraction_lost, 0, 0, 0, 0, 0)


async def test_an_rtx_block_is_ignored_when_not_probing() -> None:
    sub = subscriber(video_producer("alice"))
    video = sub.consumers[0]
    estimator = sub.controller.estimator
    assert not estimator.probing
    sub.controller.on_report([(video, rtx_block(video, 128), True)])  # the only block: no report
    assert estimator.loss == 0.0
    media = ReportBlock(video.params.ssrc if video.params else 0, 0, 0, 0, 0, 0, 0)
    sub.controller.on_report([(video, media, False), (video, rtx_block(video, 128), True)])
    assert estimator.loss == 0.0  # the media stream's loss alone
    assert estimator.decreases == 0
    assert estimator.estimate == 300_000


async def test_an_rtx_block_is_ignored_from_a_stream_that_carried_no_probe_padding() -> None:
    sub = subscriber(video_producer("alice"))
    video = sub.consumers[0]
    estimator = sub.controller.estimator
    start = time.monotonic() + 1.0  # the first probe may start a second after the controller
    assert estimator.padding_target(3_000_000, start, 300_000) > 0  # a probe, no padding sent
    sub.controller.on_report([(video, rtx_block(video, 128), True)])
    assert estimator.loss == 0.0
    assert estimator.padding_now(start + 0.1)  # not stopped by that loss


async def test_a_remb_decrease_counts_the_audio_that_went_with_it() -> None:
    sub = subscriber(video_producer("alice"), audio_producer("alice", 127))
    video, audio = sub.consumers
    sub.tick(0.5)
    send(video, 450_000)
    send(audio, 25_000)
    sub.tick(1.0)
    sub.controller.on_remb([], 1)  # covers nothing: ignored
    assert sub.controller.estimator.decreases == 0
    sub.controller.on_remb([video], 400_000)  # far below the 900 kbit/s sent
    assert sub.controller.estimator.estimate == pytest.approx(400_000 + 50_000)


# --------------------------------------------------------------------------
# the quality event
# --------------------------------------------------------------------------


async def test_quality_event_every_interval() -> None:
    sub = subscriber(video_producer("alice"))
    interval = sub.controller.settings.quality_interval
    sub.tick(interval / 2)
    assert [e for e in sub.events if e["type"] == "quality"] == []
    sub.tick(interval)
    sub.tick(interval * 1.5)
    assert [e["type"] for e in sub.events] == ["quality"]


async def test_quality_event_shape() -> None:
    producer = video_producer("alice")
    sub = subscriber(producer)
    consumer = sub.consumers[0]
    sub.tick(0.5)
    data = keyframe(0, 2)
    producer.receive_rtp(parse_rtp(data), int(time.monotonic() * 1000), len(data))
    assert state(consumer) is ConsumerState.FORWARDING
    event = sub.controller.quality([consumer])
    assert event == {
        "type": "quality",
        "estimate_bps": int(sub.controller.estimator.estimate),
        "audio_red": None,
        # no receiver report yet: nothing measured
        "link": {"loss": 0.0, "jitter_ms": 0.0, "rtt_ms": None, "queue_delay_ms": 0.0},
        "tracks": [
            {
                "track_id": "video-alice",
                "participant_id": "alice",
                "layer": "q",
                "spatial": 0,
                "temporal": consumer.temporal,
                "width": 320,
                "height": 180,
                "paused": False,
                "reason": None,
                "bitrate_bps": 0,
                "publisher_weak": False,
            }
        ],
    }


async def test_quality_of_a_track_not_started_and_of_a_paused_one() -> None:
    sub = subscriber(video_producer("alice"), video_producer("carol"))
    waiting, paused = sub.consumers
    paused.pause("bandwidth")
    paused.pause("subscriber")
    tracks = sub.controller.quality([waiting, paused])["tracks"]
    assert tracks[0]["layer"] is None
    assert tracks[0]["spatial"] is None and tracks[0]["temporal"] is None
    assert (tracks[0]["width"], tracks[0]["height"]) == (0, 0)
    assert tracks[0]["paused"] is False and tracks[0]["reason"] is None
    assert tracks[1]["paused"] is True
    assert tracks[1]["reason"] == "bandwidth"


async def test_closed_and_unbound_consumers_are_ignored() -> None:
    sub = subscriber(video_producer("alice"), video_producer("carol"))
    sub.consumers[0].close()
    unbound = Consumer("c9", video_producer("dave"), "bob")
    sub.consumers.append(unbound)
    sub.controller.estimator.estimate = 5_000_000
    sub.tick(0.5)
    sub.tick(sub.controller.settings.quality_interval)
    (quality,) = [e for e in sub.events if e["type"] == "quality"]
    assert [t["track_id"] for t in quality["tracks"]] == ["video-carol"]
    assert unbound.target_layer == 0 and state(unbound) is ConsumerState.NEW


async def test_a_remb_that_covers_one_more_track_replaces_the_previous_one() -> None:
    sub = subscriber(video_producer("alice"), video_producer("carol"), video_producer("dave"))
    c0, c1, c2 = sub.consumers
    sub.tick(0.4)
    for consumer in sub.consumers:
        send(consumer, 200_000)  # 400 kbit/s each
    sub.tick(0.9)
    sub.controller.on_remb([c0, c1], 1_000_000)  # before the third track was negotiated
    sub.controller.on_remb([c0, c1, c2], 500_000)  # the same receiver: its queue grows
    assert sub.controller.estimator.estimate == pytest.approx(500_000)


async def test_a_paused_track_stays_paused_without_news_from_the_link() -> None:
    sub = subscriber(video_producer("alice"))
    consumer = sub.consumers[0]
    estimator = sub.controller.estimator
    for i in range(1, 9):
        send(consumer, 400_000)  # 800 kbit/s
        sub.tick(0.5 * i)
    assert consumer.target_layer == 1
    estimator.on_remb(("c0",), 60_000, 800_000, 0, sub.t0 + 4.1)  # the link collapses
    send(consumer, 400_000)  # sent until the pause
    sub.tick(4.5)
    assert consumer.pause_reasons == {"bandwidth"}
    for at in (5.0, 5.5, 6.0, 6.5, 7.0):  # no REMB, no report, no probe verdict
        sub.tick(at)
        assert consumer.pause_reasons == {"bandwidth"}, (at, estimator)
