"""A publisher that replays pre-packetized RTP: no encoder, no aiortc send loop.

Each clip frame is cut into RTP payloads once. Sending a packet then costs a
12-byte header, SRTP protect and a sendto. Every payload carries a 12-byte
trailer (magic + CLOCK_MONOTONIC send time in ns) so a subscriber that
decrypts a sample of packets can measure end-to-end latency across the SFU,
which rewrites every header but never the payload. Keyframe requests (PLI/FIR)
jump the replay to the next keyframe of the clip; NACKed packets are resent.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from dataclasses import dataclass

from aiortc import RTCRtpTransceiver

from benchmarks.synthetic_media import EncodedClip
from sfu import aiortc_hooks
from sfu.rtcp import KeyframeRequest, Nack, RtcpError, parse_rtcp
from sfu.rtp import EXT_ABS_SEND_TIME, EXT_MID, abs_send_time, build_header, extension_block

MAGIC = b"DCBT"
TRAILER = struct.Struct("!4sQ")
MAX_PAYLOAD = 1100
RESEND_BUFFER = 512


def stamp(payload: bytes) -> bytes:
    return payload + TRAILER.pack(MAGIC, time.monotonic_ns())


def read_stamp(payload: bytes) -> int | None:
    """Send time (monotonic ns) from a stamped payload, or None."""
    if len(payload) < TRAILER.size:
        return None
    magic, sent = TRAILER.unpack_from(payload, len(payload) - TRAILER.size)
    return int(sent) if magic == MAGIC else None


@dataclass(frozen=True)
class PacketizedFrame:
    payloads: tuple[bytes, ...]
    keyframe: bool


def packetize(clip: EncodedClip) -> list[PacketizedFrame]:
    frames = []
    for data, key in zip(clip.frames, clip.keyframes, strict=True):
        if clip.kind == "audio":
            frames.append(PacketizedFrame((data,), key))
            continue
        chunks = [data[i : i + MAX_PAYLOAD] for i in range(0, len(data), MAX_PAYLOAD)] or [b""]
        # VP8 payload descriptor (RFC 7741) without extensions: S bit on the first
        payloads = tuple(bytes([0x10 if i == 0 else 0x00]) + c for i, c in enumerate(chunks))
        frames.append(PacketizedFrame(payloads, key))
    return frames


class RtpReplaySender:
    """Sends one clip on one negotiated m-line, in real time, looping."""

    def __init__(
        self, transceiver: RTCRtpTransceiver, clip: EncodedClip, mid: str, stamped: bool = True
    ) -> None:
        self.transceiver = transceiver
        self.stamped = stamped  # off for servers that decode: the trailer breaks VP8 frames
        self.clip = clip
        self.frames = packetize(clip)
        self.mid = mid
        self.packets_sent = 0
        self.keyframe_requests = 0
        self.resent = 0
        self._index = 0
        self._seq = 1000
        self._task: asyncio.Task[None] | None = None
        self._sent: dict[int, bytes] = {}

    def start(self) -> None:
        """Called once the publisher transport is connected."""
        if self._task is not None:
            return
        codecs = aiortc_hooks.negotiated_codecs(self.transceiver)
        self._pt = int(codecs[0].payloadType or 0)
        self._ssrc, _ = aiortc_hooks.sender_ssrcs(self.transceiver)
        ext = {e.uri: e.id for e in aiortc_hooks.negotiated_header_extensions(self.transceiver)}
        self._mid_ext = ext.get(EXT_MID)
        self._ast_ext = ext.get(EXT_ABS_SEND_TIME) if self.clip.kind == "video" else None
        self._egress = aiortc_hooks.SrtpEgress(aiortc_hooks.dtls_transport(self.transceiver))
        self._task = asyncio.get_running_loop().create_task(self._run())

    def use_clip(self, clip: EncodedClip) -> None:
        """Go on with another clip of the same frame duration (e.g. Opus at another bitrate)."""
        assert clip.frame_duration == self.clip.frame_duration
        self.clip = clip
        self.frames = packetize(clip)

    def on_rtcp(self, records: list[object]) -> None:
        for record in records:
            if isinstance(record, KeyframeRequest) and record.media_ssrc == self._ssrc:
                self.keyframe_requests += 1
                self._jump_to_keyframe()
            elif isinstance(record, Nack) and record.media_ssrc == self._ssrc:
                for seq in record.lost:
                    data = self._sent.get(seq)
                    if data is not None and self._egress.send_rtp(data):
                        self.resent += 1

    def _jump_to_keyframe(self) -> None:
        n = len(self.frames)
        for step in range(n):
            if self.frames[(self._index + step) % n].keyframe:
                self._index += step
                return

    async def _run(self) -> None:
        clip = self.clip
        period = float(clip.frame_duration * clip.time_base)
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        ext_elements: list[tuple[int, bytes]] = []
        if self._mid_ext is not None:
            ext_elements.append((self._mid_ext, self.mid.encode()))
        while True:
            frame = self.frames[self._index % len(self.frames)]
            timestamp = (tick * clip.frame_duration) & 0xFFFFFFFF
            elements = list(ext_elements)
            if self._ast_ext is not None:
                elements.append((self._ast_ext, abs_send_time(time.time())))
            ext = extension_block(elements)
            last = len(frame.payloads) - 1
            for i, payload in enumerate(frame.payloads):
                seq = self._seq
                self._seq = (seq + 1) & 0xFFFF
                header = build_header(i == last, self._pt, seq, timestamp, self._ssrc, ext)
                data = header + (stamp(payload) if self.stamped else payload)
                if self._egress.send_rtp(data):
                    self.packets_sent += 1
                self._sent[seq] = data
                self._sent.pop((seq - RESEND_BUFFER) & 0xFFFF, None)
            self._index += 1
            tick += 1
            delay = start + tick * period - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def route_rtcp(senders: list[RtpReplaySender]) -> aiortc_hooks.RtcpHandler:
    """An RTCP handler for a publisher transport that feeds every sender."""

    def on_rtcp(data: bytes) -> None:
        try:
            records: list[object] = list(parse_rtcp(data))
        except RtcpError:
            return
        for sender in senders:
            if sender._task is not None:
                sender.on_rtcp(records)

    return on_rtcp
