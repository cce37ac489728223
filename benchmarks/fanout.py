"""Fan-out benchmark: 1 publisher (pre-encoded VP8 + Opus) to N non-decoding subscribers.

    python -m benchmarks.fanout --sizes 1,10,50,100 --duration 10

The server runs in its own process. The publisher replays pre-encoded
packets (no encoding); each subscriber counts SRTP datagrams from their
cleartext headers (no decryption, no decoding). Reported per N: server CPU
microseconds per forwarded packet, packets/s and bits/s in and out, loss per
subscriber, server RSS, and the load generator's own CPU share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.server_process import ServerProcess
from benchmarks.synthetic_media import ReplayTrack, opus_clip, vp8_clip
from sfu.media import Source
from sfu.participant import Role
from signaling.client import ConsultClient
from signaling.config import Secret
from signaling.tokens import mint_token

RESULTS = Path(__file__).resolve().parent / "results"
_HDR = struct.Struct("!HII")


class StreamCounter:
    """Counts one subscriber's datagrams per SSRC: packets and sequence gaps."""

    __slots__ = ("bytes", "packets", "streams")

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.streams: dict[int, list[int]] = {}  # ssrc -> [first_ext, highest_ext, received]

    def __call__(self, data: bytes) -> None:
        seq, _ts, ssrc = _HDR.unpack_from(data, 2)
        self.packets += 1
        self.bytes += len(data)
        state = self.streams.get(ssrc)
        if state is None:
            self.streams[ssrc] = [seq, seq, 1]
            return
        highest = state[1]
        delta = (seq - highest) & 0xFFFF
        if delta < 0x8000:
            state[1] = highest + delta
        state[2] += 1

    def snapshot(self) -> dict[int, tuple[int, int]]:
        return {ssrc: (s[1] - s[0] + 1, s[2]) for ssrc, s in self.streams.items()}


