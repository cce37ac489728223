"""What people experienced in a two-browser consult (benchmarks/browser_link.py), as figures.

Every figure comes from what the browsers measured (getStats) or showed
(the tile's text), or from what the server told them (signalling messages
with their arrival time). Windows are [start, end) in seconds since the
recording started.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.browser_link import Sample

FULL_RATE_FPS = 15.0  # the fake camera sends 20 fps; a second at 15 or more counts as full rate


@dataclass
class Row:
    """One second of one side."""

    t: float
    rate_bps: float | None
    fps: float  # frames decoded in the last second (remote camera)
    width: int
    height: int
    freezes: int  # cumulative freezeCount
    freeze_seconds: float
    audio_lost: int  # cumulative packetsLost (audio)
    audio_received: int
    concealed: int  # cumulative concealedSamples
    audio_samples: int  # cumulative totalSamplesReceived
    uplink_bps: float | None  # Chrome's own send-side estimate of its uplink
    sending: str  # the layers the browser sends, e.g. "q180@20 h360@20"
    reconnects: int
    tile_level: str | None
    tile_text: str


def rows(samples: list[Sample], side: str) -> list[Row]:
    out: list[Row] = []
    last_frames = None
    last_t = None
    for sample in samples:
        if sample.side != side:
            continue
        d = sample.data
        video = d.get("video") or {}
        audio = d.get("audio") or {}
        frames = video.get("framesDecoded", 0)
        fps = 0.0
        if last_frames is not None and last_t is not None and sample.t > last_t:
            fps = max(0, frames - last_frames) / (sample.t - last_t)
        last_frames, last_t = frames, sample.t
        tile = d.get("tile") or {}
        sending = " ".join(
            f"{o.get('rid')}{o.get('height')}@{round(o.get('fps') or 0)}"
            for o in d.get("out") or []
            if o.get("fps")
        )
        out.append(
            Row(
                t=round(sample.t, 2),
                rate_bps=sample.rate_bps,
                fps=round(fps, 1),
                width=video.get("width", 0),
                height=video.get("height", 0),
                freezes=video.get("freezeCount", 0),
                freeze_seconds=video.get("freezeSeconds", 0.0),
                audio_lost=audio.get("packetsLost", 0),
                audio_received=audio.get("packetsReceived", 0),
                concealed=audio.get("concealed", 0),
                audio_samples=audio.get("samples", 0),
                uplink_bps=d.get("uplink_bps"),
                sending=sending,
                reconnects=d.get("reconnects", 0),
                tile_level=tile.get("level"),
                tile_text=tile.get("text", ""),
            )
        )
    return out


def _window(table: list[Row], start: float, end: float) -> list[Row]:
    return [r for r in table if start <= r.t < end]


def _delta(first: Row, last: Row, name: str) -> float:
    return float(getattr(last, name)) - float(getattr(first, name))


@dataclass
class Summary:
    seconds: float
    mean_fps: float
    full_rate_share: float  # share of seconds at >= FULL_RATE_FPS
    min_height: int  # the smallest decoded height (0: no video at some point)
    freezes: int
    freezes_per_minute: float
    freeze_seconds: float
    longest_freeze: float  # seconds (a freeze ends within one sample: its share of the total)
    concealment: float  # concealed / received audio samples
    audio_lost: int
    reconnects: int
    size_changes: int  # decoded resolution changes (a layer switch seen by the viewer)
    size_changes_per_minute: float


def summarize(table: list[Row], start: float, end: float) -> Summary:
    window = _window(table, start, end)
    if len(window) < 2:
        return Summary(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    first, last = window[0], window[-1]
    seconds = max(last.t - first.t, 1e-3)
    samples = _delta(first, last, "audio_samples")
    freezes = int(_delta(first, last, "freezes"))
    changes = sum(
        1 for a, b in itertools.pairwise(window) if a.height and b.height and a.height != b.height
    )
    longest = max(
        (
            b.freeze_seconds - a.freeze_seconds
            for a, b in itertools.pairwise(window)
            if b.freezes > a.freezes
        ),
        default=0.0,
    )
    return Summary(
        seconds=round(seconds, 1),
        mean_fps=round(sum(r.fps for r in window[1:]) / (len(window) - 1), 1),
        full_rate_share=round(
            sum(1 for r in window[1:] if r.fps >= FULL_RATE_FPS) / (len(window) - 1), 2
        ),
        min_height=min(r.height for r in window),
        freezes=freezes,
        freezes_per_minute=round(freezes * 60 / seconds, 2),
        freeze_seconds=round(_delta(first, last, "freeze_seconds"), 2),
        longest_freeze=round(longest, 2),
        concealment=round(_delta(first, last, "concealed") / samples, 4) if samples else 1.0,
        audio_lost=int(_delta(first, last, "audio_lost")),
        reconnects=int(_delta(first, last, "reconnects")),
        size_changes=changes,
        size_changes_per_minute=round(changes * 60 / seconds, 2),
    )


def first_time(table: list[Row], after: float, ok: Any) -> float | None:
    """Seconds from ``after`` to the first row (at or after it) for which ``ok(row)``."""
    for row in table:
        if row.t >= after and ok(row):
            return round(row.t - after, 2)
    return None


def messages_of(
    messages: list[tuple[float, dict[str, Any]]], kind: str, start: float = 0.0
) -> list[tuple[float, dict[str, Any]]]:
    return [(t, m) for t, m in messages if m.get("type") == kind and t >= start]


def as_dict(summary: Summary) -> dict[str, Any]:
    return asdict(summary)
