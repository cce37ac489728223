"""Real Chromium at both ends of a capped link: what the patient and the specialist experience.

Each case is one consult through the widget (benchmarks/browser_link.py):
the specialist's browser on an uncapped link, the patient's behind ``tbf``
(burst 4 kB, latency 300 ms) in *both* directions, each browser in its own
network namespace, the server a separate process; the satellite case puts
the patient behind a user-space link instead (tests/helpers/ns_bridge.py).
Every figure is read from the browsers' getStats (frames decoded, frame
size, freezes, audio concealment), from their pages (the tile's text) and
from the signalling they received. Each case runs once (a minute or more)
and its targets are separate tests on that one run; repeated runs and the
timelines are the benchmark's
(``python -m benchmarks run browser_weak_link --repeat N``).

Targets not reached yet are ``xfail`` with the figures measured (issue 17
stays open for them); they are asserted all the same, so one that starts
passing shows as XPASS.

Marked ``slow``: ``./scripts/test.sh -m "not slow"`` leaves them out while
iterating.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from benchmarks.browser_link_metrics import FULL_RATE_FPS, Row, first_time
from benchmarks.browser_weak_link import SIDES, run_case
from tests.helpers.chromium_netns import skip_unless_browser_rig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SECONDS = 60
_results: dict[str, dict[str, Any]] = {}


def result_of(case: str) -> dict[str, Any]:
    """The case's one run (shared by its tests), or a skip when it cannot run here."""
    skip_unless_browser_rig()
    if case not in _results:
        _results[case] = asyncio.run(run_case(case, SECONDS))
    return _results[case]


def _show(result: dict[str, Any]) -> str:
    """The figures and the last rows of both sides, for a failure message."""
    lines = []
    for side in SIDES:
        lines.append(f"{side}: {json.dumps(result[side]['figures'])}")
        for row in result[side]["rows"][-6:]:
            lines.append(f"  {row}")
    return "\n".join(lines)


def _rows(result: dict[str, Any], side: str) -> list[Row]:
    return [Row(**row) for row in result[side]["rows"]]


def _full_360p(row: Row) -> bool:
    return row.height >= 360 and row.fps >= FULL_RATE_FPS


# -- 250 kbit/s both ways, 60 s ------------------------------------------------------------


def test_250_kbps_each_side_sees_smooth_video_and_hears_clean_audio() -> None:
    result = result_of("250k")
    why = _show(result)
    for side in SIDES:
        figures = result[side]["figures"]
        steady = figures["steady"]  # from 10 s on
        assert figures["reconnects"] == 0, why
        assert steady["mean_fps"] >= 15 and steady["min_height"] >= 180, why
        assert steady["freezes_per_minute"] <= 1, why
        assert steady["concealment"] < 0.02, why
        assert figures["bandwidth_pauses"] == 0, why


def test_250_kbps_no_layer_flapping() -> None:
    result = result_of("250k")
    why = _show(result)
    for side in SIDES:
        figures = result[side]["figures"]
        assert figures["steady"]["size_changes"] <= 2, why  # in the test's one minute
        assert figures["publisher_layer_changes"] <= 2, why


# -- 60 kbit/s both ways (from 10 s, for 60 s), then lifted ---------------------------------

CAP_AT, LIFTED_AT = 10.0, 10.0 + SECONDS


def test_60_kbps_no_reconnection() -> None:
    result = result_of("60k")
    why = _show(result)
    for side in SIDES:
        assert result[side]["figures"]["reconnects"] == 0, why


def test_60_kbps_the_voice_holds() -> None:
    """Audio concealment under 5 % from 3 s into the cap, both sides.

    The runs above 5 % (the specialist's side, 2 of 15, and 5.03 % in a debug
    run) were the patient's camera tried every 4.6 s through the cap, each
    trial flooding its uplink; fixed in be34eed. Since: 0.1-1.1 % (patient)
    and 1.4-2.3 % (specialist) over 8 runs.
    """
    result = result_of("60k")
    why = _show(result)
    for side in SIDES:
        assert result[side]["figures"]["capped"]["concealment"] < 0.05, why  # from 3 s in


def test_60_kbps_video_paused_with_the_right_words_on_each_side() -> None:
    result = result_of("60k")
    why = _show(result)
    patient, specialist = result["patient"]["figures"], result["specialist"]["figures"]
    # the patient's own link cannot carry the specialist's video: paused, and the tile says so
    assert patient["told_paused_after_s"] is not None and patient["told_paused_after_s"] <= 5, why
    tile = patient["tile_text_after_s"].get("Video paused: weak connection")
    assert tile is not None and tile <= 5, why
    # the specialist's link is fine: the patient's uplink is the weak side, and the tile says so
    told = specialist["told_publisher_weak_after_s"]
    assert told is not None and told <= 5, why
    tile = specialist["tile_text_after_s"].get("'s connection is weak")
    assert tile is not None and tile <= 5, why
    assert specialist["bandwidth_pauses"] == 0, why  # never blamed on the specialist's own link


@pytest.mark.xfail(
    reason="issue 17, reached in 2 of 5 runs with the lift probe fix (2026-12-07, night): "
    "first frame after the lift 2.6-4.6 s (specialist) and 0.5-3.6 s (patient; target 3 s), "
    "640x360 at full rate 6.6-10.6 s and 4.5-7.6 s (target 10 s). What is left: up to one "
    "paused-probe cycle (4-5 s) between the lift and the next probe, 1 s of probe, then about "
    "1.5 s for the patient's Chromium to restart its camera at the estimate it kept in the cap",
    strict=False,
)
def test_60_kbps_lifted_video_comes_back_quickly() -> None:
    result = result_of("60k")
    why = _show(result)
    for side in SIDES:
        rows = _rows(result, side)
        first = first_time(rows, LIFTED_AT + 0.5, lambda r: r.fps > 0)
        full = first_time(rows, LIFTED_AT + 0.5, _full_360p)
        assert first is not None and first <= 3, (side, why)
        assert full is not None and full <= 10, (side, why)


# -- uncapped ------------------------------------------------------------------------------


def test_uncapped_nobody_is_paused_for_bandwidth() -> None:
    result = result_of("uncapped")
    why = _show(result)
    for side in SIDES:
        figures = result[side]["figures"]
        assert figures["bandwidth_pauses"] == 0, why
        assert figures["reconnects"] == 0, why
        assert figures["steady"]["mean_fps"] >= 15, why
        assert figures["steady"]["min_height"] >= 360, why


# -- a satellite-like path: 600 ms round trip, 1 Mbit/s, 1 % random loss each way -------------


def test_satellite_clean_audio_and_no_reconnection() -> None:
    result = result_of("satellite")
    why = _show(result)
    for side in SIDES:
        figures = result[side]["figures"]
        assert figures["reconnects"] == 0, why
        assert figures["steady"]["concealment"] < 0.02, why
        assert figures["bandwidth_pauses"] == 0, why


@pytest.mark.xfail(
    reason="issue 17, reached in 5 of 5 runs since the upstream NACK fix (longest freeze "
    "0.59-0.70 s both sides; before: 3.7 s, the server dropped every late repair), but not "
    "guaranteed: a lost packet whose retransmission is lost too (1 % each way) needs a second "
    "round trip, 1.3 s on this path, which only FEC would avoid",
    strict=False,
)
def test_satellite_no_freeze_over_one_second() -> None:
    result = result_of("satellite")
    why = _show(result)
    for side in SIDES:
        assert result[side]["figures"]["steady"]["longest_freeze"] <= 1.0, why
