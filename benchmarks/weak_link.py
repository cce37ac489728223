"""The weak-link scenario: one subscriber, one publisher, a capped downlink per rate.

    python -m benchmarks run weak_link                     # every rate of the scenario
    python -m benchmarks run weak_link --rates 250,60 --duration 20 --link relay
    python -m benchmarks.weak_link --rates 120             # the same, directly

For each downlink rate (kbit/s) a fresh server is started, a publisher joins
on loopback and sends video (simulcast when benchmarks/loadgen/
simulcast_source.py is present, else the single-layer VP8 replay) plus Opus,
and one subscriber joins through the capped link and stays ``seconds``:

- ``link: netns`` (the default when root with ``ip``/``tc``): the subscriber
  process runs inside a network namespace joined by a veth pair; the server
  listens (signalling and media) on the root end's address, and ``tbf`` on
  the root end caps everything the subscriber receives;
- ``link: relay``: the subscriber runs on loopback and its media (not its
  signalling) crosses the user-space relay's rate cap (tests/helpers/udp_relay.py).

The subscriber answers like a receiver (REMB, receiver reports, NACK, PLI)
and records what arrives; the report gives, per rate, the time for the
forwarded layer to settle, the layer chosen, audio loss, video freezes,
whether video was paused for bandwidth, and server CPU. The server logs at
WARNING; ``WEAK_LINK_SERVER_LOG=INFO`` (or DEBUG) keeps more of its log in
report.json (``runs[].server_log``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks.server_process import ServerProcess, sample_process
from benchmarks.weak_link_publisher import Publisher, simulcast_available, start_publisher
from benchmarks.weak_link_report import analyze, write_weak_link_report
from sfu.participant import Role
from signaling.config import Secret
from signaling.tokens import mint_token
from tests.helpers.netns_link import NetnsLink, netns_available, netns_link

REPO = Path(__file__).resolve().parent.parent
SCENARIO = Path(__file__).resolve().parent / "scenarios" / "weak_link.yaml"
METRIC_WORDS = ("estimate", "layer", "paused", "bandwidth", "probe")


@dataclass(frozen=True)
class WeakLinkScenario:
    name: str = "weak_link"
    kind: str = "weak_link"
    description: str = ""
    rates_kbps: list[int] = field(default_factory=lambda: [2000, 500, 250, 120, 60])
    seconds: float = 25.0
    link: str = "auto"  # netns | relay | auto
    queue_ms: float = 200.0
    publisher: str = "auto"  # simulcast | plain | auto
    video_bitrate: int = 800_000  # the plain publisher's clip
    audio_bitrate: int = 32_000  # the Opus clip (a browser's default for voice)
    settle_hold: float = 5.0
    freeze_gap_ms: float = 500.0

    @classmethod
    def load(cls, path: Path = SCENARIO) -> WeakLinkScenario:
        data = yaml.safe_load(path.read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path.name}: unknown key(s) {', '.join(sorted(unknown))}")
        scenario = cls(**data)
        if scenario.link not in ("netns", "relay", "auto"):
            raise ValueError("link must be netns, relay or auto")
        if scenario.publisher not in ("simulcast", "plain", "auto"):
            raise ValueError("publisher must be simulcast, plain or auto")
        return scenario


class LinkServerProcess(ServerProcess):
    """``digiclinic serve`` listening (HTTP, WebSocket and media) on one given address."""

    def __init__(self, host: str, config: dict[str, Any] | None = None) -> None:
        config = dict(config or {})
        config["server"] = {**config.get("server", {}), "host": host}
        config["media"] = {**config.get("media", {}), "ice_addresses": [host]}
        super().__init__(config=config)
        self.host = host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    async def start(self, timeout: float = 20.0, ssl_context: Any = None) -> None:
        if self.host == "127.0.0.1":
            await super().start(timeout)
            return
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=self._stderr, env=env
        )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{self.stderr()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise TimeoutError("server did not become healthy")


async def scrape_labelled(url: str) -> dict[str, float]:
    """Series from /metrics that describe estimates, layers and pauses (labels kept)."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        metric = name.split("{", 1)[0]
        if any(w in metric for w in METRIC_WORDS) or metric.startswith("digiclinic_rtp_bytes_out"):
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


@dataclass
class RateRun:
    rate_kbps: int
    link_kind: str
    publisher_kind: str
    subscriber: dict[str, Any]
    metrics: list[tuple[float, dict[str, float]]]
    server_cpu_s: float
    window_s: float
    link_stats: dict[str, Any]
    server_log: str = ""  # the end of the server's stderr
    # publisher_audio obeyed: (seconds since the subscriber started, bit/s or None)
    audio_caps: list[tuple[float, int | None]] = field(default_factory=list)


async def run_rate(
    scenario: WeakLinkScenario,
    rate_kbps: int,
    link: NetnsLink | None,
    publisher_kind: str,
    workdir: Path,
) -> RateRun:
    host = link.root_addr if link is not None else "127.0.0.1"
    server = LinkServerProcess(
        host, {"logging": {"level": os.environ.get("WEAK_LINK_SERVER_LOG", "WARNING")}}
    )
    await server.start()
    publisher: Publisher | None = None
    proc: subprocess.Popen[bytes] | None = None
    try:
        secret = Secret(server.secret_file.read_text().strip())
        room = f"weak-{rate_kbps}"

        def token(identity: str, role: Role) -> str:
            ttl = int(scenario.seconds) + 300
            return mint_token(secret, room=room, identity=identity, role=role, ttl=ttl)

        publisher = await start_publisher(
            publisher_kind,
            server.ws_url,
            token("doctor", Role.SPECIALIST),
            host,
            scenario.video_bitrate,
            scenario.audio_bitrate,
        )
        rate_bps = rate_kbps * 1000
        spec: dict[str, Any] = {
            "ws_url": server.ws_url,
            "token": token("clinic", Role.HEALTH_WORKER),
            "ice_address": link.ns_addr if link is not None else "127.0.0.1",
            "seconds": scenario.seconds,
            "out": str(workdir / f"sub-{rate_kbps}.json"),
            "relay": None,
        }
        if link is not None:
            link.set_rate("root", rate_bps, latency_ms=scenario.queue_ms)
        else:
            spec["relay"] = {
                "rate_bps": rate_bps,
                "queue_ms": scenario.queue_ms,
                "burst_bytes": max(1600, int(rate_bps / 8 * 0.005)),
            }
        spec_path = workdir / f"sub-{rate_kbps}.spec.json"
        spec_path.write_text(json.dumps(spec))
        spec_path.chmod(0o600)
        argv = [sys.executable, "-m", "benchmarks.loadgen.link_subscriber", str(spec_path)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cpu0, t0 = sample_process(server.pid).cpu_seconds, time.monotonic()
        if link is not None:
            proc = link.popen(argv, cwd=REPO, env=env)
        else:
            proc = subprocess.Popen(argv, cwd=REPO, env=env)
        metrics: list[tuple[float, dict[str, float]]] = []
        deadline = t0 + scenario.seconds + 40
        next_scrape = t0
        while proc.poll() is None and time.monotonic() < deadline:
            if time.monotonic() >= next_scrape:
                next_scrape += 1.0
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    metrics.append((time.monotonic(), await scrape_labelled(server.url)))
            await asyncio.sleep(0.1)
        if proc.poll() is None:
            proc.terminate()
            await asyncio.sleep(3)
        cpu1, t1 = sample_process(server.pid).cpu_seconds, time.monotonic()
        result = _read_result(Path(spec["out"]), rate_kbps)
        link_stats: dict[str, Any] = {}
        if link is not None:
            link_stats = {"tbf_drops": link.qdisc_drops("root"), "tc": link.qdisc("root")}
        elif result.get("relay"):
            down = result["relay"]["down"]
            link_stats = {"relay_drops": down["dropped_queue"], "relay": down}
        t_sub0 = result.get("t0_monotonic")
        aligned = [
            (round(t - t_sub0, 3) if t_sub0 is not None else round(t - t0, 3), m)
            for t, m in metrics
        ]
        return RateRun(
            rate_kbps=rate_kbps,
            link_kind="netns" if link is not None else "relay",
            publisher_kind=publisher.kind,
            subscriber=result,
            metrics=aligned,
            server_cpu_s=round(cpu1 - cpu0, 3),
            window_s=round(t1 - t0, 3),
            link_stats=link_stats,
            server_log=server.stderr()[-3000:],
            audio_caps=[
                (round(t - (t_sub0 if t_sub0 is not None else t0), 2), cap)
                for t, cap in publisher.audio_caps
            ],
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        if link is not None:
            link.set_rate("root", None)
        if publisher is not None:
            await publisher.stop()
        server.stop()


def _read_result(path: Path, rate_kbps: int) -> dict[str, Any]:
    if not path.exists():
        raise RuntimeError(f"subscriber at {rate_kbps} kbit/s wrote no result")
    result: dict[str, Any] = json.loads(path.read_text())
    return result


@contextlib.contextmanager
def maybe_netns(kind: str) -> Iterator[NetnsLink | None]:
    if kind == "relay":
        yield None
        return
    with netns_link() as link:
        yield link


def choose_link(requested: str) -> str:
    ok, why = netns_available()
    if requested == "netns" and not ok:
        raise RuntimeError(f"--link netns: {why}")
    if requested == "auto":
        return "netns" if ok else "relay"
    return requested


def choose_publisher(requested: str) -> str:
    if requested == "auto":
        return "simulcast" if simulcast_available() else "plain"
    if requested == "simulcast" and not simulcast_available():
        raise RuntimeError("publisher simulcast: benchmarks/loadgen/simulcast_source.py not found")
    return requested


async def run_weak_link(
    scenario: WeakLinkScenario, rates: list[int], link_kind: str, runs: list[RateRun]
) -> list[RateRun]:
    publisher_kind = choose_publisher(scenario.publisher)
    with (
        tempfile.TemporaryDirectory(prefix="digiclinic-weak-") as tmp,
        maybe_netns(link_kind) as link,
    ):
        for rate in rates:
            print(f"[weak_link] {rate} kbit/s ({link_kind}, {publisher_kind})...", file=sys.stderr)
            run = await run_rate(scenario, rate, link, publisher_kind, Path(tmp))
            runs.append(run)
            row = analyze(run, scenario)
            print(
                f"[weak_link] {rate} kbit/s: settle {row['settle_s']} s, layer {row['layer']}, "
                f"audio loss {row['audio_loss']}, freezes {row['freezes']}, "
                f"paused {row['paused_for_bandwidth']}, server CPU {row['server_cpu_share']:.0%}",
                file=sys.stderr,
            )
    return runs


def default_output() -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(__file__).resolve().parent / "results" / f"weak_link-{stamp}"


def run_cli(
    rates: list[int] | None = None,
    duration: float | None = None,
    link: str | None = None,
    publisher: str | None = None,
    output: Path | None = None,
    scenario_path: Path = SCENARIO,
) -> int:
    scenario = WeakLinkScenario.load(scenario_path)
    changes: dict[str, Any] = {}
    if duration:
        changes["seconds"] = duration
    if link:
        changes["link"] = link
    if publisher:
        changes["publisher"] = publisher
    scenario = WeakLinkScenario(**{**asdict(scenario), **changes})
    try:
        link_kind = choose_link(scenario.link)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = output or default_output()
    runs: list[RateRun] = []
    interrupted = False
    # clean up the namespace on TERM too, and on INT even when started in the background
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        asyncio.run(run_weak_link(scenario, rates or scenario.rates_kbps, link_kind, runs))
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: writing the rates finished so far", file=sys.stderr)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"\nerror: {exc}; writing the rates finished so far", file=sys.stderr)
        write_weak_link_report(scenario, runs, output, interrupted=True)
        return 1
    paths = write_weak_link_report(scenario, runs, output, interrupted=interrupted)
    print(paths["markdown"].read_text())
    print("written: " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 130 if interrupted else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.weak_link", description=__doc__)
    parser.add_argument("--rates", help="comma-separated downlink caps in kbit/s")
    parser.add_argument("--duration", type=float, help="seconds per rate")
    parser.add_argument("--link", choices=["netns", "relay", "auto"])
    parser.add_argument("--publisher", choices=["simulcast", "plain", "auto"])
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")] if args.rates else None
    return run_cli(rates, args.duration, args.link, args.publisher, args.output)


if __name__ == "__main__":
    sys.exit(main())
