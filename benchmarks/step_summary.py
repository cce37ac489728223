"""A fan-out step's figures (StepResult) from its server and load-generator snapshots.

Server CPU and RSS from /proc (or the server's own metrics when remote),
packets from the server's metrics and from what the subscribers received
(their sequence numbers), latency from the publisher's send-time trailers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.runner import StepRun

LOADGEN_BUSY = 0.85  # a worker above this share of a core may be the bottleneck


@dataclass
class StepResult:
    scenario: str
    server: str
    size: int
    participants: int
    duration_s: float
    server_cpu_s: float
    server_cpu_share: float
    us_per_forwarded_packet: float | None
    packets_in_per_s: float
    packets_out_per_s: float
    mbps_in: float
    mbps_out: float
    subscribers: int
    loss_mean: float | None
    loss_max: float | None
    latency_ms: dict[str, float | None]
    join_to_first_frame_ms: dict[str, float | None]
    server_rss_mb: float | None
    rss_per_participant_kb: float | None
    loadgen_cpu_share: float
    loadgen_max_worker_share: float
    join_errors: int
    keyframe_requests: int
    # server CPU per participant joining during the ramp (ms), less the forwarding meanwhile
    # (priced at the window's µs per forwarded packet)
    join_cpu_ms: float | None = None
    # the same two figures from what the subscribers received (their sequence numbers: media
    # packets sent to them, retransmissions and padding left out), for any server (Janus too)
    us_per_delivered_packet: float | None = None
    join_cpu_delivered_ms: float | None = None
    loss_per_subscriber: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return round(float(ordered[index]), 2)


def join_cpu(
    result: StepResult,
    metrics: tuple[dict[str, float], dict[str, float]],
    server: tuple[Any, Any],
) -> float | None:
    """Server CPU (ms) per participant joining during the ramp, forwarding left out."""
    if server[0] is None or server[1] is None or result.us_per_forwarded_packet is None:
        return None
    ramp_cpu = float(server[1][0] - server[0][0])
    name = "digiclinic_rtp_packets_out_total"
    forwarded = metrics[1].get(name, 0.0) - metrics[0].get(name, 0.0)
    forwarding = forwarded * result.us_per_forwarded_packet / 1e6
    joins = max(1, result.participants)
    return round(max(0.0, ramp_cpu - forwarding) / joins * 1e3, 2)


def delivered(snapshots: list[dict[str, Any]], since: list[dict[str, Any]] | None = None) -> int:
    """Media packets sent to the subscribers, by their sequence numbers (since ``since``)."""
    before = {k: v for snap in since or [] for k, v in snap["participants"].items()}
    total = 0
    for snap in snapshots:
        for key, end in snap["participants"].items():
            start = before.get(key, {}).get("streams", {})
            for ssrc, (expected, _received, _video) in end.get("streams", {}).items():
                total += expected - start.get(ssrc, (0, 0, False))[0]
    return total


def join_cpu_delivered(
    result: StepResult, start: list[dict[str, Any]], server: tuple[Any, Any]
) -> float | None:
    """``join_cpu`` with the forwarding priced from what the subscribers received."""
    if server[0] is None or server[1] is None or result.us_per_delivered_packet is None:
        return None
    ramp_cpu = float(server[1][0] - server[0][0])
    forwarding = delivered(start) * result.us_per_delivered_packet / 1e6
    joins = max(1, result.participants)
    return round(max(0.0, ramp_cpu - forwarding) / joins * 1e3, 2)


def summarize(
    run: StepRun,
    elapsed: float,
    metrics: tuple[dict[str, float], dict[str, float]],
    server: tuple[Any, Any],
    workers: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> StepResult:
    m0, m1 = metrics

    def delta(name: str) -> float:
        return m1.get(name, 0.0) - m0.get(name, 0.0)

    out, inn = delta("digiclinic_rtp_packets_out_total"), delta("digiclinic_rtp_packets_in_total")
    if server[0] is not None:
        cpu = server[1][0] - server[0][0]
        rss: float | None = server[1][2]
    else:  # remote server: its own process metrics
        cpu = delta("process_cpu_seconds_total")
        rss = m1.get("process_resident_memory_bytes")
    idle = run.target.idle_rss
    losses: list[float] = []
    loss_by_key: dict[str, float] = {}
    latencies: list[float] = []
    first_frames: list[float] = []
    errors = keyframes = 0
    start = {k: v for snap in workers[0] for k, v in snap["participants"].items()}
    for snap in workers[1]:
        for key, end in snap["participants"].items():
            errors += bool(end.get("error"))
            keyframes += end.get("keyframe_requests", 0)
            latencies += [ns / 1e6 for ns in end.get("latency_ns", [])]
            if "first_video_s" in end:
                first_frames.append(end["first_video_s"] * 1000)
            if "streams" not in end or not end["joined"]:
                continue  # (one who left during the window counts until it left)
            before = start.get(key, {}).get("streams", {})
            expected = received = 0
            for ssrc, (exp, rec, _video) in end["streams"].items():
                exp0, rec0, _ = before.get(ssrc, (0, 0, False))
                expected += exp - exp0
                received += rec - rec0
            if expected > 0:
                loss_by_key[key] = round(max(0.0, 1 - received / expected), 5)
                losses.append(loss_by_key[key])
    cpu0 = sum(s["cpu"] for s in workers[0])
    cpu1 = sum(s["cpu"] for s in workers[1])
    per_worker = [
        (b["cpu"] - a["cpu"]) / elapsed for a, b in zip(workers[0], workers[1], strict=True)
    ]
    notes = []
    if max(per_worker, default=0) > LOADGEN_BUSY:
        notes.append("a load-generator worker was above 85% of a core: add --workers")
    subscribers = sum(1 for s in run.specs if s.subscribe)
    if len(losses) < subscribers and run.scenario.kind != "churn":
        notes.append(f"{subscribers - len(losses)} subscribers received nothing in the window")
    if errors:
        reasons = sorted({r for p in run.progress.values() for r in p.get("error_reasons", [])})
        notes.append(f"{errors} joins failed: " + "; ".join(reasons))
    participants = len({s.key for s in run.specs})
    sent_to_subscribers = delivered(workers[1], workers[0])
    return StepResult(
        scenario=run.scenario.name,
        server=run.target.name,
        size=run.size,
        participants=participants,
        duration_s=round(elapsed, 2),
        server_cpu_s=round(cpu, 3),
        server_cpu_share=round(cpu / elapsed, 3),
        us_per_forwarded_packet=round(cpu / out * 1e6, 2) if out else None,
        packets_in_per_s=round(inn / elapsed, 1),
        packets_out_per_s=round(out / elapsed, 1),
        mbps_in=round(delta("digiclinic_rtp_bytes_in_total") * 8 / elapsed / 1e6, 3),
        mbps_out=round(delta("digiclinic_rtp_bytes_out_total") * 8 / elapsed / 1e6, 3),
        subscribers=subscribers,
        loss_mean=round(sum(losses) / len(losses), 5) if losses else None,
        loss_max=round(max(losses), 5) if losses else None,
        latency_ms={
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "samples": float(len(latencies)),
        },
        join_to_first_frame_ms={
            "p50": percentile(first_frames, 50),
            "p95": percentile(first_frames, 95),
            "max": percentile(first_frames, 100),
            "count": float(len(first_frames)),
        },
        server_rss_mb=round(rss / 2**20, 1) if rss else None,
        rss_per_participant_kb=(
            round((rss - idle) / participants / 1024, 1) if rss and idle is not None else None
        ),
        loadgen_cpu_share=round((cpu1 - cpu0) / elapsed, 3),
        loadgen_max_worker_share=round(max(per_worker, default=0), 3),
        join_errors=errors,
        keyframe_requests=keyframes,
        loss_per_subscriber=loss_by_key,
        notes=notes,
        us_per_delivered_packet=(
            round(cpu / sent_to_subscribers * 1e6, 2) if sent_to_subscribers else None
        ),
    )
