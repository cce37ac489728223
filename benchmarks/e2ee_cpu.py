"""Browser CPU and bytes of end-to-end encryption at 720p (issue 22; docs/capacity.md).

    python -m benchmarks run e2ee_cpu --repeat 3 --duration 20
    python -m benchmarks run e2ee_cpu --cases clear,e2ee --warmup 30
    python -m benchmarks.e2ee_cpu --repeat 3 --duration 20 --modes clear,e2ee

Each phase is a fresh headless Chromium holding two pages of
web-client/test/consult.html in one room of their own (a specialist and a
health worker, no lobby), each publishing its fake camera at 1280x720 with
simulcast off (one encoding) and its fake microphone, and receiving the
other's; the server is ``digiclinic serve`` in a child process. Modes:

- ``clear``: a room without e2ee, on a server with audio RED off, as every
  e2ee room is (sfu/room.py): only the encryption differs from ``e2ee``.
- ``e2ee``: the token's e2ee="required", the consult key in the URL fragment:
  every audio and video frame goes through the pages' RTCRtpScriptTransform
  worker (AES-256-GCM, web-client/client/e2ee-worker.js).
- ``clear-red``: a clear room as deployed (RED on: each audio packet also
  carries the previous frame), for the bytes on the wire.

The modes alternate (clear, e2ee, clear-red, clear, e2ee, ...) ``--repeat``
times, so that they share the machine's noise; each e2ee phase is compared
with the clear phase just before it.

After the join and ``--warmup`` seconds (the bandwidth estimate takes ~28 s
to reach 720p here), two snapshots ``--duration`` seconds apart give the
phase's figures:

- CPU: utime+stime from /proc/<pid>/stat of every Chromium process this
  process started (found by walking /proc's parent links down from our own
  pid, kept when /proc/<pid>/exe is Chromium: Playwright's node driver and
  the server are counted apart), summed; also per process type (browser,
  renderer, gpu-process, utility), and the whole machine's busy cores
  (/proc/stat) to show the noise.
- getStats of both pages: video frames encoded and decoded, audio packets
  (one 20 ms Opus frame each) sent and received, payload bytes (bytesSent /
  bytesReceived: RTP payload only, no headers), encode and decode time,
  the size sent and received and Chrome's quality-limitation durations.
- the transform worker's counts (``session.e2ee.counts()``): frames
  encrypted and decrypted, none dropped or passed in clear.

The bytes added per frame are the payload bytes per audio packet with
encryption minus without (same Opus settings, one frame per packet), pair by
pair; expected: 29 (16 tag + 12 IV + 1 key id). Per video frame the same
difference is given too, but the encoder's rate control moves it by more
than 29 bytes. Writes report.json and report.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

from benchmarks.proc_cpu import ProcessCpu, cpu_delta, machine_busy, process_cpu
from benchmarks.server_process import ServerProcess
from e2ee.frames import encode_key
from sfu.participant import Role
from signaling.config import Secret
from signaling.tokens import mint_token

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "e2ee_cpu.yaml"
REPO = Path(__file__).resolve().parent.parent
TEST_PAGE = "/client/test/consult.html"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",  # a synthetic camera (20 fps) and a beeping microphone
    "--use-fake-ui-for-media-stream",  # grant getUserMedia without asking
    "--allow-loopback-in-peer-connection",  # the server offers 127.0.0.1 only
    "--autoplay-policy=no-user-gesture-required",  # remote <audio> plays unattended
]
OVERHEAD_BYTES = 29  # e2ee/frames.py: 16 (GCM tag) + 12 (IV) + 1 (key id)
# clear: a room without e2ee, RED off as in an e2ee room (sfu/room.py), so that only the
# encryption differs; e2ee: the same with every frame encrypted; clear-red: a clear room as
# deployed (audio RED on: each packet also carries the previous frame)
MODES = ("clear", "e2ee", "clear-red")
PAGES = (("dr-bench", Role.SPECIALIST), ("hw-bench", Role.HEALTH_WORKER))

# both connections' getStats, summed over the streams of each kind (one each here)
STATS_JS = """async (withCounts) => {
  const s = digiclinicTest.session;
  const zero = () => ({bytes: 0, headerBytes: 0, packets: 0, frames: 0, seconds: 0,
                       width: 0, height: 0, lost: 0, dropped: 0, freezes: 0});
  const out = {videoOut: zero(), audioOut: zero(), videoIn: zero(), audioIn: zero(),
               limitation: null, limitationSeconds: {}, encoder: null, decoder: null, e2ee: null};
  const add = (o, r, sent) => {
    o.bytes += (sent ? r.bytesSent : r.bytesReceived) ?? 0;
    o.headerBytes += (sent ? r.headerBytesSent : r.headerBytesReceived) ?? 0;
    o.packets += (sent ? r.packetsSent : r.packetsReceived) ?? 0;
    o.frames += (sent ? r.framesEncoded : r.framesDecoded) ?? 0;
    o.seconds += (sent ? r.totalEncodeTime : r.totalDecodeTime) ?? 0;
    o.width = Math.max(o.width, r.frameWidth ?? 0);
    o.height = Math.max(o.height, r.frameHeight ?? 0);
    o.lost += r.packetsLost ?? 0;
    o.dropped += r.framesDropped ?? 0;
    o.freezes += r.freezeCount ?? 0;
  };
  for (const r of (await s.publisherPc?.getStats())?.values() ?? []) {
    if (r.type !== 'outbound-rtp') continue;
    add(r.kind === 'video' ? out.videoOut : out.audioOut, r, true);
    if (r.kind === 'video') {
      out.limitation = r.qualityLimitationReason ?? null;
      out.limitationSeconds = r.qualityLimitationDurations ?? {};
      out.encoder = r.encoderImplementation ?? null;
    }
  }
  for (const r of (await s.subscriberPc?.getStats())?.values() ?? []) {
    if (r.type !== 'inbound-rtp') continue;
    add(r.kind === 'video' ? out.videoIn : out.audioIn, r, false);
    if (r.kind === 'video') out.decoder = r.decoderImplementation ?? out.decoder;
  }
  if (withCounts) out.e2ee = await s.e2ee.counts();
  return out;
}"""


@dataclass
class Snapshot:
    at: float
    processes: dict[int, ProcessCpu]
    server_cpu: float
    machine: tuple[float, float]
    pages: list[dict[str, Any]]


@dataclass
class PhaseResult:
    mode: str  # "clear" | "e2ee"
    repeat: int
    seconds: float
    cpu_s: float  # every Chromium process, both pages and the browser's own
    cpu_by_kind: dict[str, float]
    cores: float  # cpu_s / seconds: Chromium's share of the machine, in cores
    driver_cpu_s: float  # Playwright's driver (node)
    server_cpu_s: float
    machine_cores: float  # every process of the machine, in cores (2 here)
    processes_ended: int
    video_encoded_per_s: float  # both pages
    video_decoded_per_s: float
    audio_sent_per_s: float  # packets = 20 ms frames
    audio_received_per_s: float
    crypto_frames_per_s: float  # encrypted + decrypted (audio and video), 0 in clear
    cpu_ms_per_video_frame: float  # cpu_s / (video frames encoded + decoded)
    encode_ms_per_frame: float  # Chrome's totalEncodeTime / framesEncoded
    decode_ms_per_frame: float
    audio_bytes_per_packet: float  # payload bytes per audio packet sent (one frame each)
    audio_bytes_per_packet_in: float
    video_bytes_per_frame: float  # payload bytes per video frame sent
    video_kbps_out: float  # both pages, payload only
    audio_kbps_out: float
    sent: list[str]  # per page: the size sent at the end, e.g. "1280x720"
    received: list[str]
    limitation: dict[str, float]  # seconds of the window per qualityLimitationReason, summed
    video_lost: int
    freezes: int
    counts: list[dict[str, Any]] = field(default_factory=list)  # the worker's, at the end
    ramp: list[str] = field(default_factory=list)  # during the warm-up: size@kbit/s per page


def _per(delta: float, count: float) -> float:
    return delta / count if count else 0.0


def phase_result(mode: str, repeat: int, a: Snapshot, b: Snapshot) -> PhaseResult:
    seconds = b.at - a.at
    spent, ended = cpu_delta(a.processes, b.processes)
    chromium = {k: v for k, v in spent.items() if k.startswith("chromium")}
    cpu = sum(chromium.values())

    def total(section: str, key: str, pages: list[dict[str, Any]]) -> float:
        return float(sum(p[section][key] for p in pages))

    def diff(section: str, key: str) -> float:
        return total(section, key, b.pages) - total(section, key, a.pages)

    encoded, decoded = diff("videoOut", "frames"), diff("videoIn", "frames")
    crypto = 0.0
    if mode == "e2ee":
        for before, after in zip(a.pages, b.pages, strict=True):
            for key in ("encrypted", "decrypted"):
                crypto += after["e2ee"][key] - before["e2ee"][key]
    limitation: dict[str, float] = {}
    for before, after in zip(a.pages, b.pages, strict=True):
        for reason, value in after["limitationSeconds"].items():
            spent_s = value - before["limitationSeconds"].get(reason, 0.0)
            limitation[reason] = round(limitation.get(reason, 0.0) + spent_s, 1)
    busy = (b.machine[0] - a.machine[0]) / max(b.machine[1] - a.machine[1], 1.0)
    return PhaseResult(
        mode=mode,
        repeat=repeat,
        seconds=round(seconds, 2),
        cpu_s=round(cpu, 2),
        cpu_by_kind={k: round(v, 2) for k, v in sorted(chromium.items())},
        cores=round(cpu / seconds, 3),
        driver_cpu_s=round(sum(v for k, v in spent.items() if k == "node"), 2),
        server_cpu_s=round(b.server_cpu - a.server_cpu, 2),
        machine_cores=round(busy * (os.cpu_count() or 1), 2),
        processes_ended=ended,
        video_encoded_per_s=round(encoded / seconds, 1),
        video_decoded_per_s=round(decoded / seconds, 1),
        audio_sent_per_s=round(diff("audioOut", "packets") / seconds, 1),
        audio_received_per_s=round(diff("audioIn", "packets") / seconds, 1),
        crypto_frames_per_s=round(crypto / seconds, 1),
        cpu_ms_per_video_frame=round(1000 * _per(cpu, encoded + decoded), 3),
        encode_ms_per_frame=round(1000 * _per(diff("videoOut", "seconds"), encoded), 2),
        decode_ms_per_frame=round(1000 * _per(diff("videoIn", "seconds"), decoded), 2),
        audio_bytes_per_packet=round(
            _per(diff("audioOut", "bytes"), diff("audioOut", "packets")), 2
        ),
        audio_bytes_per_packet_in=round(
            _per(diff("audioIn", "bytes"), diff("audioIn", "packets")), 2
        ),
        video_bytes_per_frame=round(_per(diff("videoOut", "bytes"), encoded), 1),
        video_kbps_out=round(8 * diff("videoOut", "bytes") / seconds / 1000, 1),
        audio_kbps_out=round(8 * diff("audioOut", "bytes") / seconds / 1000, 2),
        sent=[f"{p['videoOut']['width']}x{p['videoOut']['height']}" for p in b.pages],
        received=[f"{p['videoIn']['width']}x{p['videoIn']['height']}" for p in b.pages],
        limitation=limitation,
        video_lost=int(diff("videoIn", "lost")),
        freezes=int(diff("videoIn", "freezes")),
        counts=[p["e2ee"] for p in b.pages if p.get("e2ee")],
    )


async def snapshot(server: ServerProcess, pages: list[Any], encrypted: bool) -> Snapshot:
    # the pages first (their getStats costs the renderers a little CPU, equally in both modes)
    stats = [await page.evaluate(STATS_JS, encrypted) for page in pages]
    return Snapshot(
        at=time.monotonic(),
        processes=process_cpu(os.getpid(), {server.pid}),
        server_cpu=server.sample().cpu_seconds,
        machine=machine_busy(),
        pages=stats,
    )


async def ramp_up(pages: list[Any], warmup: float, every: float = 2.0) -> list[str]:
    """Wait ``warmup`` s; every ``every`` s note what each page sends (the estimate ramps up)."""
    trace: list[str] = []
    started = time.monotonic()
    last: list[dict[str, Any]] | None = None
    while True:
        now = [await page.evaluate(STATS_JS, False) for page in pages]
        t = time.monotonic() - started
        if last is not None:
            trace.append(
                f"{t:.0f}s "
                + " ".join(
                    f"{p['videoOut']['width']}x{p['videoOut']['height']}@"
                    f"{8 * (p['videoOut']['bytes'] - q['videoOut']['bytes']) / every / 1000:.0f}k"
                    for p, q in zip(now, last, strict=True)
                )
            )
        last = now
        if t + every > warmup:
            break
        await asyncio.sleep(every)
    await asyncio.sleep(max(0.0, warmup - (time.monotonic() - started)))
    return trace


async def _wait(page: Any, expression: str, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            state = await page.evaluate("() => window.digiclinicTest?.errors")
            raise TimeoutError(f"timed out waiting for {what}; page errors: {state}")
        await asyncio.sleep(0.25)


async def run_phase(
    playwright: Any,
    executable: str,
    server: ServerProcess,
    mode: str,
    repeat: int,
    seconds: float,
    warmup: float,
    video: str,
) -> PhaseResult:
    """One fresh Chromium, two pages in a room of their own: ``warmup`` s, then ``seconds`` s."""
    encrypted = mode == "e2ee"
    secret = Secret(server.secret_file.read_text().strip())
    room = f"e2ee-cpu-{mode}-{repeat}-{os.getpid()}"
    key = encode_key(1, os.urandom(32))
    browser = await playwright.chromium.launch(
        executable_path=executable, headless=True, args=CHROMIUM_ARGS
    )
    try:
        pages = []
        for identity, role in PAGES:
            token = mint_token(
                secret,
                room=room,
                identity=identity,
                role=role,
                name=identity,
                ttl=3600,
                e2ee="required" if encrypted else None,
            )
            query = urlencode({"token": token, "video": video, "simulcast": "0"})
            url = f"{server.url}{TEST_PAGE}?{query}"
            if encrypted:  # the consult key in the fragment: never sent to the server
                url += "#" + urlencode({"e2ee": key})
            context = await browser.new_context(viewport={"width": 1000, "height": 640})
            page = await context.new_page()
            await page.goto(url)
            pages.append(page)
        for page in pages:
            await _wait(page, "digiclinicTest.state === 'published'", 30, "published")
            await _wait(
                page,
                "(async () => (await digiclinicTest.stats()).inbound"
                ".some(s => s.kind === 'video' && s.framesDecoded > 10))()",
                30,
                "video decoded",
            )
        ramp = await ramp_up(pages, warmup)
        first = await snapshot(server, pages, encrypted)
        await asyncio.sleep(seconds)
        last = await snapshot(server, pages, encrypted)
        result = phase_result(mode, repeat, first, last)
        result.ramp = ramp
        return result
    finally:
        with contextlib.suppress(Exception):
            await browser.close()


def chromium_executable() -> str:
    found = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    if found is None:
        raise FileNotFoundError("Chromium is not installed (apt-get install -y chromium)")
    return found


# -- the run and its figures ---------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else 0.0


def summarize(results: list[PhaseResult]) -> dict[str, Any]:
    """Pairs (clear, e2ee) of the same repeat: ratios and differences, then their medians."""
    pairs: list[dict[str, float]] = []
    for repeat in sorted({r.repeat for r in results}):
        phases = {r.mode: r for r in results if r.repeat == repeat}
        if not {"clear", "e2ee"} <= set(phases):
            continue
        clear, e2ee = phases["clear"], phases["e2ee"]
        extra_cpu_per_s = e2ee.cores - clear.cores
        pairs.append(
            {
                "repeat": repeat,
                "cpu_ratio": round(e2ee.cores / clear.cores, 3) if clear.cores else 0.0,
                "cpu_per_frame_ratio": round(
                    e2ee.cpu_ms_per_video_frame / clear.cpu_ms_per_video_frame, 3
                )
                if clear.cpu_ms_per_video_frame
                else 0.0,
                "extra_cores": round(extra_cpu_per_s, 3),
                # the extra CPU spread over every frame the workers handled (audio and video)
                "extra_us_per_crypto_frame": round(
                    1e6 * _per(extra_cpu_per_s, e2ee.crypto_frames_per_s), 1
                ),
                "audio_bytes_added": round(
                    e2ee.audio_bytes_per_packet - clear.audio_bytes_per_packet, 2
                ),
                "audio_bytes_added_in": round(
                    e2ee.audio_bytes_per_packet_in - clear.audio_bytes_per_packet_in, 2
                ),
                "video_bytes_added": round(
                    e2ee.video_bytes_per_frame - clear.video_bytes_per_frame, 1
                ),
            }
        )
    keys = [key for key in (pairs[0] if pairs else {}) if key != "repeat"]
    medians = {key: _median([p[key] for p in pairs]) for key in keys}
    by_mode: dict[str, dict[str, float]] = {}
    for mode in MODES:
        runs = [r for r in results if r.mode == mode]
        if not runs:
            continue
        by_mode[mode] = {
            name: _median([float(getattr(r, name)) for r in runs])
            for name in (
                "cores",
                "cpu_ms_per_video_frame",
                "video_encoded_per_s",
                "video_decoded_per_s",
                "audio_sent_per_s",
                "crypto_frames_per_s",
                "encode_ms_per_frame",
                "decode_ms_per_frame",
                "audio_bytes_per_packet",
                "video_bytes_per_frame",
                "video_kbps_out",
                "machine_cores",
                "server_cpu_s",
            )
        }
    encrypted = by_mode.get("e2ee", {})
    audio_fps = encrypted.get("audio_sent_per_s", 0.0) / len(PAGES) or 50.0
    video_fps = encrypted.get("video_encoded_per_s", 0.0) / len(PAGES) or 20.0
    return {
        "pairs": pairs,
        "median": medians,
        "by_mode": by_mode,
        # what 29 bytes a frame cost on the wire, at the frame rates measured (one sender)
        "overhead_kbps": {
            "audio": round(OVERHEAD_BYTES * 8 * audio_fps / 1000, 2),
            "video": round(OVERHEAD_BYTES * 8 * video_fps / 1000, 2),
            "audio_fps": round(audio_fps, 1),
            "video_fps": round(video_fps, 1),
        },
    }


def write_report(
    results: list[PhaseResult], summary: dict[str, Any], output: Path, command: str
) -> None:
    output.mkdir(parents=True, exist_ok=True)
    document = {
        "command": command,
        "machine": {"cpus": os.cpu_count()},
        "phases": [asdict(r) for r in results],
        "summary": summary,
    }
    (output / "report.json").write_text(json.dumps(document, indent=1))
    lines = [
        "# Browser CPU and bytes of end-to-end encryption (two Chromium pages, one room)",
        "",
        f"`{command}` on {os.cpu_count()} CPUs",
        "",
        "| run | mode | Chromium cores | ms CPU / video frame | video enc+dec /s "
        "| crypto frames /s | enc ms | dec ms | audio B/pkt | video B/frame | video kbit/s "
        "| sent | limited (s) | machine cores |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        limited = ", ".join(f"{k} {v}" for k, v in r.limitation.items() if v and k != "none")
        lines.append(
            f"| {r.repeat} | {r.mode} | {r.cores:.3f} | {r.cpu_ms_per_video_frame:.2f} "
            f"| {r.video_encoded_per_s:.0f}+{r.video_decoded_per_s:.0f} "
            f"| {r.crypto_frames_per_s:.0f} | {r.encode_ms_per_frame:.2f} "
            f"| {r.decode_ms_per_frame:.2f} | {r.audio_bytes_per_packet:.1f} "
            f"| {r.video_bytes_per_frame:.0f} | {r.video_kbps_out:.0f} | {' '.join(r.sent)} "
            f"| {limited or '-'} | {r.machine_cores:.2f} |"
        )
    lines += ["", "## Pairs (e2ee against the clear run just before it)", ""]
    lines.append(
        "| run | CPU ratio | CPU/frame ratio | extra cores | extra µs / crypto frame "
        "| audio B added (sent) | audio B added (received) | video B added |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for p in [*summary["pairs"], {"repeat": "median", **summary["median"]}]:
        if len(p) < 2:
            continue
        lines.append(
            f"| {p['repeat']} | {p['cpu_ratio']:.3f} | {p['cpu_per_frame_ratio']:.3f} "
            f"| {p['extra_cores']:+.3f} | {p['extra_us_per_crypto_frame']:.0f} "
            f"| {p['audio_bytes_added']:+.2f} | {p['audio_bytes_added_in']:+.2f} "
            f"| {p['video_bytes_added']:+.1f} |"
        )
    over = summary["overhead_kbps"]
    lines += [
        "",
        f"29 bytes a frame: audio at {over['audio_fps']} frames/s = {over['audio']} kbit/s, "
        f"video at {over['video_fps']} frames/s = {over['video']} kbit/s (each sender).",
    ]
    (output / "report.md").write_text("\n".join(lines) + "\n")


async def run(
    repeat: int,
    seconds: float,
    warmup: float,
    video: str,
    results: list[PhaseResult],
    modes: tuple[str, ...] = MODES,
) -> None:
    from playwright.async_api import async_playwright  # noqa: PLC0415 - optional dependency

    executable = chromium_executable()
    servers = {red: ServerProcess(config={"media": {"opus_red": red}}) for red in (False, True)}
    try:
        for server in servers.values():
            await server.start()
        async with async_playwright() as playwright:
            for i in range(1, repeat + 1):
                for mode in modes:
                    print(f"==> run {i}/{repeat}: {mode}", file=sys.stderr, flush=True)
                    server = servers[mode == "clear-red"]
                    result = await run_phase(
                        playwright, executable, server, mode, i, seconds, warmup, video
                    )
                    results.append(result)
                    print(
                        f"    {result.cores:.3f} cores, {result.cpu_ms_per_video_frame:.2f} ms "
                        f"CPU/video frame, sent {' '.join(result.sent)}, "
                        f"audio {result.audio_bytes_per_packet:.1f} B/packet, "
                        f"machine {result.machine_cores:.2f} cores",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.stop()


def run_cli(
    repeat: int,
    seconds: float | None,
    output: Path | None,
    warmup: float | None = None,
    video: str | None = None,
    modes: list[str] | None = None,
) -> int:
    scenario = yaml.safe_load(SCENARIO.read_text())
    seconds = seconds or float(scenario.get("seconds", 20))
    warmup = float(scenario.get("warmup", 30)) if warmup is None else warmup
    video = video or str(scenario.get("video", "1280x720"))
    output = output or REPO / "artifacts" / "benchmarks" / time.strftime("e2ee-cpu-%Y%m%d-%H%M%S")
    command = (
        f"python -m benchmarks run e2ee_cpu --repeat {repeat} --duration {seconds:g}"
        f" (warm-up {warmup:g} s, camera {video}, simulcast off)"
    )
    chosen = tuple(modes or scenario.get("modes", MODES))
    unknown = set(chosen) - set(MODES)
    if unknown:
        print(f"error: unknown mode(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if chosen != MODES:
        command += f" --cases {','.join(chosen)}"
    results: list[PhaseResult] = []
    status = 0
    try:
        asyncio.run(run(repeat, seconds, warmup, video, results, chosen))
    except KeyboardInterrupt:
        print("interrupted: writing what finished", file=sys.stderr)
        status = 130
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"error: {exc}; writing what finished", file=sys.stderr)
        status = 1
    write_report(results, summarize(results), output, command)
    print((output / "report.md").read_text())
    print(f"written: {output}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="clear/e2ee pairs (default 3)")
    parser.add_argument("--duration", type=float, help="seconds measured per phase (default 20)")
    parser.add_argument("--warmup", type=float, help="seconds after the join (default 30)")
    parser.add_argument("--video", help="camera size asked for (default 1280x720)")
    parser.add_argument("--modes", help=f"comma-separated, of {', '.join(MODES)} (default all)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    modes = args.modes.split(",") if args.modes else None
    return run_cli(args.repeat, args.duration, args.output, args.warmup, args.video, modes)


if __name__ == "__main__":
    sys.exit(main())
