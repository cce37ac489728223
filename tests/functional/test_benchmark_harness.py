"""A short smoke run of every benchmark scenario: the report is produced and adds up."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

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
