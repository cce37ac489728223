"""What one weak-link run means: settle time, layer, audio loss, freezes, pauses.

Pure functions over what the link subscriber recorded (link_subscriber.py):
times are seconds since the subscriber started its join.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]
Sample = tuple[float, str]  # (t, state): a layer name, "paused", or a size "640x360"


@dataclass
class Interval:
    start: float
    end: float


def video_track_ids(events: list[tuple[float, Event]]) -> set[str]:
    """Ids of the video tracks offered to the subscriber."""
    ids = set()
    for _t, event in events:
        if event.get("type") == "subscriber_offer":
            for meta in event.get("tracks", []):
                if meta.get("kind") == "video":
                    ids.add(str(meta.get("track_id")))
    return ids


def _video_entry(event: Event, video_ids: set[str]) -> Event | None:
    tracks = event.get("tracks") or []
    for track in tracks:
        if str(track.get("track_id")) in video_ids:
            return dict(track)
    # no offer metadata: the first entry that has a spatial layer or a pause
    for track in tracks:
        if track.get("layer") is not None or track.get("paused"):
            return dict(track)
    return None


def quality_samples(events: list[tuple[float, Event]]) -> list[tuple[float, Event]]:
    """(t, the video track's entry of each "quality" event, plus its estimate_bps)."""
    video_ids = video_track_ids(events)
    samples = []
    for t, event in events:
        if event.get("type") != "quality":
            continue
        entry = _video_entry(event, video_ids)
        if entry is None:
            entry = {}
        entry["estimate_bps"] = event.get("estimate_bps")
        samples.append((t, entry))
    return samples


def layer_state(entry: Event) -> str:
    if entry.get("paused"):
        return "paused"
    layer = entry.get("layer")
    if layer is not None:
        return str(layer)
    if entry.get("spatial") is not None:
        return f"s{entry['spatial']}"
    return "none"


def paused_intervals(events: list[tuple[float, Event]], end: float) -> list[Interval]:
    """When the server said the video was paused (quality events or track_paused)."""
    video_ids = video_track_ids(events)
    changes: list[tuple[float, bool]] = []
    for t, event in events:
        kind = event.get("type")
        if kind == "track_paused" and (not video_ids or str(event.get("track_id")) in video_ids):
            changes.append((t, bool(event.get("paused"))))
        elif kind == "quality":
            entry = _video_entry(event, video_ids)
            if entry is not None:
                changes.append((t, bool(entry.get("paused"))))
    intervals: list[Interval] = []
    start: float | None = None
    for t, paused in sorted(changes, key=lambda c: c[0]):
        if paused and start is None:
            start = t
        elif not paused and start is not None:
            intervals.append(Interval(start, t))
            start = None
    if start is not None:
        intervals.append(Interval(start, end))
    return intervals


def paused_for_bandwidth(events: list[tuple[float, Event]]) -> bool | None:
    """Whether the server paused the video for bandwidth; None if it never said either way."""
    video_ids = video_track_ids(events)
    if not any(e.get("type") in ("quality", "track_paused") for _t, e in events):
        return None
    for _t, event in events:
        if event.get("type") == "track_paused" and event.get("paused"):
            if event.get("reason") == "bandwidth":
                return True
        elif event.get("type") == "quality":
            entry = _video_entry(event, video_ids)
            if entry and entry.get("paused") and entry.get("reason") == "bandwidth":
                return True
    return False


def settle_time(samples: list[Sample], end: float, hold: float = 5.0) -> float | None:
    """When the state last changed, if it then held for ``hold`` s to the end; else None.

    With no change at all, the first sample is the settle time.
    """
    if not samples:
        return None
    start = samples[0][0]
    state = samples[0][1]
    for t, s in samples[1:]:
        if s != state:
            state, start = s, t
    return round(start, 2) if end - start >= hold else None


def layer_changes(samples: list[Sample]) -> int:
    return sum(1 for a, b in itertools.pairwise(samples) if a[1] != b[1])


def keyframe_samples(keyframes: list[list[float]] | list[tuple[float, int, int]]) -> list[Sample]:
    """The subscriber's own view when the server says nothing: size of each keyframe."""
    return [(float(k[0]), f"{int(k[1])}x{int(k[2])}") for k in keyframes]


def sequence_loss(
    seqs: list[tuple[float, int]] | list[list[float]], start: float = 0.0
) -> float | None:
    """Share of packets missing between the first and last sequence seen from ``start``."""
    window = {int(s) for t, s in seqs if t >= start}
    if len(window) < 2:
        return None
    expected = max(window) - min(window) + 1
    return round(1 - len(window) / expected, 5)


def _overlaps(a: float, b: float, intervals: list[Interval]) -> bool:
    return any(i.start < b and a < i.end for i in intervals)


@dataclass
class Freezes:
    count: int = 0
    longest_s: float = 0.0
    total_s: float = 0.0
    gaps: list[tuple[float, float]] = field(default_factory=list)


def freezes(
    frames: list[float],
    end: float,
    gap_s: float = 0.5,
    paused: list[Interval] | None = None,
) -> Freezes:
    """Gaps between frame arrivals longer than ``gap_s``, and video that stopped early.

    A gap that overlaps a pause the server announced is not a freeze (the
    subscriber was told video stopped). Counting starts at the first frame.
    """
    paused = paused or []
    result = Freezes()
    if not frames:
        return result
    times = [*sorted(frames), end]
    for a, b in itertools.pairwise(times):
        if b - a > gap_s and not _overlaps(a, b, paused):
            result.count += 1
            result.total_s += b - a
            result.longest_s = max(result.longest_s, b - a)
            result.gaps.append((round(a, 3), round(b, 3)))
    result.longest_s = round(result.longest_s, 3)
    result.total_s = round(result.total_s, 3)
    return result


def frame_rate(frames: list[float], start: float, end: float) -> float | None:
    if end <= start:
        return None
    return round(sum(1 for t in frames if start <= t < end) / (end - start), 2)


def mean_rate_bps(
    per_second: list[list[int]] | list[tuple[int, int]], start: float, end: float
) -> float | None:
    """Mean bit/s of whole seconds inside [start, end)."""
    seconds = [b for s, b in per_second if start <= s and s + 1 <= end]
    span = int(end) - int(max(start, 0.0) + 0.999)
    if span <= 0:
        return None
    return round(sum(seconds) * 8 / span, 1)


_SERIES = re.compile(r"^(\w+)\{(.*)\}$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
RIDS = ("q", "h", "f")


def _labelled(name: str) -> tuple[str, dict[str, str]]:
    m = _SERIES.match(name)
    if m is None:
        return name, {}
    return m.group(1), dict(_LABEL.findall(m.group(2)))


def metric_samples(
    metrics: list[tuple[float, dict[str, float]]] | list[list[Any]], participant: str | None
) -> tuple[list[Sample], list[tuple[float, float]]]:
    """The server's own view from /metrics: (layer samples, estimate samples) of one subscriber.

    ``digiclinic_consumer_layer`` is the forwarded layer index (-1: paused);
    ``digiclinic_subscriber_estimate_bps`` the downlink estimate. Series
    vanish when the subscriber leaves, so samples stop there.
    """
    layers: list[Sample] = []
    estimates: list[tuple[float, float]] = []
    for t, values in metrics:
        for name, value in values.items():
            metric, labels = _labelled(name)
            if participant is not None and labels.get("participant") != participant:
                continue
            if metric == "digiclinic_consumer_layer":
                index = int(value)
                if index < 0:
                    reason = labels.get("paused_reason", "")
                    # -1 with no reason: nothing forwarded yet (waiting for a keyframe)
                    state = {"bandwidth": "paused", "": "none"}.get(reason, f"paused ({reason})")
                else:
                    state = RIDS[index] if index < len(RIDS) else f"s{index}"
                layers.append((float(t), state))
            elif metric == "digiclinic_subscriber_estimate_bps":
                estimates.append((float(t), value))
    return layers, estimates
