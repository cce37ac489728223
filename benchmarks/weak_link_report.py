"""The weak-link report: one row per downlink rate, in report.json, report.md and a plot."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.weak_link_analysis import (
    Event,
    frame_rate,
    freezes,
    keyframe_samples,
    layer_changes,
    layer_state,
    mean_rate_bps,
    metric_samples,
    paused_for_bandwidth,
    paused_intervals,
    quality_samples,
    sequence_loss,
    settle_time,
)

if TYPE_CHECKING:
    from benchmarks.weak_link import RateRun, WeakLinkScenario

STEADY_MIN = 8.0  # seconds: when nothing settled, the steady figures use the last half


def analyze(run: RateRun, scenario: WeakLinkScenario) -> dict[str, Any]:
    sub = run.subscriber
    end = float(sub.get("ended_s") or scenario.seconds)
    events: list[tuple[float, Event]] = [(float(t), e) for t, e in sub.get("events", [])]
    quality = quality_samples(events)
    from_metrics, metric_estimates = metric_samples(run.metrics, sub.get("participant_id"))
    settle: float | None = None
    if quality:
        samples = [(t, layer_state(e)) for t, e in quality]
        source = "server quality events"
        settle = settle_time(samples, end, scenario.settle_hold)
    elif from_metrics:
        # the server's view when its events did not reach the subscriber; the series
        # end when the subscriber leaves the server
        samples = from_metrics
        source = "server /metrics"
        settle = settle_time(samples, min(end, samples[-1][0] + 1.0), scenario.settle_hold)
    else:
        # the subscriber's own view names the layer but cannot tell a settled choice
        # from video that stopped arriving: no settle time from it
        samples = keyframe_samples(sub.get("keyframes", []))
        source = "keyframe sizes seen by the subscriber"
    steady_from = settle if settle is not None else max(end / 2, end - STEADY_MIN)
    if sub.get("first_video_s") is not None:
        steady_from = max(steady_from, float(sub["first_video_s"]))
    last = quality[-1][1] if quality else {}
    paused = paused_intervals(events, end)
    frames = [float(t) for t in sub.get("frames", [])]
    fr = freezes(frames, end, scenario.freeze_gap_ms / 1000, paused)
    audio_seq = sub.get("audio_seq", [])
    rembs = sub.get("rembs", [])
    keyframes = sub.get("keyframes", [])
    layer = samples[-1][1] if samples else None
    if quality and last.get("width") and layer != "paused":
        layer = f"{layer} ({last['width']}x{last['height']})"
    elif not quality and not from_metrics and layer is not None:
        layer = f"{layer} (keyframes)"
    notes = _notes(sub, events, quality, end)
    for t, cap in run.audio_caps:
        notes.append(
            f"publisher asked for {cap // 1000} kbit/s Opus at {t:.1f} s (publisher_audio)"
            if cap
            else f"publisher's own Opus bitrate again at {t:.1f} s (publisher_audio)"
        )
    return {
        "rate_kbps": run.rate_kbps,
        "link": run.link_kind,
        "publisher": run.publisher_kind,
        "error": sub.get("error"),
        "layer_source": source,
        "settle_s": settle,
        "layer": layer,
        "temporal": last.get("temporal"),
        "layer_changes": layer_changes(samples),
        "paused_for_bandwidth": (
            paused_for_bandwidth(events)
            if quality or not from_metrics
            else any(state == "paused" for _t, state in from_metrics)
        ),
        "paused_s": round(sum(i.end - i.start for i in paused), 2),
        "audio_loss": sequence_loss(audio_seq),
        "audio_loss_steady": sequence_loss(audio_seq, steady_from),
        "freezes": fr.count,
        "freeze_longest_s": fr.longest_s,
        "freeze_total_s": fr.total_s,
        "freeze_gaps": fr.gaps,
        "frames": len(frames),
        "fps_steady": frame_rate(frames, steady_from, end),
        "first_video_s": sub.get("first_video_s"),
        "received_kbps_steady": _kbps(
            mean_rate_bps(sub.get("bytes_per_second", []), steady_from, end)
        ),
        "estimate_kbps": _kbps(
            last.get("estimate_bps")
            if quality
            else (metric_estimates[-1][1] if metric_estimates else None)
        ),
        "remb_kbps": _kbps(rembs[-1][1]) if rembs else None,
        "last_keyframe": f"{keyframes[-1][1]}x{keyframes[-1][2]}" if keyframes else None,
        "link_drops": run.link_stats.get("tbf_drops", run.link_stats.get("relay_drops")),
        "nacks_sent": sub.get("nacks_sent"),
        "plis_sent": sub.get("plis_sent"),
        "recovered": sub.get("recovered"),
        "server_cpu_share": round(run.server_cpu_s / run.window_s, 3) if run.window_s else 0.0,
        "audio_kbps": _kbps(
            sub.get("audio_bytes", 0) * 8 / (end - sub["first_media_s"])
            if sub.get("first_media_s") is not None and end > sub["first_media_s"]
            else None
        ),
        "notes": notes,
        "steady_from_s": round(steady_from, 2),
        "duration_s": end,
    }


def _notes(
    sub: dict[str, Any], events: list[tuple[float, Event]], quality: list[Any], end: float
) -> list[str]:
    notes = []
    if sub.get("error"):
        notes.append(f"subscriber error: {sub['error']}")
    if not quality:
        notes.append("no quality event reached the subscriber")
    last_media = sub.get("last_media_s")
    if last_media is not None and end - float(last_media) > 3.0:
        notes.append(f"media stopped arriving at {float(last_media):.1f} s")
    for t, event in events:
        if event.get("type") == "client_state" and event.get("state") == "closed":
            notes.append(f"signalling closed at {t:.1f} s")
    return notes


def _kbps(bps: float | None) -> float | None:
    return None if bps is None else round(float(bps) / 1000, 1)


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, spec)


def markdown(scenario: WeakLinkScenario, rows: list[dict[str, Any]]) -> str:
    link = rows[0]["link"] if rows else scenario.link
    publisher = rows[0]["publisher"] if rows else scenario.publisher
    how = {
        "netns": "tbf on a veth into a network namespace (signalling and media capped)",
        "relay": "the user-space relay's rate cap on loopback (media capped, signalling not)",
    }.get(link, link)
    lines = [
        f"# Benchmark: {scenario.name}",
        "",
        f"One {publisher} publisher (pre-encoded VP8 + Opus), one subscriber whose downlink is "
        f"capped by {how}; queue {scenario.queue_ms:g} ms; {scenario.seconds:g} s per rate from "
        f"the subscriber's join. Machine: {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}.",
        "",
        "| cap kbit/s | settle s | layer (final) | changes | paused for bandwidth | "
        "audio loss all / steady | freezes > "
        f"{scenario.freeze_gap_ms:g} ms (longest s) | fps steady | received kbit/s | "
        "estimate kbit/s | REMB kbit/s | link drops | server CPU |",
        "|" + "---|" * 13,
    ]
    for r in rows:
        paused = _fmt(r["paused_for_bandwidth"])
        if r["paused_s"]:
            paused += f" ({r['paused_s']:g} s)"
        lines.append(
            f"| {r['rate_kbps']} | {_fmt(r['settle_s'])} | {_fmt(r['layer'])} | "
            f"{r['layer_changes']} | {paused} | {_fmt(r['audio_loss'], '.1%')} / "
            f"{_fmt(r['audio_loss_steady'], '.1%')} | {r['freezes']} ({r['freeze_longest_s']:g}) | "
            f"{_fmt(r['fps_steady'])} | {_fmt(r['received_kbps_steady'])} | "
            f"{_fmt(r['estimate_kbps'])} | {_fmt(r['remb_kbps'])} | {_fmt(r['link_drops'])} | "
            f"{r['server_cpu_share']:.0%} |"
        )
    sources = sorted({r["layer_source"] for r in rows})
    lines += [
        "",
        f"Layer and settle time from: {', '.join(sources) or '-'}. *Settle* is when the "
        f"forwarded layer (or pause) last changed, provided it then held at least "
        f"{scenario.settle_hold:g} s to the end; '-' means it was still changing. *Steady* "
        "figures cover the time after settling (or the last half of the run). Freezes are "
        "gaps between video frames (marker bits) at the subscriber, not counting gaps the "
        "server announced as a pause, and counting video that stopped before the end.",
    ]
    notes = [f"- {r['rate_kbps']} kbit/s: {note}" for r in rows for note in r.get("notes", [])]
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


def plot(runs: list[RateRun], rows: list[dict[str, Any]], path: Path) -> Path | None:
    if not runs:
        return None
    import matplotlib  # noqa: PLC0415 - only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 2.2 * len(runs)), squeeze=False)
    for ax, run, row in zip(axes[:, 0], runs, rows, strict=True):
        sub = run.subscriber
        per_second = sub.get("bytes_per_second", [])
        if per_second:
            ax.step(
                [s + 1 for s, _b in per_second],
                [b * 8 / 1000 for _s, b in per_second],
                where="pre",
                label="received",
            )
        events = [(float(t), e) for t, e in sub.get("events", [])]
        quality = quality_samples(events)
        states, estimates = metric_samples(run.metrics, sub.get("participant_id"))
        if quality:  # what the subscriber was told; else what /metrics showed
            states = [(t, layer_state(e)) for t, e in quality]
            estimates = [(t, float(e.get("estimate_bps") or 0)) for t, e in quality]
        if estimates:
            ax.step(
                [t for t, _e in estimates],
                [e / 1000 for _t, e in estimates],
                where="post",
                label="server estimate",
            )
        previous = None
        for t, state in states:
            if state != previous:
                ax.annotate(state, (t, run.rate_kbps * 1.05), fontsize=7)
                previous = state
        rembs = sub.get("rembs", [])
        if rembs:
            ax.plot([t for t, _b in rembs], [b / 1000 for _t, b in rembs], ".", ms=2, label="REMB")
        for interval in paused_intervals(events, float(sub.get("ended_s") or 0)):
            ax.axvspan(interval.start, interval.end, color="grey", alpha=0.2)
        ax.axhline(run.rate_kbps, color="red", lw=0.8, ls="--", label="cap")
        ax.set_ylim(0, run.rate_kbps * 2.2)
        ax.set_xlim(0, max(float(sub.get("ended_s") or 0), 1.0))
        ax.set_ylabel("kbit/s")
        ax.set_title(
            f"{run.rate_kbps} kbit/s cap: layer {row['layer']}, settle {row['settle_s']} s",
            fontsize=9,
        )
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("seconds since the subscriber joined")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _build() -> dict[str, Any]:
    """The commit measured, and whether the server's packages had uncommitted changes."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "sfu", "signaling"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": head, "server_uncommitted_files": len(dirty)}


def write_weak_link_report(
    scenario: WeakLinkScenario, runs: list[RateRun], directory: Path, interrupted: bool = False
) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    rows = [analyze(run, scenario) for run in runs]
    document = {
        "scenario": asdict(scenario),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "build": _build(),
        "interrupted": interrupted,
        "results": rows,
        "runs": [asdict(run) for run in runs],
    }
    out = {"json": directory / "report.json", "markdown": directory / "report.md"}
    out["json"].write_text(json.dumps(document, indent=1))
    out["markdown"].write_text(markdown(scenario, rows))
    timeline = plot(runs, rows, directory / "timeline.png")
    if timeline is not None:
        out["timeline"] = timeline
    return out
