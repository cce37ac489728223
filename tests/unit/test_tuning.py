"""Unit tests for sfu/tuning.py: one frozen set of adaptation tuning constants."""

from __future__ import annotations

import dataclasses

import pytest

from sfu.tuning import TUNING, AdaptationTuning


def test_the_default_is_the_dataclass_defaults_and_cannot_be_changed() -> None:
    assert AdaptationTuning() == TUNING
    with pytest.raises(dataclasses.FrozenInstanceError):
        TUNING.headroom = 1.0  # type: ignore[misc]


def test_a_variant_is_made_by_replacing_fields() -> None:
    careful = dataclasses.replace(TUNING, probe_factor=1.5)
    assert careful.probe_factor == 1.5 and careful.headroom == TUNING.headroom


def test_the_bars_are_in_the_order_the_estimator_relies_on() -> None:
    assert 0 < TUNING.clean_loss < TUNING.high_loss < TUNING.congestion_loss < 1
    # a step up fits with headroom; a step down and a pause need more than the estimate
    assert TUNING.headroom < 1 < TUNING.tolerance < TUNING.pause_tolerance
    assert 1 < TUNING.probe_factor_careful < TUNING.probe_factor_paused < TUNING.probe_factor
    assert TUNING.probe_backoff_min < TUNING.probe_backoff_max_paused < TUNING.probe_backoff_max
    assert TUNING.ceiling_hold_paused < TUNING.ceiling_hold
    assert TUNING.loss_floor_min_reports <= TUNING.loss_floor_reports
