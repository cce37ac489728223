"""Micro-benchmark of the egress: SRTP-protect one packet per subscriber and send the copies.

    python -m benchmarks.micro_egress --subscribers 100 --packets 2000 --rounds 5

One shared UDP socket (the one media port) sends each packet's copies to N
loopback receivers that never read (the kernel drops what overflows their
buffers; the sender never waits). CPU microseconds per copy, interleaved
in the same run (the machine is noisy), for:

- ``sendto``: one ``sendto`` per copy (the egress before batching, and
  still the path with ``media.batched_egress: false``);
- ``sendmmsg``: the copies queued and flushed with sfu/_sendmmsg.c;
- ``python-batch``: the same queue flushed by the pure-Python twin.

Each copy is protected with its own SRTP session (pylibsrtp), as each
subscriber's transport has its own keys; ``--no-srtp`` leaves that out to
show the system calls alone.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time
from collections.abc import Callable

from pylibsrtp import Policy, Session

from sfu.rtp import build_header
from sfu.udp_batch import send_each, send_mmsg

MODES = ("sendto", "sendmmsg", "python-batch")


def session() -> Session:
    policy = Policy(key=os.urandom(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    return Session(policy=policy)


def run(mode: str, subscribers: int, packets: int, srtp: bool) -> float:
    """CPU µs per copy sent."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    sender.setblocking(False)
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    receivers = []
    for _ in range(subscribers):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        receivers.append(receiver)
    addrs = [r.getsockname() for r in receivers]
    sessions = [session() for _ in range(subscribers)]
    payload = bytes(1100)
    protect: Callable[[Session, bytes], bytes] = (
        (lambda s, data: s.protect(data)) if srtp else (lambda s, data: data)
    )
    flush = {"sendmmsg": send_mmsg, "python-batch": send_each}.get(mode)
    start = time.process_time()
    for seq in range(packets):
        packet = build_header(False, 96, seq, seq * 3000, 0x1234, b"") + payload
        if flush is None:
            for s, addr in zip(sessions, addrs, strict=True):
                try:  # noqa: SIM105 - a context manager per copy would tilt the comparison
                    sender.sendto(protect(s, packet), addr)
                except BlockingIOError:
                    pass
        else:
            flush(
                sender,
                [(protect(s, packet), addr) for s, addr in zip(sessions, addrs, strict=True)],
            )
    elapsed = time.process_time() - start
    for sock in (sender, *receivers):
        sock.close()
    return elapsed / (packets * subscribers) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-srtp", action="store_true")
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            results[mode].append(run(mode, args.subscribers, args.packets, not args.no_srtp))
    base = statistics.median(results["sendto"])
    srtp = "without SRTP" if args.no_srtp else "SRTP included"
    print(f"{args.subscribers} subscribers, {args.packets} packets x {args.rounds} rounds, {srtp}")
    for mode in MODES:
        med = statistics.median(results[mode])
        runs = ", ".join(f"{v:.2f}" for v in results[mode])
        print(f"  {mode:13} {med:6.2f} µs CPU per copy (ratio {med / base:.2f})  [{runs}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
