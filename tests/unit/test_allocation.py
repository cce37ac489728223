"""Unit tests for sfu/allocation.py (sharing a downlink) and sfu/layers.py (pricing layers)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sfu.allocation import (
    PRIORITY_OTHER,
    PRIORITY_PINNED,
    PRIORITY_SCREEN,
    PRIORITY_SPEAKER,
    Demand,
    Option,
    allocate,
    with_hysteresis,
)
from sfu.layers import (
    MAX_TEMPORAL,
    NOMINAL_BITRATES,
    RATE_SMOOTHING,
    RESTART_SAMPLES,
    Layer,
    LayerRates,
)


def options(*prices: float) -> list[Option]:
    return [Option(i, 0, p) for i, p in enumerate(prices)]


def demand(key: str, priority: int, prices: Sequence[float]) -> Demand:
    return Demand(key, priority, options(*prices))


# --------------------------------------------------------------------------
# allocate
# --------------------------------------------------------------------------


def test_priorities_are_ordered() -> None:
    assert PRIORITY_PINNED < PRIORITY_SPEAKER < PRIORITY_SCREEN < PRIORITY_OTHER


def test_everything_fits() -> None:
    result = allocate(10_000, [demand("a", PRIORITY_OTHER, [100, 300, 900])])
    assert result.choice == {"a": 2}
    assert result.total == 900
    assert result.wanted == 900


def test_nothing_to_allocate() -> None:
    result = allocate(1000, [])
    assert result.choice == {}
    assert result.total == 0
    assert result.wanted == 0


def test_upgrade_picks_the_best_option_that_fits() -> None:
    result = allocate(500, [demand("a", PRIORITY_OTHER, [100, 300, 2000])])
    assert result.choice == {"a": 1}
    assert result.total == 300
    assert result.wanted == 2000


def test_an_exact_fit_fits() -> None:
    result = allocate(300, [demand("a", PRIORITY_OTHER, [100, 300])])
    assert result.choice == {"a": 1}
    assert result.total == 300


def test_everyone_gets_the_lowest_option_before_anyone_is_raised() -> None:
    demands = [
        demand("big", PRIORITY_PINNED, [100, 1000]),
        demand("small", PRIORITY_OTHER, [100, 1000]),
    ]
    result = allocate(1000, demands)
    # a single pass by priority would give "big" 1000 and pause "small"
    assert result.choice == {"big": 0, "small": 0}
    assert result.total == 200


def test_upgrades_go_by_priority() -> None:
    demands = [
        demand("other", PRIORITY_OTHER, [100, 500]),
        demand("screen", PRIORITY_SCREEN, [100, 500]),
        demand("speaker", PRIORITY_SPEAKER, [100, 500]),
    ]
    result = allocate(800, demands)  # 300 for three lowest, 500 left: one upgrade of 400
    assert result.choice == {"speaker": 1, "screen": 0, "other": 0}
    assert result.total == 700
    assert result.wanted == 1500


def test_a_lower_priority_track_takes_what_a_higher_one_cannot_use() -> None:
    demands = [
        demand("pinned", PRIORITY_PINNED, [100, 2000]),
        demand("other", PRIORITY_OTHER, [100, 400]),
    ]
    result = allocate(600, demands)
    assert result.choice == {"pinned": 0, "other": 1}
    assert result.total == 500


def test_pause_when_the_lowest_option_does_not_fit() -> None:
    demands = [
        demand("other", PRIORITY_OTHER, [100, 500]),
        demand("pinned", PRIORITY_PINNED, [100, 500]),
    ]
    result = allocate(150, demands)
    assert result.choice == {"pinned": 0, "other": None}
    assert result.total == 100
    assert result.wanted == 1000  # a paused track still counts in what is wanted


def test_a_cheaper_lower_priority_track_still_fits_after_a_pause() -> None:
    demands = [
        demand("pinned", PRIORITY_PINNED, [300, 600]),
        demand("other", PRIORITY_OTHER, [100, 200]),
    ]
    result = allocate(200, demands)
    assert result.choice == {"pinned": None, "other": 1}
    assert result.total == 200


def test_equal_priorities_keep_their_order() -> None:
    demands = [
        demand("first", PRIORITY_OTHER, [100, 500]),
        demand("second", PRIORITY_OTHER, [100, 500]),
    ]
    assert allocate(600, demands).choice == {"first": 1, "second": 0}
    assert allocate(150, demands).choice == {"first": 0, "second": None}


def test_a_track_with_no_options_is_paused_and_wants_nothing() -> None:
    result = allocate(1000, [Demand("empty", PRIORITY_OTHER, []), demand("a", 3, [100])])
    assert result.choice == {"empty": None, "a": 0}
    assert result.wanted == 100


@pytest.mark.parametrize("budget", [0.0, -500.0])
def test_no_budget_pauses_everything(budget: float) -> None:
    result = allocate(budget, [demand("a", PRIORITY_PINNED, [1, 2])])
    assert result.choice == {"a": None}
    assert result.total == 0


def test_temporal_options_of_one_layer() -> None:
    opts = [Option(0, 0, 50), Option(0, 1, 100), Option(0, 2, 150), Option(1, 2, 600)]
    result = allocate(160, [Demand("a", PRIORITY_OTHER, opts)])
    assert result.choice == {"a": 2}
    assert opts[2] == Option(spatial=0, temporal=2, price=150)


# --------------------------------------------------------------------------
# with_hysteresis(current, cautious, eager, may_raise)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "cautious", "eager", "may_raise", "expected"),
    [
        # paused: resume only when allowed, at the cautious choice or the lowest
        (None, 2, 2, False, None),
        (None, 2, 3, True, 2),
        (None, None, 1, True, 0),
        (None, None, None, True, None),
        # too expensive now: step down at once, whatever may_raise says
        (2, 0, None, True, None),
        (2, None, None, False, None),
        (2, 0, 1, True, 1),
        (2, 0, 0, False, 0),
        # a better option that fits with headroom: raise when allowed
        (1, 2, 2, True, 2),
        (0, 2, 3, True, 2),
        (1, 2, 2, False, 1),
        # within tolerance: keep
        (1, 1, 2, True, 1),
        (1, 0, 1, True, 1),
        (1, None, 1, True, 1),
        (1, 0, 3, False, 1),
    ],
)
def test_with_hysteresis(
    current: int | None,
    cautious: int | None,
    eager: int | None,
    may_raise: bool,
    expected: int | None,
) -> None:
    assert with_hysteresis(current, cautious, eager, may_raise) == expected


# --------------------------------------------------------------------------
# sfu/layers.py: what each option costs
# --------------------------------------------------------------------------


def test_layer_rates_per_temporal_layer() -> None:
    rates = LayerRates()
    assert rates.temporal_seen == 0
    rates.add(0, 1000)
    rates.add(2, 500)
    rates.add(0, 1000)
    assert rates.bytes_now[:3] == [2000, 0, 500]
    assert rates.temporal_seen == 3
    assert rates.sample(0.5)
    assert rates.bitrate[:3] == [32_000.0, 0.0, 8_000.0]  # the first sample taken as it is
    assert rates.up_to(0) == 32_000
    assert rates.up_to(1) == 32_000
    assert rates.up_to(2) == 40_000
    assert rates.total == 40_000
    assert rates.bytes_now == [0] * MAX_TEMPORAL


def test_layer_rates_without_temporal_layers() -> None:
    rates = LayerRates()
    rates.add(None, 100)
    assert rates.bytes_now[0] == 100
    assert rates.temporal_seen == 1


def test_layer_rates_clamp_the_temporal_id() -> None:
    rates = LayerRates()
    rates.add(7, 10)
    assert rates.bytes_now[MAX_TEMPORAL - 1] == 10
    assert rates.temporal_seen == MAX_TEMPORAL


def test_layer_rates_are_smoothed_after_the_first_sample() -> None:
    rates = LayerRates()
    rates.add(0, 1000)
    rates.sample(1.0)
    assert rates.bitrate[0] == 8000
    rates.add(0, 2000)
    rates.sample(1.0)
    assert rates.bitrate[0] == pytest.approx(8000 + RATE_SMOOTHING * 8000)
    assert not rates.sample(1.0)  # nothing arrived: says so, and decays
    assert rates.bitrate[0] < 8000 + RATE_SMOOTHING * 8000


@pytest.mark.parametrize(("index", "nominal"), [(0, 150_000), (1, 500_000), (2, 1_500_000)])
def test_unmeasured_layer_is_priced_nominally_by_rank(index: int, nominal: float) -> None:
    layer = Layer(index, "q", 90_000)
    assert layer.price(0) == nominal
    assert layer.price(3) == nominal
    assert NOMINAL_BITRATES[index] == nominal


def test_a_fourth_layer_costs_as_much_as_the_top_nominal_one() -> None:
    assert Layer(5, "x", 90_000).price(0) == NOMINAL_BITRATES[-1]


def test_unmeasured_temporal_layers_halve_the_price() -> None:
    layer = Layer(1, "h", 90_000)
    layer.rates.add(0, 0)
    layer.rates.add(1, 0)
    layer.rates.add(2, 0)  # three temporal layers seen, no bytes worth measuring
    assert [layer.price(t) for t in range(3)] == [125_000, 250_000, 500_000]


def sample_bitrate(layer: Layer, per_tid: dict[int, int], elapsed: float = 0.5) -> None:
    for tid, size in per_tid.items():
        layer.rates.add(tid, size)
    layer.sample(elapsed)


def test_a_flowing_layer_is_priced_by_measurement() -> None:
    layer = Layer(2, "f", 90_000)
    sample_bitrate(layer, {0: 25_000, 1: 12_500, 2: 12_500})  # 400/200/200 kbit/s
    assert layer.flowing
    assert layer.price(0) == 400_000
    assert layer.price(1) == 600_000
    assert layer.price(2) == 800_000
    assert layer.known_bitrate == 800_000


def test_a_trickle_is_not_a_measurement() -> None:
    layer = Layer(1, "h", 90_000)
    sample_bitrate(layer, {0: 50}, elapsed=1.0)  # 400 bit/s
    assert layer.flowing
    assert layer.price(0) == NOMINAL_BITRATES[1]
    assert layer.known_bitrate == 0


def test_a_stopped_layer_is_priced_at_what_it_cost_while_it_flowed() -> None:
    layer = Layer(1, "h", 90_000)
    sample_bitrate(layer, {0: 20_000, 1: 20_000})  # 320 + 320 kbit/s
    assert layer.price(1) == 640_000
    layer.sample(0.5)  # the publisher stopped the layer: nothing arrived
    assert not layer.flowing
    assert layer.rates.total < 640_000  # the measurement decays...
    assert layer.known_bitrate == 640_000  # ...what it cost is remembered
    assert layer.price(1) == 640_000
    assert layer.price(0) == 320_000  # two temporal layers: half for the lower one
    for _ in range(20):
        layer.sample(0.5)
    assert layer.price(1) == 640_000


def test_a_restarted_layer_is_not_cheaper_than_it_was_until_measured_again() -> None:
    # the smoothed rate climbs back from the little left after the pause: a
    # subscriber on a thin link must not see the layer as cheap meanwhile
    layer = Layer(1, "h", 90_000)
    sample_bitrate(layer, {0: 25_000})  # 400 kbit/s
    for _ in range(20):
        layer.sample(0.5)  # stopped for 10 s
    sample_bitrate(layer, {0: 25_000})  # back at 400 kbit/s
    assert layer.flowing
    assert layer.rates.total < 200_000  # the measurement lags...
    assert layer.price(0) == 400_000  # ...the price does not
    for _ in range(RESTART_SAMPLES):
        sample_bitrate(layer, {0: 25_000})
    assert not layer.restarting
    assert layer.price(0) == layer.rates.total  # measured again once the ramp is over


def test_layer_bind_creates_its_receive_stream() -> None:
    layer = Layer(0, "q", 90_000)
    before = layer.stream
    assert before is None
    layer.bind(1234)
    assert layer.ssrc == 1234
    assert layer.stream is not None
    assert layer.stream.ssrc == 1234
    assert layer.stream.clock_rate == 90_000
    assert "rid=q" in repr(layer)
