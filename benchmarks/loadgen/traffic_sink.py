"""What a benchmark subscriber does with the media it receives: count it.

SRTP leaves the RTP header in clear, so packets and sequence gaps are counted
per SSRC without decryption. One packet in ``sample_every`` is decrypted to
read the publisher's send-time trailer (end-to-end latency).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from benchmarks.loadgen.rtp_source import read_stamp
from sfu.rtp import RtpError, parse_rtp

_HDR = struct.Struct("!BHII")  # second byte, seq, timestamp, ssrc


class TrafficSink:
    """Called with every SRTP media datagram one subscriber receives."""

    def __init__(self, sample_every: int = 10) -> None:
        self.sample_every = sample_every
        self.packets = 0
        self.bytes = 0
        # ssrc -> [first_ext_seq, highest_ext_seq, received]
        self.streams: dict[int, list[int]] = {}
        self.video_ssrcs: set[int] = set()
        self.latency_ns: list[int] = []
        self.joined_at: float | None = None
        self.first_video_at: float | None = None
        self.unprotect: Callable[[], Callable[[bytes], bytes] | None] = lambda: None
        self._countdown = sample_every

    def __call__(self, data: bytes) -> None:
        _pt, seq, _ts, ssrc = _HDR.unpack_from(data, 1)
        self.packets += 1
        self.bytes += len(data)
        state = self.streams.get(ssrc)
        if state is None:
            self.streams[ssrc] = [seq, seq, 1]
            if ssrc in self.video_ssrcs and self.first_video_at is None:
                self.first_video_at = time.monotonic()
        else:
            delta = (seq - (state[1] & 0xFFFF)) & 0xFFFF
            if delta < 0x8000:
                state[1] += delta
            state[2] += 1
        self._countdown -= 1
        if self._countdown <= 0:
            self._countdown = self.sample_every
            self._sample(data)

    def learn_offer(self, sdp: str) -> str:
        """Note the video SSRCs of a subscriber offer (use as the offer filter)."""
        kind = ""
        for line in sdp.splitlines():
            if line.startswith("m="):
                kind = line[2:].split(" ", 1)[0]
            elif kind == "video" and line.startswith("a=ssrc:"):
                self.video_ssrcs.add(int(line[7:].split(" ", 1)[0]))
        return sdp

    def _sample(self, data: bytes) -> None:
        unprotect = self.unprotect()
        if unprotect is None:
            return
        try:
            packet = parse_rtp(unprotect(data))
        except (RtpError, Exception):  # pylibsrtp raises its own errors (e.g. replay)
            return
        sent = read_stamp(packet.payload)
        if sent is not None:
            self.latency_ns.append(time.monotonic_ns() - sent)

    def snapshot(self) -> dict[int, tuple[int, int, bool]]:
        """ssrc -> (expected, received, is_video), cumulative."""
        return {
            ssrc: (s[1] - s[0] + 1, s[2], ssrc in self.video_ssrcs)
            for ssrc, s in self.streams.items()
        }
