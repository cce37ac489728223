"""A short smoke run of every benchmark scenario: the report is produced and adds up."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from benchmarks.janus_process import janus_available
from benchmarks.report import write_report
from benchmarks.runner import run_scenario
from benchmarks.scenario import Scenario

SMOKE = {"fanout": 3, "consult_grid": 2, "specialist": 2, "churn": 1}


def quick(name: str) -> Scenario:
    scenario = Scenario.load(name)
    return dataclasses.replace(scenario, duration=2.0, settle=0.5, stay=2.0, gap=0.5)


@pytest.mark.parametrize("name", sorted(SMOKE))
async def test_scenario_smoke_run_writes_a_consistent_report(name: str, tmp_path: Path) -> None:
    scenario = quick(name)
    size = SMOKE[name]
    results = await run_scenario(scenario, [size], workers=2, baseline=False)
    paths = write_report(scenario, results, tmp_path)

    document = json.loads(paths["json"].read_text())
    assert document["scenario"]["name"] == name and not document["interrupted"]
    (result,) = document["results"]
    specs = scenario.plan(size)
    assert result["participants"] == len({s.key for s in specs})
    assert result["join_errors"] == 0
    publishers = {s.key for s in specs if s.publish_video}
    # what was sent is what the server received, and the server forwarded it
    assert result["packets_in_per_s"] > 40 * len(publishers) * 0.8
    assert result["packets_out_per_s"] > 0
    assert result["server_cpu_s"] > 0 and result["us_per_forwarded_packet"] > 0
    assert result["loss_max"] is not None and result["loss_max"] < 0.05
    subscribers = {s.key for s in specs if s.subscribe}
    assert set(result["loss_per_subscriber"]) <= subscribers
    assert len(result["loss_per_subscriber"]) >= min(len(subscribers), 1)
    assert result["latency_ms"]["samples"] > 10 and result["latency_ms"]["p50"] < 100
    assert result["join_to_first_frame_ms"]["count"] >= 1
    assert result["server_rss_mb"] > 10
    assert 0 < result["loadgen_cpu_share"] < 2.0
    markdown = paths["markdown"].read_text()
    assert f"| digiclinic | {size} |" in markdown
    for plot in ("cpu_per_packet", "latency", "loss"):
        assert paths[plot].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_fanout_against_janus_side_by_side(tmp_path: Path) -> None:
    """--compare-janus: both servers driven by the same load generator, both measured alike."""
    ok, why = janus_available()
    if not ok:
        pytest.skip(why)
    scenario = quick("fanout")
    results = await run_scenario(scenario, [3], workers=1, compare_janus=True)
    paths = write_report(scenario, results, tmp_path)

    assert [(r.server, r.size) for r in results] == [("digiclinic", 3), ("janus", 3)]
    for result in results:
        assert result.join_errors == 0, result.notes
        assert len(result.loss_per_subscriber) == 3, result.notes  # every subscriber got media
        assert result.loss_max is not None and result.loss_max < 0.05
        assert result.us_per_delivered_packet and result.us_per_delivered_packet > 0
        assert result.join_cpu_delivered_ms is not None
        # the publisher's send-time trailers pass through Janus untouched
        assert result.latency_ms["samples"] > 10 and (result.latency_ms["p50"] or 0) < 100
        assert result.rss_per_participant_kb is not None
    markdown = paths["markdown"].read_text()
    assert "## digiclinic vs Janus VideoRoom" in markdown
    assert "| 3 | " in markdown.split("## digiclinic vs Janus VideoRoom")[1]


async def test_soak_smoke_run_joins_drops_leaves_and_drains(tmp_path: Path) -> None:
    """A 20 s soak: seats publish, drop and rejoin, leave; the drained server holds nothing."""
    from benchmarks import soak, soak_report  # noqa: PLC0415 - only this test

    scenario = dataclasses.replace(
        Scenario.load("soak"), duration=20.0, stay=4.0, gap=1.0, sample_every=2.0, warmup=4.0
    )
    result = await soak.run_soak(scenario, rooms=1, workers=1)
    paths = soak_report.write(scenario, result, tmp_path)

    specs = scenario.plan(1)
    assert any(s.reconnect_at for s in specs) and any(s.publish_video for s in specs[1:])
    last = result.samples[-1]
    assert last.errors == 0
    assert last.reconnections >= 1
    assert last.joins - result.idle.joins >= len(specs) * 0.8
    assert max(s.participants for s in result.samples) >= 3
    assert max(s.tasks for s in result.samples) > result.idle.tasks
    # everyone left: the server is back to what it held before anyone came
    assert result.drained is not None
    assert result.drained.participants == 0 and result.drained.consumers == 0
    assert result.drained.tasks <= result.idle.tasks + 2, result.notes
    assert result.drained.fds <= result.idle.fds + 2, result.notes
    assert set(result.slopes_per_hour) == set(soak.RESOURCES)
    assert all(v is not None for v in result.slopes_per_hour.values())
    assert "| tasks (tasks) |" in paths["markdown"].read_text()
    assert paths["soak"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(paths["json"].read_text())["result"]["drained"]["participants"] == 0
