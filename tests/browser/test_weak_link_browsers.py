"""Real Chromium at both ends of a capped link: what the patient and the specialist experience.

Each case is one consult through the widget (benchmarks/browser_link.py):
the specialist's browser on an uncapped link, the patient's behind ``tbf``
(burst 4 kB, latency 300 ms) in *both* directions, each browser in its own
network namespace, the server a separate process. Every figure is read
from the browsers' getStats (frames decoded, frame size, freezes, audio
concealment), from their pages (the tile's text) and from the signalling
they received. Each case runs once here (about a minute or more each);
repeated runs and the timelines are the benchmark's
(``python -m benchmarks run browser_weak_link --repeat N``).

Marked ``slow``: ``./scripts/test.sh -m "not slow"`` leaves them out while
iterating.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest

from benchmarks.browser_link_metrics import FULL_RATE_FPS, Row, first_time
from benchmarks.browser_weak_link import SIDES, run_case
from tests.helpers.chromium_netns import chromium_executable
from tests.helpers.netns_link import skip_unless_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(autouse=True)
def _requirements() -> None:
    skip_unless_available()
    if chromium_executable() is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("Playwright for Python is not installed")


def _show(result: dict[str, Any]) -> str:
    """The figures and the last rows of both sides, for a failure message."""
    lines = []
    for side in SIDES:
        lines.append(f"{side}: {json.dumps(result[side]['figures'])}")
        for row in result[side]["rows"][-8:]:
            lines.append(f"  {row}")
    return "\n".join(lines)


def _full_360p(row: Row) -> bool:
    return row.height >= 360 and row.fps >= FULL_RATE_FPS


def _rows(result: dict[str, Any], side: str) -> list[Row]:
    return [Row(**row) for row in result[side]["rows"]]


async def test_250_kbps_both_ways_each_side_sees_smooth_video_and_hears_clean_audio() -> None:
    result = await run_case("250k", 60)
    why = _show(result)
    for side in SIDES:
        figures = result[side]["figures"]
        steady = figures["steady"]  # from 10 s on
        assert figures["reconnects"] == 0, why
        assert steady["mean_fps"] >= 15 and steady["min_height"] >= 180, why
        assert steady["freezes_per_minute"] <= 1, why
        assert steady["concealment"] < 0.02, why
        assert steady["size_changes"] <= 2, why  # in the test's one minute
        assert figures["publisher_layer_changes"] <= 2, why  # in one minute
        assert figures["bandwidth_pauses"] == 0, why


async def test_60_kbps_both_ways_audio_holds_video_pauses_with_the_right_words() -> None:
    """Cap at 10 s, 60 kbit/s for 60 s, lifted for 25 s."""
    result = await run_case("60k", 60)
    why = _show(result)
    cap_at, lifted_at = 10.0, 70.0
    patient, specialist = result["patient"]["figures"], result["specialist"]["figures"]
    for figures in (patient, specialist):
        assert figures["reconnects"] == 0, why
        assert figures["capped"]["concealment"] < 0.05, why  # from 3 s into the cap
    # the patient's own link cannot carry the specialist's video: paused, and said so
    assert patient["told_paused_after_s"] is not None and patient["told_paused_after_s"] <= 5, why
    assert patient["tile_says_paused_weak_after_s"] is not None, why
    assert patient["tile_says_paused_weak_after_s"] <= 5, why
    # the specialist's link is fine: the patient's uplink is the weak side, and the tile says so
    told = specialist["told_publisher_weak_after_s"]
    assert told is not None and told <= 5, why
    says = specialist["tile_says_their_link_weak_after_s"]
    assert says is not None and says <= 5, why
    assert specialist["bandwidth_pauses"] == 0, why  # never blamed on the specialist's own link
    # once the cap is lifted, the video comes back quickly on both sides
    for side in SIDES:
        rows = _rows(result, side)
        first = first_time(rows, lifted_at + 0.5, lambda r: r.fps > 0)
        full = first_time(
            rows, lifted_at + 0.5, lambda r: r.height >= 360 and r.fps >= FULL_RATE_FPS
        )
        assert first is not None and first <= 3, (side, why)
        assert full is not None and full <= 10, (side, why)
    assert cap_at < lifted_at


async def test_uncapped_nobody_is_paused_for_bandwidth() -> None:
    result = await run_case("uncapped", 60)
    why = _show(result)
    for side in SIDES:
        figures = result[side]["figures"]
        assert figures["bandwidth_pauses"] == 0, why
        assert figures["reconnects"] == 0, why
        assert figures["steady"]["mean_fps"] >= 15, why
        assert figures["steady"]["min_height"] >= 360, why


async def test_satellite_path_no_long_freeze_and_clean_audio() -> None:
    """600 ms round trip, 1 Mbit/s, 1 % random loss each way (a user-space link)."""
    result = await run_case("satellite", 60)
    why = _show(result)
    for side in SIDES:
        figures = result[side]["figures"]
        steady = figures["steady"]
        assert figures["reconnects"] == 0, why
        assert steady["longest_freeze"] <= 1.0, why
        assert steady["concealment"] < 0.02, why
        assert figures["bandwidth_pauses"] == 0, why
