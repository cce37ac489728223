"""The churn soak: joins, publishes, leaves and reconnects at a steady rate for a long time.

    python -m benchmarks run soak                    # default 30 min (scenarios/soak.yaml)
    python -m benchmarks run soak --duration 120 --sizes 2

One server process, the scenario's rooms (size = rooms), each with a steady
publisher; the other seats turn over (benchmarks/scenario.py ``_turnover``):
some arrivals publish, some drop their connection without leaving and
rejoin. Every ``sample_every`` seconds the server's RSS, open file
descriptors, threads and live asyncio tasks (``digiclinic_asyncio_tasks``)
are sampled with the participant count. At the end everyone leaves and,
once it has no participant left (and ``SETTLE_SECONDS`` more), the server
is sampled once more: what it holds then should be what it held before
anyone came.

The report states the slope of each resource (least squares over the samples
after ``warmup``, per hour) beside the idle and drained values, so a leak
shows as a slope that does not fall to zero and a drained value above idle.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.runner import Progress, StepRun, Target, start_target
from benchmarks.scenario import Scenario
from benchmarks.server_process import ServerProcess, sample_process
from benchmarks.synthetic_media import opus_clip, vp8_clip

DRAIN_SECONDS = 30.0  # at most, for everyone to be gone after the workers stop
SETTLE_SECONDS = 3.0  # then this long for closing tasks and sockets to finish
RESOURCES = ("rss_mb", "fds", "tasks", "threads")


@dataclass(frozen=True)
class SoakSample:
    t: float  # seconds since the workers started
    rss_mb: float
    fds: int
    tasks: int
    threads: int
    participants: int  # the server's view (lobby included)
    consumers: int
    cpu_s: float  # server CPU since it started
    joins: int  # joins the server completed so far
    errors: int = 0  # failed joins so far (the workers' view)
    reconnections: int = 0  # dropped-and-rejoined so far (the workers' view)


EMPTY = SoakSample(0.0, 0.0, 0, 0, 0, 0, 0, 0.0, 0)


@dataclass
class SoakResult:
    scenario: str
    rooms: int
    duration_s: float
    arrivals: int
    idle: SoakSample
    drained: SoakSample | None
    samples: list[SoakSample] = field(default_factory=list)
    slopes_per_hour: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error_reasons: list[str] = field(default_factory=list)  # a few, as the workers saw them

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour; None under 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return round(cov / var * 3600, 3)


def slopes(samples: list[SoakSample], warmup: float) -> dict[str, float | None]:
    kept = [s for s in samples if s.t >= warmup]
    return {
        name: slope_per_hour([(s.t, float(getattr(s, name))) for s in kept]) for name in RESOURCES
    }


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def sample_server(target: Target, t: float, run: StepRun | None = None) -> SoakSample:
    """One sample of a server we started (its /proc) and of its /metrics."""
    process = target.process
    assert isinstance(process, ServerProcess), "the soak samples /proc: it starts its own server"
    pid = process.pid
    proc = sample_process(pid)
    metrics = await target.scrape()
    errors = reconnections = 0
    if run is not None:
        run.pump()
        errors = sum(p.get("errors", 0) for p in run.progress.values())
        reconnections = sum(p.get("reconnections", 0) for p in run.progress.values())
    return SoakSample(
        t=round(t, 1),
        rss_mb=round(proc.rss_bytes / 2**20, 2),
        fds=open_fds(pid),
        tasks=int(metrics.get("digiclinic_asyncio_tasks", -1)),
        threads=proc.threads,
        participants=int(metrics.get("digiclinic_participants", 0)),
        consumers=int(metrics.get("digiclinic_consumers", 0)),
        cpu_s=round(proc.cpu_seconds, 2),
        joins=int(metrics.get("digiclinic_join_seconds_count", 0)),
        errors=errors,
        reconnections=reconnections,
    )


async def run_soak(
    scenario: Scenario, rooms: int, workers: int, result: SoakResult | None = None
) -> SoakResult:
    """Run the soak; ``result`` (if given) is filled as it goes, for Ctrl-C."""
    progress = Progress()
    vp8_clip(bitrate=scenario.video_bitrate)
    opus_clip()
    specs = scenario.plan(rooms)
    seats_at_once = rooms * scenario.participants_per_room
    target = await start_target("digiclinic", None, None, max_participants=seats_at_once + 5)
    try:
        await asyncio.sleep(1.0)
        idle = await sample_server(target, 0.0)
        if result is None:
            result = SoakResult(scenario.name, rooms, scenario.duration, len(specs), idle, None)
        result.idle, result.arrivals = idle, len(specs)
        run = StepRun(scenario, rooms, target, workers)
        started = run.start_workers()
        end = started + seats_at_once / scenario.ramp + scenario.settle + scenario.duration
        next_sample = started
        try:
            while time.monotonic() < end:
                run.pump()
                now = time.monotonic()
                if now >= next_sample:
                    sample = await sample_server(target, now - started, run)
                    result.samples.append(sample)
                    result.error_reasons = sorted(
                        {e for p in run.progress.values() for e in p.get("error_reasons", [])}
                    )[:5]
                    next_sample += scenario.sample_every
                    progress.show(_status(scenario, sample, end - now))
                await asyncio.sleep(0.25)
        finally:
            await run.stop_workers()
        result.drained = await drained_sample(target, started)
    finally:
        if target.process is not None:
            target.process.stop()
    result.slopes_per_hour = slopes(result.samples, scenario.warmup)
    result.notes += judge(result)
    progress.done(
        f"[{scenario.name}] {len(result.samples)} samples, slopes per hour: "
        + ", ".join(f"{k} {v}" for k, v in result.slopes_per_hour.items())
    )
    return result


async def drained_sample(target: Target, started: float) -> SoakSample:
    """The server once everyone is gone (or ``DRAIN_SECONDS`` passed) and it settled."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        metrics = await target.scrape()
        if not metrics.get("digiclinic_participants") and not metrics.get("digiclinic_consumers"):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(SETTLE_SECONDS)
    return await sample_server(target, time.monotonic() - started)


def judge(result: SoakResult) -> list[str]:
    """What a reader should look at: the drained server against the idle one."""
    notes = []
    drained, idle = result.drained, result.idle
    if drained is None:
        return ["the soak did not finish: no drained sample"]
    if drained.participants:
        notes.append(f"{drained.participants} participants still on the server after everyone left")
    if drained.consumers:
        notes.append(f"{drained.consumers} consumers still on the server after everyone left")
    if drained.tasks > idle.tasks + 5:
        notes.append(f"asyncio tasks: {idle.tasks} idle, {drained.tasks} after everyone left")
    if drained.fds > idle.fds + 5:
        notes.append(f"file descriptors: {idle.fds} idle, {drained.fds} after everyone left")
    last = result.samples[-1] if result.samples else None
    if last is not None and last.errors:
        notes.append(f"{last.errors} joins failed: " + "; ".join(result.error_reasons))
    return notes


def _status(scenario: Scenario, sample: SoakSample, left: float) -> str:
    return (
        f"[{scenario.name}] t={sample.t:6.0f}s left={left:5.0f}s participants="
        f"{sample.participants} rss={sample.rss_mb:.0f}MB fds={sample.fds} tasks={sample.tasks} "
        f"joins={sample.joins} reconnections={sample.reconnections} errors={sample.errors}"
    )
