"""The coordinator: runs a scenario step by step and measures each step.

For every size of the scenario it starts the server (or uses a running one),
spreads the participants over worker processes, shows progress, takes two
snapshots (start and end of the measurement window) from the workers and the
server, and turns their difference into a StepResult.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.janus_process import JANUS_ADDRESS, JanusProcess
from benchmarks.loadgen.worker import WorkerPlan, worker_main
from benchmarks.scenario import ParticipantSpec, Scenario
from benchmarks.server_process import ServerProcess, free_port, sample_process
from benchmarks.step_summary import StepResult, join_cpu, join_cpu_delivered, summarize
from benchmarks.synthetic_media import opus_clip, vp8_clip
from benchmarks.workers_process import WorkersProcess
from sfu.participant import Role
from signaling.config import Secret
from signaling.tokens import mint_token

WORKER_BOOT_SECONDS = 2.5  # importing aiortc in a fresh process takes ~1 s here


@dataclass
class Target:
    """The server under test: one we start (local) or one already running (remote)."""

    name: str  # "digiclinic", "baseline", "janus" or a variant
    ws_url: str
    http_url: str
    secret: Secret
    process: ServerProcess | JanusProcess | None = None
    issuer: str = "dev"
    idle_rss: float | None = None  # server RSS before the step's participants joined

    @property
    def pids(self) -> list[int]:
        return self.process.pids if self.process else []

    @property
    def janus(self) -> JanusProcess | None:
        return self.process if isinstance(self.process, JanusProcess) else None

    async def rooms_per_process(self) -> list[int]:
        """Rooms hosted by each of the server's processes (several with ``--workers``)."""
        process = self.process
        if isinstance(process, JanusProcess):
            return []
        urls = process.metrics_urls if process else [self.http_url]
        values = await asyncio.gather(*(scrape(u) for u in urls))
        return [int(v.get("digiclinic_rooms", 0)) for v in values]

    async def scrape(self) -> dict[str, float]:
        """The server's metrics, summed over its processes (``--workers``); none for Janus."""
        process = self.process
        if isinstance(process, JanusProcess):
            return {}
        urls = process.metrics_urls if process else [self.http_url]
        total: dict[str, float] = {}
        for values in await asyncio.gather(*(scrape(u) for u in urls)):
            for name, value in values.items():
                total[name] = total.get(name, 0.0) + value
        return total


