"""Which simulcast layers a publisher is asked to send (Producer.needed_layers)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sfu.media import CodecInfo, MediaKind, Source
from sfu.producer import Producer
from sfu.publisher_layers import LAYER_MIN_ON, LAYER_STOP_DELAY, PublisherLayers
from sfu.uplink_health import UplinkState

VP8 = CodecInfo("video/VP8", 90000, 96, rtx_payload_type=97, nack=True)


@dataclass(eq=False)
class FakeConsumer:
    target_layer: int
    pause_reasons: set[str] = field(default_factory=set)


def simulcast(seen: tuple[bool, bool, bool] = (True, True, True)) -> Producer:
    producer = Producer(
        "p:1", "p", MediaKind.VIDEO, Source.CAMERA, VP8, "1", lambda _: None, rids=["q", "h", "f"]
    )
    for layer, arrived in zip(producer.layers, seen, strict=True):
        if arrived:
            producer.bind_ssrc(1000 + layer.index, layer)
    return producer


def step(producer: Producer, t: float, arriving: tuple[int, ...] = (0, 1, 2)) -> list[bool] | None:
    """One look at ``t`` seconds, the layers in ``arriving`` having sent a packet just now."""
    for index in arriving:
        if producer.layers[index].stream is not None:
            producer.layers[index].last_arrival_ms = int(t * 1000)
    return producer.needed_layers(t)


def test_a_layer_above_one_switched_off_goes_off_with_it() -> None:
    """Never the top layer on while a lower one is off (real Chromium spent 250 kbit/s on 720p)."""
    producer = simulcast(seen=(True, True, False))  # Chrome has not sent f yet
    consumer = FakeConsumer(target_layer=0)
    producer.consumers.add(consumer)  # type: ignore[arg-type]
    assert step(producer, 0.0) is None  # h unneeded, not long enough yet
    assert step(producer, LAYER_STOP_DELAY + LAYER_MIN_ON) == [True, False, False]
    consumer.target_layer = 2
    assert step(producer, LAYER_STOP_DELAY + LAYER_MIN_ON + 1) == [True, True, True]


def test_layers_below_a_needed_one_stay_on() -> None:
    producer = simulcast()
    producer.consumers.add(FakeConsumer(target_layer=2))  # type: ignore[arg-type]
    for t in (0.0, 20.0, 40.0):
        assert step(producer, t) is None
    assert all(layer.active for layer in producer.layers)


def test_a_layer_the_publisher_stopped_sending_is_left_on() -> None:
    """Switching it off and on again made Chromium probe a thin uplink every ten seconds."""
    producer = simulcast()
    producer.consumers.add(FakeConsumer(target_layer=0))  # type: ignore[arg-type]
    for t in range(0, 40, 2):
        assert step(producer, float(t), arriving=(0,)) is None  # h and f: not sent (stale)
    assert all(layer.active for layer in producer.layers)
    # h starts arriving again and still nobody needs it: off, and f (above it) with it
    assert step(producer, 40.0) is None
    assert step(producer, 40.0 + LAYER_STOP_DELAY) == [True, False, False]


def test_a_layer_switched_on_stays_on_for_a_while() -> None:
    producer = simulcast()
    consumer = FakeConsumer(target_layer=0)
    producer.consumers.add(consumer)  # type: ignore[arg-type]
    assert step(producer, 0.0) is None
    assert step(producer, LAYER_STOP_DELAY) == [True, False, False]
    consumer.target_layer = 1
    assert step(producer, LAYER_STOP_DELAY + 0.5) == [True, True, False]
    consumer.target_layer = 0
    # unneeded again at once: kept on until LAYER_MIN_ON after it came back
    t = LAYER_STOP_DELAY + 0.5
    assert step(producer, t + LAYER_STOP_DELAY) is None
    assert step(producer, t + LAYER_MIN_ON) == [True, False, False]


def test_a_weak_uplink_gets_no_camera_then_only_its_smallest_layer_on_trial() -> None:
    producer = simulcast()
    producer.consumers.add(FakeConsumer(target_layer=2))  # type: ignore[arg-type]
    assert producer._uplink is not None
    health = producer._uplink.health
    health.state = UplinkState.WEAK
    assert step(producer, 1.0) == [False, False, False]
    health.state = UplinkState.TRIAL
    assert step(producer, 2.0) == [True, False, False]
    health.state = UplinkState.WELL
    assert step(producer, 3.0) == [True, True, True]


# --------------------------------------------------------------------------
# PublisherLayers alone: SSRCs, one layer, all off
# --------------------------------------------------------------------------


def test_each_ssrc_leads_to_its_layer_and_a_rebound_layer_forgets_the_old_one() -> None:
    layers = PublisherLayers(["q", "h"], 90000)
    assert layers.simulcast
    q, h = layers.layers
    assert layers.by_rid("h") is h and layers.by_rid("f") is None
    layers.bind_ssrc(1000, q)
    layers.bind_rtx(1001, q)
    layers.bind_ssrc(2000, h)
    assert layers.by_ssrc == {1000: q, 1001: q, 2000: h}
    layers.bind_ssrc(3000, h)  # the publisher restarted the layer with a new SSRC
    assert layers.by_ssrc == {1000: q, 1001: q, 3000: h}
    assert h.ssrc == 3000 and h.stream is not None


def test_a_single_layer_goes_off_with_a_weak_uplink_and_back_on() -> None:
    layers = PublisherLayers(None, 90000)
    assert not layers.simulcast
    assert layers.bind_ssrc(1000) is layers.layers[0]
    assert layers.keep_up_to(0, 0.0) is None
    assert layers.all_off(1.0) == [False]
    assert layers.all_off(2.0) is None
    assert layers.keep_up_to(0, 3.0) == [True]
    assert layers.keep_up_to(0, 4.0) is None


def test_layers_switched_back_on_after_all_off_stay_on_for_a_while() -> None:
    layers = PublisherLayers(["q", "h", "f"], 90000)
    for layer in layers.layers:
        layers.bind_ssrc(1000 + layer.index, layer)
    assert layers.all_off(0.0) == [False, False, False]
    assert layers.keep_up_to(2, 1.0) == [True, True, True]

    def look(t: float, top: int) -> list[bool] | None:
        for layer in layers.layers:
            layer.last_arrival_ms = int(t * 1000)  # all of them arriving
        return layers.keep_up_to(top, t)

    # nobody needs f from 2 s on: unneeded long enough, but on only since 1 s
    assert look(2.0, 1) is None
    assert look(2.0 + LAYER_STOP_DELAY, 1) is None
    assert look(1.0 + LAYER_MIN_ON, 1) == [True, True, False]