def loss_between(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> tuple[int, int]:
    expected = received = 0
    for ssrc, (exp, rec) in after.items():
        exp0, rec0 = before.get(ssrc, (0, 0))
        expected += exp - exp0
        received += rec - rec0
    return expected, received


@dataclass
class FanoutResult:
    subscribers: int
    duration_s: float
    server_cpu_s: float
    server_cpu_share: float
    us_per_forwarded_packet: float
    system_share_of_cpu: float
    packets_in_per_s: float
    packets_out_per_s: float
    mbps_in: float
    mbps_out: float
    loss_max: float
    loss_mean: float
    server_rss_mb: float
    server_rss_per_subscriber_kb: float
    loadgen_cpu_share: float
    notes: list[str] = field(default_factory=list)


def _loadgen_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_size(n: int, duration: float, bitrate: int) -> FanoutResult:
    server = ServerProcess(config={"rooms": {"max_participants": n + 5}})
    await server.start()
    secret = Secret(server.secret_file.read_text().strip())
    room = f"fanout-{n}"

    def token(identity: str, role: Role) -> str:
        return mint_token(secret, room=room, identity=identity, role=role, ttl=3600)

    publisher = ConsultClient(
        server.ws_url, token("pub", Role.SPECIALIST), ice_addresses=["127.0.0.1"]
    )
    counters = [StreamCounter() for _ in range(n)]
    subscribers = [
        ConsultClient(
            server.ws_url,
            token(f"sub{i}", Role.OBSERVER),
            ice_addresses=["127.0.0.1"],
            media_sink=counters[i],
        )
        for i in range(n)
    ]
    idle_rss = server.sample().rss_bytes
    try:
        await publisher.connect()
        await publisher.join()
        await publisher.publish(
            [
                (ReplayTrack(opus_clip()), Source.MICROPHONE),
                (ReplayTrack(vp8_clip(bitrate=bitrate)), Source.CAMERA),
            ]
        )
        for start in range(0, n, 10):
            batch = subscribers[start : start + 10]
            await asyncio.gather(*(s.connect() for s in batch))
            await asyncio.gather(*(s.join() for s in batch))
        # wait until every subscriber receives both streams (video starts at a keyframe)
        deadline = time.monotonic() + 30
        while any(len(c.streams) < 2 for c in counters) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        waiting = sum(1 for c in counters if len(c.streams) < 2)
        await asyncio.sleep(1.0)

        m0, s0, l0 = await server.metrics(), server.sample(), _loadgen_cpu()
        snaps0 = [c.snapshot() for c in counters]
        t0 = time.monotonic()
        await asyncio.sleep(duration)
        elapsed = time.monotonic() - t0
        m1, s1, l1 = await server.metrics(), server.sample(), _loadgen_cpu()
        snaps1 = [c.snapshot() for c in counters]
    finally:
        await asyncio.gather(
            *(s.close() for s in subscribers), publisher.close(), return_exceptions=True
        )
        server.stop()

    out = m1["digiclinic_rtp_packets_out_total"] - m0["digiclinic_rtp_packets_out_total"]
    inn = m1["digiclinic_rtp_packets_in_total"] - m0["digiclinic_rtp_packets_in_total"]
    bytes_out = m1["digiclinic_rtp_bytes_out_total"] - m0["digiclinic_rtp_bytes_out_total"]
    bytes_in = m1["digiclinic_rtp_bytes_in_total"] - m0["digiclinic_rtp_bytes_in_total"]
    cpu = s1.cpu_seconds - s0.cpu_seconds
    losses = []
    for before, after in zip(snaps0, snaps1, strict=True):
        expected, received = loss_between(before, after)
        losses.append(max(0.0, 1 - received / expected) if expected else 1.0)
    notes = []
    if waiting:
        notes.append(f"{waiting} subscribers never received both streams")
    return FanoutResult(
        subscribers=n,
        duration_s=round(elapsed, 2),
        server_cpu_s=round(cpu, 3),
        server_cpu_share=round(cpu / elapsed, 3),
        us_per_forwarded_packet=round(cpu / out * 1e6, 2) if out else float("nan"),
        system_share_of_cpu=round((s1.system_seconds - s0.system_seconds) / cpu, 3) if cpu else 0.0,
        packets_in_per_s=round(inn / elapsed, 1),
        packets_out_per_s=round(out / elapsed, 1),
        mbps_in=round(bytes_in * 8 / elapsed / 1e6, 3),
        mbps_out=round(bytes_out * 8 / elapsed / 1e6, 3),
        loss_max=round(max(losses), 5),
        loss_mean=round(sum(losses) / len(losses), 5),
        server_rss_mb=round(s1.rss_bytes / 2**20, 1),
        server_rss_per_subscriber_kb=round((s1.rss_bytes - idle_rss) / n / 1024, 1),
        loadgen_cpu_share=round((l1 - l0) / elapsed, 3),
        notes=notes,
    )


def markdown(results: list[FanoutResult]) -> str:
    head = (
        "| N | server CPU | µs/fwd pkt | of which kernel | pkt/s in | pkt/s out | Mbit/s out | "
        "loss max | "
        "RSS MB | KB/sub | loadgen CPU |"
    )
    rows = [head, "|" + "---|" * 11]
    for r in results:
        rows.append(
            f"| {r.subscribers} | {r.server_cpu_share:.0%} | {r.us_per_forwarded_packet} | "
            f"{r.system_share_of_cpu:.0%} | {r.packets_in_per_s} | {r.packets_out_per_s} | "
            f"{r.mbps_out} | {r.loss_max:.2%} | "
            f"{r.server_rss_mb} | {r.server_rss_per_subscriber_kb} | {r.loadgen_cpu_share:.0%} |"
        )
    return "\n".join(rows)


async def main_async(sizes: list[int], duration: float, bitrate: int) -> list[FanoutResult]:
    results = []
    for n in sizes:
        print(f"fan-out N={n} ...", file=sys.stderr, flush=True)
        result = await run_size(n, duration, bitrate)
        print(
            f"  {result.us_per_forwarded_packet} µs/packet, loss max {result.loss_max:.2%}, "
            f"server CPU {result.server_cpu_share:.0%}, loadgen CPU {result.loadgen_cpu_share:.0%}",
            file=sys.stderr,
            flush=True,
        )
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,50,100")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--bitrate", type=int, default=800_000)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = asyncio.run(main_async(sizes, args.duration, args.bitrate))
    table = markdown(results)
    print(table)
    output = args.output or RESULTS / f"fanout-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps([asdict(r) for r in results], indent=2))
    print(f"\nwritten {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