async def scrape(http_url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{http_url}/metrics") as resp:
        text = await resp.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


class Progress:
    """One status line, rewritten in place on a terminal, printed every 5 s otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def show(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
            sys.stderr.flush()
        elif time.monotonic() - self._last >= 5:
            self._last = time.monotonic()
            print(text, file=sys.stderr, flush=True)

    def done(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")
        print(text, file=sys.stderr, flush=True)


class StepRun:
    def __init__(self, scenario: Scenario, size: int, target: Target, workers: int) -> None:
        self.scenario = scenario
        self.size = size
        self.target = target
        self.specs: list[ParticipantSpec] = scenario.plan(size)
        self.n_workers = max(1, min(workers, len(self.specs)))
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        self.progress: dict[int, dict[str, Any]] = {}
        self.replies: dict[tuple[int, str], dict[str, Any]] = {}
        self.final: dict[int, dict[str, Any]] = {}

    def _tokens(self) -> dict[str, str]:
        # valid until its last join (a rejoin after a drop included), not the whole
        # step: a long soak would pass the server's auth.max_token_lifetime
        return {
            s.key: mint_token(
                self.target.secret,
                room=s.room,
                identity=s.identity,
                role=Role(s.role),
                ttl=int(max(s.join_at, s.reconnect_at or 0.0)) + 120,
                issuer=self.target.issuer,
            )
            for s in self.specs
        }

    def start_workers(self) -> float:
        tokens = self._tokens()
        context = multiprocessing.get_context("spawn")
        start_at = time.monotonic() + WORKER_BOOT_SECONDS
        loopback = "://127.0.0.1" in self.target.ws_url or "://localhost" in self.target.ws_url
        janus = self.target.janus
        for w in range(self.n_workers):
            specs = self.specs[w :: self.n_workers]
            plan = WorkerPlan(
                worker_id=w,
                ws_url=self.target.ws_url,
                specs=specs,
                tokens={s.key: tokens[s.key] for s in specs},
                start_at=start_at,
                video_bitrate=self.scenario.video_bitrate,
                loopback=loopback,
                stamped=self.target.name != "baseline",
            )
            if janus is not None:  # its API, from inside its namespace
                plan.server, plan.netns, plan.address = "janus", janus.namespace, JANUS_ADDRESS
                plan.loopback = False
            parent, child = context.Pipe()
            proc = context.Process(target=worker_main, args=(child, plan), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        return start_at

    def pump(self) -> None:
        """Read everything the workers have sent so far."""
        for w, conn in enumerate(self.conns):
            try:
                while conn.poll():
                    message = conn.recv()
                    if message[0] == "progress":
                        self.progress[w] = message[1]
                    elif message[0] == "snapshot":
                        self.replies[(w, message[1])] = message[2]
                    elif message[0] == "done":
                        self.final[w] = message[1]
            except (EOFError, OSError):
                continue

    async def snapshot(self, tag: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        for w, conn in enumerate(self.conns):
            try:
                conn.send(("snapshot", tag))
            except (BrokenPipeError, OSError):
                raise RuntimeError(
                    f"load-generator worker {w} exited (exit code {self.procs[w].exitcode})"
                ) from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if all((w, tag) in self.replies for w in range(self.n_workers)):
                return [self.replies[(w, tag)] for w in range(self.n_workers)]
            await asyncio.sleep(0.02)
        raise TimeoutError(f"workers did not answer the {tag} snapshot")

    async def stop_workers(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(("stop",))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(self.final) < self.n_workers:
            self.pump()
            await asyncio.sleep(0.05)
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()

    def status(self, elapsed: float, phase: str) -> str:
        joined = sum(p.get("joined", 0) for p in self.progress.values())
        errors = sum(p.get("errors", 0) for p in self.progress.values())
        received = sum(p.get("received", 0) for p in self.progress.values())
        if elapsed < 0:
            phase, elapsed = "starting workers", 0.0
        return (
            f"[{self.scenario.name} {self.target.name} size={self.size}] {phase} t={elapsed:5.1f}s "
            f"joined={joined}/{len(self.specs)} errors={errors} received={received}"
        )


async def run_step(run: StepRun, progress: Progress) -> StepResult:
    scenario, target = run.scenario, run.target
    idle = _server_sample(target)
    before_ramp = await target.scrape()
    if idle is not None:
        target.idle_rss = idle[2]
    else:
        target.idle_rss = before_ramp.get("process_resident_memory_bytes")
    started = run.start_workers()
    measure_at = started + scenario.ramp_end(run.specs) + scenario.settle
    try:
        while time.monotonic() < measure_at:
            run.pump()
            progress.show(run.status(time.monotonic() - started, "ramp"))
            await asyncio.sleep(0.25)
        m0, p0 = await target.scrape(), _server_sample(target)
        w0 = await run.snapshot("start")
        t0 = time.monotonic()
        while time.monotonic() < t0 + scenario.duration:
            run.pump()
            progress.show(run.status(time.monotonic() - started, "measure"))
            await asyncio.sleep(0.25)
        m1, p1 = await target.scrape(), _server_sample(target)
        w1 = await run.snapshot("end")
        elapsed = time.monotonic() - t0
        spread = await target.rooms_per_process()
    finally:
        await run.stop_workers()
    result = summarize(run, elapsed, (m0, m1), (p0, p1), (w0, w1))
    result.join_cpu_ms = join_cpu(result, (before_ramp, m0), (idle, p0))
    result.join_cpu_delivered_ms = join_cpu_delivered(result, w0, (idle, p0))
    if len(spread) > 1:
        result.notes.append("rooms per worker process: " + " / ".join(map(str, spread)))
    return result


def _server_sample(target: Target) -> tuple[float, float, int] | None:
    """(cpu seconds, system seconds, rss bytes) from /proc for a local server."""
    if not target.pids:
        return None
    samples = [sample_process(pid) for pid in target.pids]
    return (
        sum(s.cpu_seconds for s in samples),
        sum(s.system_seconds for s in samples),
        sum(s.rss_bytes for s in samples),
    )


class BaselineProcess(ServerProcess):
    """The naive aiortc MediaRelay server (benchmarks/baseline_relay.py) as a child process."""

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "benchmarks.baseline_relay",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]


# configurations run side by side with the default one (--compare-udp, --compare-joins):
# name -> config sections merged over the harness's own
VARIANTS: dict[str, dict[str, dict[str, object]]] = {
    # the one media port without batched egress, and a socket per connection
    "digiclinic-unbatched": {"media": {"batched_egress": False}},
    "digiclinic-ports": {
        "media": {"udp_mode": "port_range", "udp_port_min": 45000, "udp_port_max": 49999}
    },
    # every arrival announced to everyone one by one, whatever the room's size
    "digiclinic-announce-each": {"rooms": {"announce_batch_from": 1_000_000}},
}
UDP_VARIANTS = ("digiclinic-unbatched", "digiclinic-ports")
JOIN_VARIANTS = ("digiclinic-announce-each",)


async def start_target(
    name: str, remote_url: str | None, secret: Secret | None, max_participants: int
) -> Target:
    """``digiclinic``, ``baseline``, ``digiclinic-<N>w`` (N worker processes on Redis), or
    one of ``VARIANTS``."""
    if remote_url is not None:
        assert secret is not None
        base = remote_url.rstrip("/")
        ws = base.replace("http", "ws", 1) + "/ws"
        return Target(name, ws, base, secret)
    process: ServerProcess
    rooms = {"rooms": {"max_participants": max_participants}}
    if name == "janus":
        janus = JanusProcess()
        await janus.start()
        return Target(name, janus.ws_url, "", Secret("x" * 32), janus)
    if name == "baseline":
        process = BaselineProcess()
    elif name in VARIANTS:
        sections = VARIANTS[name]
        merged = {**sections, "rooms": {**rooms["rooms"], **sections.get("rooms", {})}}
        process = ServerProcess(config=merged)
    elif name.startswith("digiclinic-") and name.endswith("w"):
        process = WorkersProcess(int(name.removeprefix("digiclinic-")[:-1]), config=rooms)
    else:
        process = ServerProcess(config=rooms)
    await process.start()
    secret = (
        Secret(process.secret_file.read_text().strip()) if name != "baseline" else Secret("x" * 32)
    )
    return Target(name, process.ws_url, process.url, secret, process)


async def run_scenario(
    scenario: Scenario,
    sizes: list[int],
    workers: int,
    remote_url: str | None = None,
    secret: Secret | None = None,
    issuer: str = "dev",
    baseline: bool = True,
    results: list[StepResult] | None = None,
    compare_workers: list[int] | None = None,
    compare_udp: bool = False,
    compare_joins: bool = False,
    compare_janus: bool = False,
) -> list[StepResult]:
    """Every size against digiclinic, and the baseline sizes against MediaRelay.

    ``compare_workers`` (e.g. [1, 2]): instead, every size against one plain
    process (1) and ``serve --workers N`` for each other N (on a Redis started
    for it), side by side. ``compare_udp``: every size against the one media
    UDP port (batched egress), the one port without batching, and a port per
    connection, side by side. ``compare_joins``: every size against the
    default and against arrivals announced one by one whatever the size.
    ``compare_janus``: every size against digiclinic and Janus's VideoRoom
    (benchmarks/janus_process.py), alternating, with the same load generator.
    """
    results = [] if results is None else results
    progress = Progress()
    vp8_clip(bitrate=scenario.video_bitrate)  # encode once before the workers need it
    opus_clip()
    with_baseline = (
        baseline
        and remote_url is None
        and bool(scenario.baseline_sizes)
        and not compare_workers
        and not compare_udp
        and not compare_joins
        and not compare_janus
    )
    if with_baseline:  # the ratio needs digiclinic at the baseline's sizes too
        sizes = sorted(set(sizes) | set(scenario.baseline_sizes))
    plan: list[tuple[str, int]] = [("digiclinic", n) for n in sizes]
    if compare_workers:
        names = ["digiclinic" if w == 1 else f"digiclinic-{w}w" for w in compare_workers]
        plan = [(name, n) for n in sizes for name in names]
    if compare_udp:
        plan = [(name, n) for n in sizes for name in ("digiclinic", *UDP_VARIANTS)]
    if compare_joins:
        plan = [(name, n) for n in sizes for name in ("digiclinic", *JOIN_VARIANTS)]
    if compare_janus:
        plan = [(name, n) for n in sizes for name in ("digiclinic", "janus")]
    if with_baseline:
        plan += [("baseline", n) for n in scenario.baseline_sizes]
    for name, size in plan:
        specs = scenario.plan(size)
        target = await start_target(name, remote_url, secret, max_participants=len(specs) + 5)
        target.issuer = issuer
        try:
            result = await run_step(StepRun(scenario, size, target, workers), progress)
        finally:
            if target.process is not None:
                target.process.stop()
        results.append(result)
        progress.done(
            f"[{scenario.name} {name} size={size}] {result.us_per_forwarded_packet} µs/pkt "
            f"({result.us_per_delivered_packet} per delivered), "
            f"server CPU {result.server_cpu_share:.0%}, loss max "
            f"{'-' if result.loss_max is None else f'{result.loss_max:.2%}'}, "
            f"latency p95 {result.latency_ms['p95']} ms, loadgen {result.loadgen_cpu_share:.0%}"
        )
    return results


def default_output(scenario: Scenario) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(__file__).resolve().parent / "results" / f"{scenario.name}-{stamp}"


__all__ = ["StepResult", "free_port", "run_scenario"]
