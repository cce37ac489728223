"""The soak's report: report.json, report.md and soak.png (resources over time)."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.scenario import Scenario
from benchmarks.soak import RESOURCES, SoakResult, SoakSample

UNITS = {"rss_mb": "MB", "fds": "descriptors", "tasks": "tasks", "threads": "threads"}


def markdown(scenario: Scenario, result: SoakResult, interrupted: bool) -> str:
    samples = result.samples
    last = samples[-1] if samples else None
    minutes = (last.t / 60) if last else 0.0
    rate = (last.joins - result.idle.joins) / last.t if last and last.t else 0.0
    lines = [
        f"# Soak: {scenario.name}",
        "",
        f"{scenario.description}. {result.rooms} rooms, {minutes:.1f} min"
        f"{' (interrupted)' if interrupted else ''}; {result.arrivals} arrivals planned, "
        f"{rate:.2f} joins/s completed (rejoins included); 1 arrival in "
        f"{scenario.publish_every or '-'} publishes, 1 in {scenario.reconnect_every or '-'} "
        f"drops its connection and rejoins. Machine: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "",
        f"Slopes are least squares over the samples after {scenario.warmup:g} s, per hour.",
        "",
        "| resource | idle | first after warm-up | last | max | after everyone left "
        "| slope per hour |",
        "|---|---|---|---|---|---|---|",
    ]
    warm = [s for s in samples if s.t >= scenario.warmup] or samples
    for name in RESOURCES:
        values = [getattr(s, name) for s in samples]
        drained = getattr(result.drained, name) if result.drained else None
        lines.append(
            f"| {name} ({UNITS[name]}) | {getattr(result.idle, name)} | "
            f"{getattr(warm[0], name) if warm else '-'} | {values[-1] if values else '-'} | "
            f"{max(values) if values else '-'} | {'-' if drained is None else drained} | "
            f"{_fmt(result.slopes_per_hour.get(name))} |"
        )
    if last is not None:
        cpu = last.cpu_s - result.idle.cpu_s
        lines += [
            "",
            f"Joins completed by the server: {last.joins - result.idle.joins}; reconnections "
            f"(drop without leave, rejoin): {last.reconnections}; failed joins: {last.errors}; "
            f"server CPU {cpu:.0f} s ({cpu / last.t:.0%} of a core).",
        ]
    if result.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in result.notes]]
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:+g}"


def plot(scenario: Scenario, result: SoakResult, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(5, 1, figsize=(9, 11), sharex=True)
    minutes = [s.t / 60 for s in result.samples]
    panels: list[tuple[str, str]] = [(n, f"{n} ({UNITS[n]})") for n in RESOURCES]
    panels.append(("participants", "participants on the server"))
    for ax, (name, label) in zip(axes, panels, strict=True):
        ax.plot(minutes, [getattr(s, name) for s in result.samples], linewidth=1)
        ax.axhline(getattr(result.idle, name), color="grey", linestyle=":", label="idle")
        if result.drained is not None:
            ax.axhline(
                getattr(result.drained, name), color="tab:red", linestyle="--", label="drained"
            )
        slope = result.slopes_per_hour.get(name)
        title = label + ("" if slope is None else f" — slope {slope:+g}/h")
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[-1].set_xlabel("minutes")
    fig.suptitle(f"{scenario.name}: {result.rooms} rooms")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(
    scenario: Scenario, result: SoakResult, directory: Path, interrupted: bool = False
) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "scenario": asdict(scenario),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "interrupted": interrupted,
        "result": result.to_json(),
    }
    paths = {
        "json": directory / "report.json",
        "markdown": directory / "report.md",
        "soak": directory / "soak.png",
    }
    paths["json"].write_text(json.dumps(document, indent=2))
    paths["markdown"].write_text(markdown(scenario, result, interrupted))
    plot(scenario, result, paths["soak"])
    return paths


__all__ = ["SoakSample", "write"]
