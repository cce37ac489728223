"""A benchmark subscriber that behaves like a receiver on a weak link.

:class:`LinkProbe` is a ``media_sink`` for ``ConsultClient``: it sees every
SRTP datagram the subscriber receives and reads only cleartext header fields
(sequence number, marker bit, timestamp, SSRC, header extensions), except for
video packets, which it decrypts to find keyframes (their size tells which
simulcast layer arrives) and RTX packets (to learn which lost packet they
repair).

Unlike the fan-out subscriber (traffic_sink.py), it also answers like a real
receiver, because the server's bandwidth estimate depends on it:

- REMB from aiortc's delay-based estimator (abs-send-time, which the SFU
  stamps at egress), sent whenever the estimator has a new value and again
  every second;
- receiver reports every second (fraction lost, cumulative loss, highest
  sequence, interarrival jitter, LSR/DLSR from the server's sender reports);
- NACK for missing video packets (retried every 150 ms, 5 times at most),
  and PLI when a gap is not repaired within a second (at most every 2 s).

Everything it sees is recorded with monotonic timestamps for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCRtpTransceiver

from sfu import aiortc_hooks
from sfu.rtcp import (
    ReceiverReport,
    ReportBlock,
    RtcpError,
    SenderReport,
    build_nack,
    build_pli,
    build_remb,
    build_rr,
    ntp_middle,
    parse_rtcp,
)
from sfu.rtp import EXT_ABS_SEND_TIME, RtpError, parse_rtp, vp8_is_keyframe_start

_HDR = struct.Struct("!BBHII")
NACK_RETRY = 0.15
NACK_TRIES = 5
GIVE_UP = 1.0  # a gap older than this asks for a keyframe instead
PLI_INTERVAL = 2.0
MAX_GAP = 500  # a jump larger than this is a new stream, not loss


@dataclass
class Stream:
    """Sequence accounting of one SSRC, as a receiver report needs it."""

    ssrc: int
    clock_rate: int
    base: int = -1  # first extended sequence number
    highest: int = -1
    received: int = 0
    seen: set[int] = field(default_factory=set)
    expected_prior: int = 0
    received_prior: int = 0
    jitter: float = 0.0
    _transit: float | None = None

    def add(self, seq: int, timestamp: int, now: float, timed: bool = True) -> tuple[int, int]:
        """Record one packet; returns (extended seq, packets newly missing before it).

        ``timed=False`` (a retransmission) leaves the jitter estimate alone.
        """
        if self.base < 0:
            self.base = self.highest = seq
            ext = seq
        else:
            delta = (seq - (self.highest & 0xFFFF)) & 0xFFFF
            ext = self.highest + delta if delta < 0x8000 else self.highest + delta - 0x10000
        gap = 0
        if ext > self.highest:
            gap = ext - self.highest - 1
            self.highest = ext
        if ext in self.seen:
            return ext, 0
        self.seen.add(ext)
        self.received += 1
        if not timed:
            return ext, gap
        transit = now * self.clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            self.jitter += (d - self.jitter) / 16
        self._transit = transit
        return ext, gap

    @property
    def expected(self) -> int:
        return 0 if self.base < 0 else self.highest - self.base + 1

    def report(self, lsr: int, dlsr: int) -> ReportBlock:
        expected = self.expected
        interval = expected - self.expected_prior
        got = self.received - self.received_prior
        self.expected_prior, self.received_prior = expected, self.received
        lost_interval = interval - got
        fraction = (lost_interval << 8) // interval if interval > 0 and lost_interval > 0 else 0
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(255, fraction),
            packets_lost=max(0, expected - self.received),
            highest_seq=self.highest & 0xFFFFFFFF,
            jitter=int(self.jitter),
            lsr=lsr,
            dlsr=dlsr,
        )


@dataclass
class OfferInfo:
    audio_ssrc: int | None = None
    video_ssrc: int | None = None
    rtx_ssrc: int | None = None
    abs_send_time_ext: int | None = None
    mids: dict[str, str] = field(default_factory=dict)  # mid -> kind


def read_offer(sdp: str) -> OfferInfo:
    """SSRCs and the abs-send-time id of the (first) audio and video m-lines."""
    info = OfferInfo()
    kind, mid = "", ""
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
            info.mids[mid] = kind
        elif line.startswith("a=ssrc-group:FID ") and kind == "video" and info.rtx_ssrc is None:
            _main, rtx = line.split()[1:3]
            info.rtx_ssrc = int(rtx)
        elif line.startswith("a=ssrc:"):
            ssrc = int(line[7:].split(" ", 1)[0])
            if kind == "audio" and info.audio_ssrc is None:
                info.audio_ssrc = ssrc
            elif kind == "video" and info.video_ssrc is None:
                info.video_ssrc = ssrc
        elif kind == "video" and line.startswith("a=extmap:") and EXT_ABS_SEND_TIME in line:
            m = re.match(r"a=extmap:(\d+)", line)
            if m:
                info.abs_send_time_ext = int(m.group(1))
    return info


def vp8_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from the first packet of a VP8 keyframe, else None."""
    if not vp8_is_keyframe_start(payload):
        return None
    start = payload.find(b"\x9d\x01\x2a")
    if start < 0 or start + 7 > len(payload):
        return None
    width, height = struct.unpack_from("<HH", payload, start + 3)
    return width & 0x3FFF, height & 0x3FFF


