"""Benchmark reports: JSON for machines, Markdown for people, PNG plots for both."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.runner import StepResult
from benchmarks.scenario import Scenario


def _fmt(value: float | None, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def ratios(results: list[StepResult]) -> list[dict[str, Any]]:
    """digiclinic vs baseline at every size both were run at."""
    ours = {r.size: r for r in results if r.server == "digiclinic"}
    rows = []
    for base in (r for r in results if r.server == "baseline"):
        mine = ours.get(base.size)
        if mine is None:
            continue
        row: dict[str, Any] = {"size": base.size}
        row["cpu_share_ratio"] = (
            round(mine.server_cpu_share / base.server_cpu_share, 3)
            if base.server_cpu_share
            else None
        )
        row["digiclinic_cpu_share"] = mine.server_cpu_share
        row["baseline_cpu_share"] = base.server_cpu_share
        row["baseline_loss_max"] = base.loss_max
        rows.append(row)
    return rows


def markdown(scenario: Scenario, results: list[StepResult]) -> str:
    lines = [
        f"# Benchmark: {scenario.name}",
        "",
        f"{scenario.description}. {scenario.duration:g} s measured per size after a ramp of "
        f"{scenario.ramp:g} joins/s; video {scenario.video_bitrate / 1000:g} kbit/s"
        f"{' + Opus' if scenario.audio else ''}. Machine: {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}.",
        "",
        "| server | size | participants | server CPU | µs/fwd pkt | pkt/s in | pkt/s out | "
        "Mbit/s out | loss mean | loss max | latency p50/p95/p99 ms | "
        "join→first frame p50/p95/max ms | join CPU ms | RSS MB | KB/participant | loadgen CPU |",
        "|" + "---|" * 16,
    ]
    for r in results:
        lat, jff = r.latency_ms, r.join_to_first_frame_ms
        lines.append(
            f"| {r.server} | {r.size} | {r.participants} | {r.server_cpu_share:.0%} | "
            f"{_fmt(r.us_per_forwarded_packet)} | {r.packets_in_per_s:g} | {r.packets_out_per_s:g} "
            f"| {r.mbps_out:g} | {_fmt(r.loss_mean, '.2%')} | {_fmt(r.loss_max, '.2%')} | "
            f"{_fmt(lat['p50'])} / {_fmt(lat['p95'])} / {_fmt(lat['p99'])} | "
            f"{_fmt(jff['p50'])} / {_fmt(jff['p95'])} / {_fmt(jff.get('max'))} | "
            f"{_fmt(r.join_cpu_ms)} | {_fmt(r.server_rss_mb)} | "
            f"{_fmt(r.rss_per_participant_kb)} | {r.loadgen_cpu_share:.0%} |"
        )
    rows = ratios(results)
    if rows:
        lines += [
            "",
            "## digiclinic vs the MediaRelay baseline (same run)",
            "",
            "| size | digiclinic CPU | baseline CPU | ratio | baseline loss max |",
            "|---|---|---|---|---|",
        ]
        for row in rows:
            lines.append(
                f"| {row['size']} | {row['digiclinic_cpu_share']:.0%} | "
                f"{row['baseline_cpu_share']:.0%} | {_fmt(row['cpu_share_ratio'])} | "
                f"{_fmt(row['baseline_loss_max'], '.2%')} |"
            )
        lines += [
            "",
            "Server CPU (100 % = one core) for the same offered load: the same publishers and",
            "subscribers, same clip. The ratio is digiclinic / baseline; below 1, digiclinic",
            "needs less. Per-packet figures are not compared: the baseline re-encodes, so its",
            "packets are not the publisher's. Latency is not measured on the baseline (it decodes,",
            "so the load generator sends its VP8 without the timestamp trailer).",
        ]
    lines += _one_port_vs_ports(results)
    lines += _versus_janus(results)
    notes = [f"- {r.server} size {r.size}: {n}" for r in results for n in r.notes]
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


UDP_COLUMNS = ("digiclinic", "digiclinic-unbatched", "digiclinic-ports")


def _one_port_vs_ports(results: list[StepResult]) -> list[str]:
    """``--compare-udp``: the one media port (batched, unbatched) against a port per connection."""
    by = {(r.server, r.size): r for r in results}
    sizes = sorted({r.size for r in results if r.server == "digiclinic-ports"})
    if not sizes:
        return []
    lines = [
        "",
        "## One media UDP port vs a port per connection (same run)",
        "",
        "µs of server CPU per forwarded packet; ratios against a port per connection "
        "(below 1: cheaper).",
        "",
        "| size | one port, sendmmsg | one port, sendto | port per connection | "
        "ratio sendmmsg | ratio sendto | loss max (same order) |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        runs = [by.get((name, size)) for name in UDP_COLUMNS]
        cost = [None if r is None else r.us_per_forwarded_packet for r in runs]
        base = cost[2]
        ratio = [round(c / base, 3) if c and base else None for c in cost[:2]]
        loss = " / ".join("-" if r is None else _fmt(r.loss_max, ".2%") for r in runs)
        lines.append(
            f"| {size} | {_fmt(cost[0])} | {_fmt(cost[1])} | {_fmt(base)} | "
            f"{_fmt(ratio[0])} | {_fmt(ratio[1])} | {loss} |"
        )
    return lines


def plots(scenario: Scenario, results: list[StepResult], directory: Path) -> list[Path]:
    import matplotlib  # noqa: PLC0415 - only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    written = []
    series = sorted({r.server for r in results})
    cost: tuple[str, Callable[[StepResult], float | None]] = (
        "server CPU µs per forwarded packet",
        lambda r: r.us_per_forwarded_packet,
    )
    if "janus" in series:  # Janus has no packet counter of ours: count what was delivered
        cost = ("server CPU µs per delivered packet", lambda r: r.us_per_delivered_packet)
    panels: list[tuple[str, str, Callable[[StepResult], float | None]]] = [
        ("cpu_per_packet", *cost),
        ("latency", "latency p95 (ms)", lambda r: r.latency_ms["p95"]),
        ("rss", "server RSS KB per participant", lambda r: r.rss_per_participant_kb),
        ("join_cpu", "server CPU ms per join", lambda r: r.join_cpu_delivered_ms),
        (
            "loss",
            "loss, worst subscriber (%)",
            lambda r: None if r.loss_max is None else r.loss_max * 100,
        ),
    ]
    for name, label, value in panels:
        fig, ax = plt.subplots(figsize=(6, 4))
        for server in series:
            points = [(r.size, value(r)) for r in results if r.server == server]
            points = [(x, y) for x, y in points if y is not None]
            if points:
                xs, ys = zip(*sorted(points), strict=True)
                ax.plot(xs, ys, marker="o", label=server)
        if name == "latency" and ax.lines:
            ax.set_yscale("log")  # saturation turns milliseconds into seconds
        ax.set_xlabel("size (" + {"fanout": "subscribers"}.get(scenario.kind, "rooms") + ")")
        ax.set_ylabel(label)
        ax.set_title(f"{scenario.name}: {label}")
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend()
        path = directory / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def write_report(
    scenario: Scenario, results: list[StepResult], directory: Path, interrupted: bool = False
) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "scenario": asdict(scenario),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "interrupted": interrupted,
        "results": [asdict(r) for r in results],
        "ratios": ratios(results),
    }
    json_path = directory / "report.json"
    json_path.write_text(json.dumps(document, indent=2))
    md_path = directory / "report.md"
    md_path.write_text(markdown(scenario, results))
    out = {"json": json_path, "markdown": md_path}
    for path in plots(scenario, results, directory):
        out[path.stem] = path
    return out


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 2) if ours is not None and theirs else None


def _versus_janus(results: list[StepResult]) -> list[str]:
    """``--compare-janus``: digiclinic against Janus's VideoRoom, size by size (same run)."""
    by = {(r.server, r.size): r for r in results}
    sizes = sorted({r.size for r in results if r.server == "janus"})
    if not sizes:
        return []
    lines = [
        "",
        "## digiclinic vs Janus VideoRoom (same run, same load generator)",
        "",
        "Each figure digiclinic / Janus, then the ratio (below 1: digiclinic needs less).",
        "Packets are counted the same way for both: the media packets the subscribers'",
        "sequence numbers say were sent to them.",
        "",
        "| size | µs CPU / delivered pkt | ratio | latency p50 ms | latency p95 ms | ratio p95 | "
        "KB RSS / participant | ratio | join CPU ms | ratio | loss max | join→first frame p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        ours, theirs = by.get(("digiclinic", size)), by.get(("janus", size))
        if ours is None or theirs is None:
            continue
        cost = (ours.us_per_delivered_packet, theirs.us_per_delivered_packet)
        p50 = (ours.latency_ms["p50"], theirs.latency_ms["p50"])
        p95 = (ours.latency_ms["p95"], theirs.latency_ms["p95"])
        rss = (ours.rss_per_participant_kb, theirs.rss_per_participant_kb)
        join = (ours.join_cpu_delivered_ms, theirs.join_cpu_delivered_ms)
        loss = (ours.loss_max, theirs.loss_max)
        first = (ours.join_to_first_frame_ms["p95"], theirs.join_to_first_frame_ms["p95"])
        lines.append(
            f"| {size} | {_fmt(cost[0])} / {_fmt(cost[1])} | {_fmt(_ratio(*cost))} | "
            f"{_fmt(p50[0])} / {_fmt(p50[1])} | {_fmt(p95[0])} / {_fmt(p95[1])} | "
            f"{_fmt(_ratio(*p95))} | {_fmt(rss[0])} / {_fmt(rss[1])} | {_fmt(_ratio(*rss))} | "
            f"{_fmt(join[0])} / {_fmt(join[1])} | {_fmt(_ratio(*join))} | "
            f"{_fmt(loss[0], '.2%')} / {_fmt(loss[1], '.2%')} | "
            f"{_fmt(first[0])} / {_fmt(first[1])} |"
        )
    return lines
