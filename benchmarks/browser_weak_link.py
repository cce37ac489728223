"""The weak-link matrix with real Chromium at both ends (benchmarks/browser_link.py).

    python -m benchmarks run browser_weak_link                   # every case
    python -m benchmarks run browser_weak_link --cases 250k,60k --repeat 3

Each case is a fresh server and two fresh browsers: the specialist on an
uncapped link, the patient behind ``tbf`` in both directions. Cases:

- ``250k``: 250 kbit/s both ways for ``seconds``; figures over [10 s, end).
- ``60k``: uncapped for 10 s, 60 kbit/s for ``seconds``, then uncapped for
  25 s: reconnections, audio concealment from 3 s into the cap, when each
  side was told its video is paused and what its tile said, and after the
  cap is lifted the first frame and 640x360 at full rate.
- ``uncapped``: no cap for ``seconds``: nobody may be paused for bandwidth.
- ``satellite``: the patient's browser in a namespace holding only loopback,
  every packet through a user-space link of 1 Mbit/s, 300 ms each way
  (600 ms round trip) and 1 % random loss (tests/helpers/ns_bridge.py).

Writes report.json (every second of both sides, every signalling message
that matters, the figures) and report.md, plus a timeline PNG per case.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from benchmarks.browser_link import BrowserConsult, Phase
from benchmarks.browser_link_metrics import (
    FULL_RATE_FPS,
    Row,
    first_time,
    messages_of,
    rows,
    summarize,
)
from benchmarks.runner import scrape
from tests.helpers.netns_link import netns_available
from tests.helpers.udp_relay import LinkSettings

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "browser_weak_link.yaml"
REPO = Path(__file__).resolve().parent.parent
SIDES = ("specialist", "patient")
KEPT_MESSAGES = (
    "track_paused",
    "publisher_layers",
    "publisher_audio",
    "publisher_link",
    "quality",
    "reconnect",
)
CASES = ("250k", "60k", "uncapped", "satellite")
# what a tile says when a video is paused for our link / when the sender's link is weak
WATCHED_TEXTS = ("Video paused: weak connection", "'s connection is weak")
# 600 ms round trip, 1 Mbit/s, 1 % random loss each way (tests/helpers/ns_bridge.py)
SATELLITE = LinkSettings(
    rate_bps=1_000_000, burst_bytes=16_000, queue_ms=300, delay_ms=300, loss=0.01
)


async def run_case(case: str, seconds: float) -> dict[str, Any]:
    """One case: the consult, its per-second rows, its figures."""
    initial: float | None = 250_000 if case == "250k" else None
    phases: list[Phase] = []
    total = seconds
    cap_at = lifted_at = None
    if case == "60k":
        cap_at, lifted_at = 10.0, 10.0 + seconds
        phases = [Phase(cap_at, 60_000), Phase(lifted_at, None)]
        total = lifted_at + 25.0
    satellite = SATELLITE if case == "satellite" else None
    async with BrowserConsult(
        patient_rate_bps=initial, room=f"bench-{case}", satellite=satellite
    ) as consult:
        await consult.start()
        await consult.watch_texts(WATCHED_TEXTS)
        started = time.monotonic()
        await consult.record(total, phases)
        assert consult.clinic is not None and consult.patient is not None
        sides = {"specialist": consult.clinic, "patient": consult.patient}
        result: dict[str, Any] = {"case": case, "seconds": round(time.monotonic() - started, 1)}
        for name, side in sides.items():
            table = rows(consult.samples, name)
            messages = [
                (round(t, 2), m) for t, m in side.messages if m.get("type") in KEPT_MESSAGES
            ]
            result[name] = {
                "rows": [asdict(r) for r in table],
                "messages": messages,
                "figures": figures(case, table, side.messages, cap_at, lifted_at, total),
            }
            # the raw video stats (NACKs, PLIs, keyframes, drops; what it sends): diagnosis
            result[name]["video_stats"] = [
                (round(s.t, 2), s.data.get("video"), s.data.get("out"))
                for s in consult.samples
                if s.side == name
            ]
            reasons = [s.data.get("reconnect_reasons") for s in consult.samples if s.side == name]
            result[name]["figures"]["reconnect_reasons"] = next(
                (r for r in reversed(reasons) if r), []
            )
            if cap_at is not None:  # when the tile first said so, within 0.1 s
                result[name]["figures"]["tile_text_after_s"] = {
                    key: round(at - cap_at, 2) for key, at in side.text_seen.items()
                }
        if consult.server is not None:  # the server's own counters (NACKs, PLIs, RTX)
            counters = await scrape(consult.server.url)
            result["server_counters"] = {
                k: v for k, v in counters.items() if k.startswith("digiclinic_") and "_total" in k
            }
        result["link_samples"] = consult.link_samples
        result["server_log_tail"] = consult.server.stderr()[-4000:] if consult.server else ""
        if consult.bridge is not None:  # the satellite path: what its link model did
            result["link"] = {
                "up": asdict(consult.bridge.up_counters),
                "down": asdict(consult.bridge.down_counters),
            }
        return result


def figures(
    case: str,
    table: list[Row],
    messages: list[tuple[float, dict[str, Any]]],
    cap_at: float | None,
    lifted_at: float | None,
    total: float,
) -> dict[str, Any]:
    paused = [
        (t, m)
        for t, m in messages_of(messages, "track_paused")
        if m.get("reason") == "bandwidth" and m.get("paused")
    ]
    out: dict[str, Any] = {
        "reconnects": table[-1].reconnects if table else None,
        "bandwidth_pauses": len(paused),
        "publisher_layer_changes": len(messages_of(messages, "publisher_layers")),
    }
    if case in ("250k", "uncapped", "satellite"):
        out["steady"] = asdict(summarize(table, 10.0, total + 1))
        out["first_pause_at"] = paused[0][0] if paused else None
    if case == "60k" and cap_at is not None and lifted_at is not None:
        out["before_cap"] = asdict(summarize(table, 2.0, cap_at))
        out["capped"] = asdict(summarize(table, cap_at + 3.0, lifted_at))
        told = [t for t, _ in paused if t >= cap_at]
        out["told_paused_after_s"] = round(told[0] - cap_at, 2) if told else None
        weak = [t for t, m in messages_of(messages, "publisher_link", cap_at) if m.get("weak")]
        out["told_publisher_weak_after_s"] = round(weak[0] - cap_at, 2) if weak else None
        out["tile_says_paused_weak_after_s"] = first_time(
            table, cap_at, lambda r: "video paused: weak connection" in r.tile_text.lower()
        )
        out["tile_says_their_link_weak_after_s"] = first_time(
            table, cap_at, lambda r: "'s connection is weak" in r.tile_text.lower()
        )
        out["first_frame_after_lift_s"] = first_time(table, lifted_at + 0.5, lambda r: r.fps > 0)
        out["full_640x360_after_lift_s"] = first_time(
            table, lifted_at + 0.5, lambda r: r.height >= 360 and r.fps >= FULL_RATE_FPS
        )
        out["after_lift"] = asdict(summarize(table, lifted_at, total + 1))
    return out


def write_timeline(result: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - optional (bench extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(4, 2, figsize=(14, 10), sharex=True)
    for col, side in enumerate(SIDES):
        table = result[side]["rows"]
        t = [r["t"] for r in table]
        axes[0][col].set_title(f"{side} receives ({result['case']})")
        axes[0][col].plot(t, [r["height"] for r in table], label="height (px)")
        axes[0][col].set_ylabel("decoded height")
        axes[1][col].plot(t, [r["fps"] for r in table], color="tab:green")
        axes[1][col].set_ylabel("fps")
        quality = [(ts, m) for ts, m in result[side]["messages"] if m.get("type") == "quality"]
        axes[2][col].plot(
            [ts for ts, _ in quality],
            [m.get("estimate_bps", 0) / 1000 for _, m in quality],
            label="server's downlink estimate",
        )
        axes[2][col].plot(
            t, [(r["uplink_bps"] or 0) / 1000 for r in table], label="Chrome's uplink estimate"
        )
        axes[2][col].plot(
            t, [(r["rate_bps"] or 0) / 1000 for r in table], "k--", label="patient link cap"
        )
        axes[2][col].set_ylabel("kbit/s")
        axes[2][col].legend(fontsize=7)
        conceal = [0.0]
        for a, b in itertools.pairwise(table):
            samples = b["audio_samples"] - a["audio_samples"]
            conceal.append((b["concealed"] - a["concealed"]) / samples if samples > 0 else 0.0)
        axes[3][col].plot(t, [100 * c for c in conceal], color="tab:red")
        axes[3][col].set_ylabel("audio concealed %")
        axes[3][col].set_xlabel("s")
        for ts, m in result[side]["messages"]:
            kind = m.get("type")
            if kind == "track_paused":
                color = "red" if m.get("paused") else "green"
            elif kind == "publisher_layers":
                color = "purple"
            else:
                continue
            for row in axes:
                row[col].axvline(ts, color=color, alpha=0.3, linewidth=1)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_report(results: list[dict[str, Any]], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.json").write_text(json.dumps(results, indent=1, default=str))
    lines = ["# Weak links with real Chromium at both ends", ""]
    for i, result in enumerate(results):
        lines.append(f"## {result['case']} (run {i + 1})")
        for side in SIDES:
            lines.append(f"- **{side}**: `{json.dumps(result[side]['figures'])}`")
        png = output / f"timeline-{result['case']}-{i + 1}.png"
        write_timeline(result, png)
        lines.append(f"\n![timeline]({png.name})\n")
    (output / "report.md").write_text("\n".join(lines) + "\n")


def run_cli(
    cases: list[str] | None, repeat: int, seconds: float | None, output: Path | None
) -> int:
    ok, why = netns_available()
    if not ok:
        print(f"error: {why}", file=sys.stderr)
        return 2
    scenario = yaml.safe_load(SCENARIO.read_text())
    seconds = seconds or float(scenario.get("seconds", 60))
    chosen = cases or list(scenario.get("cases", CASES))
    stamp = time.strftime("browser-weak-%Y%m%d-%H%M%S")
    output = output or REPO / "artifacts" / "benchmarks" / stamp
    results: list[dict[str, Any]] = []
    try:
        for _ in range(repeat):
            for case in chosen:
                print(f"==> {case}", file=sys.stderr)
                results.append(asyncio.run(run_case(case, seconds)))
                for side in SIDES:
                    figures_json = json.dumps(results[-1][side]["figures"])
                    print(f"    {side}: {figures_json}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted: writing what finished", file=sys.stderr)
    write_report(results, output)
    print((output / "report.md").read_text())
    print(f"written: {output}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    cases = args.cases.split(",") if args.cases else None
    return run_cli(cases, args.repeat, args.duration, args.output)


if __name__ == "__main__":
    sys.exit(main())