class LinkProbe:
    """Media sink + RTCP feedback for one subscriber (see the module docstring)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0  # times are recorded relative to this (monotonic)
        self.info = OfferInfo()
        self.streams: dict[int, Stream] = {}
        self.audio_seq: list[tuple[float, int]] = []
        self.frames: dict[int, float] = {}  # video RTP timestamp -> first marker arrival
        self.keyframes: list[tuple[float, int, int]] = []  # (t, width, height)
        self.bytes_per_second: dict[int, int] = {}
        self.video_bytes_per_second: dict[int, int] = {}
        self.rembs: list[tuple[float, int]] = []
        self.nacks_sent = 0
        self.nacked_packets = 0
        self.plis_sent = 0
        self.rtx_received = 0
        self.recovered = 0
        self.padding = 0
        self.packets = 0
        self.audio_bytes = 0
        self.first_media_at: float | None = None
        self.last_media_at: float | None = None
        self.first_video_at: float | None = None
        self._estimator = aiortc_hooks.UplinkEstimator()
        self._missing: dict[int, list[float]] = {}  # ext seq -> [first seen, last nack, tries]
        self._last_pli = -PLI_INTERVAL
        self._sr: dict[int, tuple[int, float]] = {}  # ssrc -> (lsr, arrival)
        self._rtcp_ssrc = random.getrandbits(32) or 1
        self._egress: aiortc_hooks.SrtpEgress | None = None
        self._unprotect: Callable[[bytes], bytes] | None = None
        self._transceiver: Callable[[], RTCRtpTransceiver | None] = lambda: None
        self._task: asyncio.Task[None] | None = None

    # -- wiring -------------------------------------------------------------------------

    def learn_offer(self, sdp: str) -> str:
        """Use as (part of) the subscriber offer filter."""
        info = read_offer(sdp)
        for name in ("audio_ssrc", "video_ssrc", "rtx_ssrc", "abs_send_time_ext"):
            if getattr(info, name) is not None:
                setattr(self.info, name, getattr(info, name))
        self.info.mids.update(info.mids)
        return sdp

    def attach(self, transceiver: Callable[[], RTCRtpTransceiver | None]) -> None:
        """Where to find the subscriber transport once it is connected."""
        self._transceiver = transceiver
        self._task = asyncio.get_running_loop().create_task(self._feedback_loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _connect(self) -> bool:
        if self._egress is not None:
            return True
        transceiver = self._transceiver()
        if transceiver is None:
            return False
        dtls = aiortc_hooks.dtls_transport(transceiver)
        if dtls.state != "connected":
            return False
        self._unprotect = aiortc_hooks.srtp_unprotector(transceiver)
        aiortc_hooks.take_over_transport(dtls, lambda data, ms: None, self._on_rtcp)
        self._egress = aiortc_hooks.SrtpEgress(dtls)
        return True

    # -- media in -----------------------------------------------------------------------

    def __call__(self, data: bytes) -> None:
        now = time.monotonic()
        _b0, b1, seq, timestamp, ssrc = _HDR.unpack_from(data)
        t = now - self.t0
        self.packets += 1
        second = int(t)
        self.bytes_per_second[second] = self.bytes_per_second.get(second, 0) + len(data)
        if self.first_media_at is None:
            self.first_media_at = t
        self.last_media_at = t
        info = self.info
        if ssrc == info.rtx_ssrc:
            self._on_rtx(data, now)
            return
        clock = 90000 if ssrc == info.video_ssrc else 48000
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = self.streams[ssrc] = Stream(ssrc, clock)
        ext_seq, gap = stream.add(seq, timestamp, now)
        if ssrc == info.audio_ssrc:
            self.audio_seq.append((round(t, 4), ext_seq))
            self.audio_bytes += len(data)
            return
        if ssrc != info.video_ssrc:
            return
        self.video_bytes_per_second[second] = self.video_bytes_per_second.get(second, 0) + len(data)
        if self.first_video_at is None:
            self.first_video_at = t
        if 0 < gap <= MAX_GAP:
            for missing in range(ext_seq - gap, ext_seq):
                self._missing.setdefault(missing, [now, 0.0, 0])
        self._missing.pop(ext_seq, None)
        if b1 & 0x80 and timestamp not in self.frames:
            self.frames[timestamp] = round(t, 4)
        self._remb_input(data, now, ssrc)
        self._look_inside(data, t)

    def _remb_input(self, data: bytes, now: float, ssrc: int) -> None:
        ext_id = self.info.abs_send_time_ext
        if ext_id is None or not data[0] & 0x10:
            return
        try:
            packet = parse_rtp(bytes([data[0] & 0xDF]) + data[1:])  # padding is encrypted
        except RtpError:
            return
        ast = packet.extensions.get(ext_id)
        if ast is None or len(ast) != 3:
            return
        if self._estimator.add(int(now * 1000), int.from_bytes(ast, "big"), len(data), ssrc):
            self._send_remb(now)

    def _decrypt(self, data: bytes) -> bytes | None:
        if self._unprotect is None and not self._connect():
            return None
        if self._unprotect is None:
            return None
        try:
            return self._unprotect(data)
        except Exception:  # pylibsrtp's own errors (replay, auth)
            return None

    def _look_inside(self, data: bytes, t: float) -> None:
        clear = self._decrypt(data)
        if clear is None:
            return
        try:
            packet = parse_rtp(clear)
        except RtpError:
            return
        size = vp8_keyframe_size(packet.payload)
        if size is not None:
            self.keyframes.append((round(t, 3), *size))

    def _on_rtx(self, data: bytes, now: float) -> None:
        self.rtx_received += 1
        self._remb_input(data, now, self.info.rtx_ssrc or 0)  # REMB needs every packet
        # the RTX stream is reported like the media ones (aiortc does; the
        # server judges its probes by the padding's loss and round trip)
        ssrc = self.info.rtx_ssrc or 0
        rtx = self.streams.get(ssrc)
        if rtx is None:
            rtx = self.streams[ssrc] = Stream(ssrc, 90000)
        rtx.add(int.from_bytes(data[2:4], "big"), 0, now, timed=False)
        clear = self._decrypt(data)
        if clear is None:
            return
        try:
            packet = parse_rtp(clear)
        except RtpError:
            return
        if len(packet.payload) <= 2:
            self.padding += 1
            return
        original = struct.unpack_from("!H", packet.payload)[0]
        video = self.streams.get(self.info.video_ssrc or -1)
        if video is None:
            return
        ext_seq, _gap = video.add(original, packet.timestamp, now, timed=False)
        if self._missing.pop(ext_seq, None) is not None:
            self.recovered += 1
        if packet.marker and packet.timestamp not in self.frames:
            self.frames[packet.timestamp] = round(now - self.t0, 4)

    # -- RTCP ---------------------------------------------------------------------------

    def _on_rtcp(self, data: bytes) -> None:
        try:
            records = parse_rtcp(data)
        except RtcpError:
            return
        now = time.monotonic()
        for record in records:
            if isinstance(record, SenderReport):
                self._sr[record.ssrc] = (ntp_middle(record.ntp), now)

    def _send(self, data: bytes) -> None:
        if self._egress is not None:
            self._egress.send_rtcp(data)

    def _media_ssrcs(self) -> list[int]:
        return [s for s in (self.info.video_ssrc, self.info.audio_ssrc) if s is not None]

    def _reported_ssrcs(self) -> list[int]:
        info = self.info
        return [s for s in (info.video_ssrc, info.rtx_ssrc, info.audio_ssrc) if s is not None]

    def _send_remb(self, now: float) -> None:
        bitrate = self._estimator.bitrate
        if bitrate <= 0 or not self._connect():
            return
        self._send(build_remb(self._rtcp_ssrc, bitrate, self._media_ssrcs()))
        self.rembs.append((round(now - self.t0, 3), bitrate))

    def _send_reports(self, now: float) -> None:
        blocks = []
        for ssrc, stream in self.streams.items():
            if ssrc not in self._reported_ssrcs():
                continue
            lsr, dlsr = 0, 0
            sr = self._sr.get(ssrc)
            if sr is not None:
                lsr, dlsr = sr[0], int((now - sr[1]) * 65536)
            blocks.append(stream.report(lsr, dlsr))
        if blocks:
            self._send(build_rr(ReceiverReport(self._rtcp_ssrc, blocks)))

    def _send_nacks(self, now: float) -> None:
        video = self.info.video_ssrc
        if video is None or not self._missing:
            return
        due: list[int] = []
        stale = False
        for ext_seq, entry in list(self._missing.items()):
            first, last, tries = entry
            if now - first > GIVE_UP or tries >= NACK_TRIES:
                del self._missing[ext_seq]
                stale = True
            elif now - last >= NACK_RETRY:
                entry[1], entry[2] = now, tries + 1
                due.append(ext_seq & 0xFFFF)
        if due:
            self._send(build_nack(self._rtcp_ssrc, video, due))
            self.nacks_sent += 1
            self.nacked_packets += len(due)
        if stale and now - self._last_pli >= PLI_INTERVAL:
            self._last_pli = now
            self._send(build_pli(self._rtcp_ssrc, video))
            self.plis_sent += 1

    async def _feedback_loop(self) -> None:
        last_report = 0.0
        while True:
            await asyncio.sleep(0.02)
            if not self._connect():
                continue
            now = time.monotonic()
            self._send_nacks(now)
            if now - last_report >= 1.0:
                last_report = now
                self._send_reports(now)
                self._send_remb(now)

    # -- results ------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        audio = self.streams.get(self.info.audio_ssrc or -1)
        video = self.streams.get(self.info.video_ssrc or -1)
        return {
            "packets": self.packets,
            "first_media_s": self.first_media_at,
            "first_video_s": self.first_video_at,
            "last_media_s": self.last_media_at,
            "audio_bytes": self.audio_bytes,
            "audio": None
            if audio is None
            else {"expected": audio.expected, "received": audio.received},
            "video": None
            if video is None
            else {"expected": video.expected, "received": video.received},
            "audio_seq": self.audio_seq,
            "frames": sorted(self.frames.values()),
            "keyframes": self.keyframes,
            "bytes_per_second": sorted(self.bytes_per_second.items()),
            "video_bytes_per_second": sorted(self.video_bytes_per_second.items()),
            "rembs": self.rembs,
            "nacks_sent": self.nacks_sent,
            "nacked_packets": self.nacked_packets,
            "plis_sent": self.plis_sent,
            "rtx_received": self.rtx_received,
            "recovered": self.recovered,
            "padding_received": self.padding,
        }
