"""Unit tests for sfu/layer_selection.py: a Consumer's target and current layers.

The Consumer-level behaviour (keyframes, numbering across switches) is in
test_layer_switching.py; these check the selection state on its own.
"""

from __future__ import annotations

from sfu.layer_selection import ALL_TEMPORAL, NO_LAYER, LayerSelection


def test_starts_aiming_at_the_lowest_layer_with_every_temporal_layer() -> None:
    selection = LayerSelection()
    assert (selection.target_layer, selection.target_temporal) == (0, ALL_TEMPORAL)
    assert (selection.current_layer, selection.temporal) == (NO_LAYER, ALL_TEMPORAL)
    assert selection.layer_switches == 0
    assert selection.render_size is None and not selection.pinned


def test_retarget_says_whether_the_spatial_layer_moved() -> None:
    selection = LayerSelection()
    assert selection.retarget(2, 1)
    assert (selection.target_layer, selection.target_temporal) == (2, 1)
    # the temporal target follows even when the spatial one stays
    assert not selection.retarget(2, 0)
    assert selection.target_temporal == 0
    # what is forwarded changes only when the Consumer starts the layer
    assert (selection.current_layer, selection.temporal) == (NO_LAYER, ALL_TEMPORAL)


def test_the_first_start_is_not_a_switch_later_ones_are() -> None:
    selection = LayerSelection()
    selection.retarget(1, 2)
    selection.started(1)
    assert (selection.current_layer, selection.temporal, selection.layer_switches) == (1, 2, 0)
    selection.started(1)  # a restart after a pause, same layer
    assert selection.layer_switches == 0
    selection.retarget(0, 2)
    selection.started(0)
    assert (selection.current_layer, selection.layer_switches) == (0, 1)


def test_temporal_layers_go_down_at_once() -> None:
    selection = LayerSelection()
    selection.started(0)
    selection.retarget(0, 0)
    selection.follow_temporal(2, layer_sync=False)
    assert selection.temporal == 0


def test_temporal_layers_go_up_only_at_a_picture_that_depends_on_tl0_alone() -> None:
    selection = LayerSelection()
    selection.retarget(0, 0)
    selection.started(0)
    selection.retarget(0, 2)
    selection.follow_temporal(1, layer_sync=False)
    assert selection.temporal == 0
    selection.follow_temporal(1, layer_sync=True)
    assert selection.temporal == 2
    selection.retarget(0, 0)
    selection.follow_temporal(1, layer_sync=False)
    selection.retarget(0, 1)
    selection.follow_temporal(0, layer_sync=False)  # a TL0 picture
    assert selection.temporal == 1
