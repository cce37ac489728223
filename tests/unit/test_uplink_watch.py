"""Unit tests for sfu/uplink_watch.py: what a camera's arrivals tell its UplinkHealth."""

from __future__ import annotations

from sfu.layers import Layer
from sfu.uplink_health import DownlinkHint, UplinkHealth, UplinkState
from sfu.uplink_watch import UplinkWatch


class RecordingHealth(UplinkHealth):
    """An UplinkHealth that keeps the samples it is given."""

    __slots__ = ("samples",)

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[tuple[float, float, bool, DownlinkHint | None]] = []

    def update(
        self, fps: float, loss: float, muted: bool, now: float, hint: DownlinkHint | None = None
    ) -> bool:
        self.samples.append((fps, loss, muted, hint))
        return super().update(fps, loss, muted, now, hint)


def camera(ssrcs: tuple[int, ...] = (1000, 2000)) -> list[Layer]:
    layers = [Layer(i, None, 90000) for i in range(len(ssrcs))]
    for layer, ssrc in zip(layers, ssrcs, strict=True):
        layer.bind(ssrc)
    return layers


def arrive(layer: Layer, seqs: list[int]) -> None:
    assert layer.stream is not None
    for seq in seqs:
        layer.stream.receive(seq, seq * 3000, seq, 1000, False)


def test_loss_since_the_last_look_over_all_layers_and_the_best_frame_rate() -> None:
    health = RecordingHealth()
    watch = UplinkWatch(health)
    low, high = camera()
    arrive(low, [0, 1, 2, 4, 5])  # 6 expected, 5 received
    arrive(high, [0, 1, 3])  # 4 expected, 3 received
    low.rates.fps, high.rates.fps = 15.0, 12.0
    assert not watch.check([low, high], False, 1.0, DownlinkHint(300_000.0))
    fps, loss, muted, hint = health.samples[-1]
    assert (fps, muted, hint) == (15.0, False, DownlinkHint(300_000.0))
    assert loss == 2 / 10
    # nothing new since: no loss, whatever was lost before
    watch.check([low, high], False, 1.5)
    assert health.samples[-1][1] == 0.0
    arrive(low, [6, 8])  # 3 more expected, 2 received
    watch.check([low, high], False, 2.0)
    assert health.samples[-1][1] == 1 / 3


def test_an_unjudged_camera_is_never_weak() -> None:
    watch = UplinkWatch()
    watch.health.state = UplinkState.WEAK
    assert watch.weak and not watch.video_allowed
    assert watch.check(camera(), True, 1.0)  # weak changed: back to well
    after = (watch.state, watch.weak, watch.video_allowed)
    assert after == (UplinkState.WELL, False, True)


def test_layers_not_bound_yet_count_nothing() -> None:
    health = RecordingHealth()
    watch = UplinkWatch(health)
    layers = [Layer(0, "q", 90000), Layer(1, "h", 90000)]
    watch.check(layers, False, 1.0)
    assert health.samples[-1][:2] == (0.0, 0.0)
