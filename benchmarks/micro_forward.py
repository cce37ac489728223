"""Micro-benchmark of the in-process packet path (no sockets, no SRTP).

    python -m benchmarks.micro_forward --subscribers 100 --packets 20000 --rounds 3

Feeds parsed VP8 packets to one Producer with N Consumers; reports CPU
microseconds per forwarded packet for the Python part of the path (parse,
fan-out, header rewrite, RTX buffer) with three egresses, interleaved in
the same run (the machine is noisy):

- ``direct``: each Consumer's packets go straight to a counting sink (the
  path before the pacer existed);
- ``paced``: through a TransportSender whose pacer runs at a rate no burst
  of this run reaches (a wide link: every packet takes the same fast-path
  arithmetic as at 1.5 x a 5 Mbit/s estimate), no transport-cc;
- ``paced+twcc``: the same with transport-wide sequence numbers stamped
  and recorded (a browser subscriber).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sfu.consumer import Consumer, OutboundParams
from sfu.media import CodecInfo, MediaKind, PacketClass, Source
from sfu.producer import Producer
from sfu.rtp import build_header, extension_block, parse_rtp
from sfu.transport_sender import TransportSender

EGRESSES = ("direct", "paced", "paced+twcc")


class CountingSink:
    def __init__(self) -> None:
        self.packets = 0

    def send_rtp(self, data: bytes, cls: PacketClass = PacketClass.VIDEO) -> bool:
        self.packets += 1
        return True

    def send_rtcp(self, data: bytes) -> bool:
        return True


async def run(subscribers: int, packets: int, egress: str = "direct") -> float:
    codec = CodecInfo("video/VP8", 90000, 96, rtx_payload_type=97, nack=True)
    producer = Producer("p", "pub", MediaKind.VIDEO, Source.CAMERA, codec, "1", lambda ssrc: None)
    producer.bind_ssrc(1111)
    sink = CountingSink()
    twcc = 5 if egress == "paced+twcc" else None
    for i in range(subscribers):
        consumer = Consumer(f"c{i}", producer, f"s{i}")
        producer.add_consumer(consumer)
        out: CountingSink | TransportSender = sink
        if egress != "direct":
            out = TransportSender(sink)
            out.configure(twcc, 3)
            out.set_rate(1e9)  # a wide link: every packet on the pacer's fast path
        params = OutboundParams(
            "1", 5000 + i, 6000 + i, 100, 101, 1, 3, None, True, "x", transport_cc_ext=twcc
        )
        consumer.bind(params, out)
    ext = extension_block([(1, b"1"), (3, b"\x00\x00\x01")])
    key = bytes([0x90, 0x80, 0x00, 0x10, 0x02, 0x9D, 0x01, 0x2A]) + b"k" * 1100
    delta = bytes([0x90, 0x80, 0x00, 0x11, 0x01]) + b"d" * 1100
    wire = [
        build_header(i % 3 == 0, 96, i & 0xFFFF, 3000 * (i // 3), 1111, ext)
        + (key if i == 0 else delta)
        for i in range(packets)
    ]
    start = time.process_time()
    for i, data in enumerate(wire):
        producer.receive_rtp(parse_rtp(data), i, len(data))
    elapsed = time.process_time() - start
    assert sink.packets == packets * subscribers, sink.packets
    return elapsed / sink.packets * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of each egress")
    args = parser.parse_args()
    results: dict[str, list[float]] = {e: [] for e in EGRESSES}
    for _ in range(args.rounds):
        for egress in EGRESSES:
            results[egress].append(asyncio.run(run(args.subscribers, args.packets, egress)))
    direct = min(results["direct"])
    print(f"CPU µs per forwarded packet, Python path only, {args.subscribers} subscribers")
    for egress, values in results.items():
        best = min(values)
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {egress:11} best {best:.2f} ({runs}); x{best / direct:.2f} of direct")


if __name__ == "__main__":
    main()
