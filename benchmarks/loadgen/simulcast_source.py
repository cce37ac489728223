"""A simulcast publisher without a browser: three pre-encoded VP8 layers by RID.

It publishes like Chrome does: one video m-line whose offer carries
``a=rid:<id> send`` per layer and ``a=simulcast:send q;h;f`` (lowest first)
and no ``a=ssrc`` lines, then sends each layer on its own SSRC with the MID
and RID header extensions, answers NACKs with RTX carrying the repaired RID,
answers PLIs with the layer's next keyframe, and stops or restarts a layer
when the server says so (``publisher_layers``). VP8 payload descriptors
carry a 15-bit PictureID and TL0PICIDX per layer, as Chrome's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiortc import RTCRtpTransceiver

from benchmarks.loadgen.rtp_source import MAX_PAYLOAD, RESEND_BUFFER, RtpReplaySender
from benchmarks.synthetic_media import EncodedClip, vp8_clip
from sfu import aiortc_hooks
from sfu.media import Source
from sfu.rtcp import KeyframeRequest, Nack, RtcpError, parse_rtcp
from sfu.rtp import (
    EXT_ABS_SEND_TIME,
    EXT_MID,
    EXT_REPAIRED_RID,
    EXT_RID,
    abs_send_time,
    build_header,
    extension_block,
)
from signaling.client import ConsultClient

aiortc_hooks.accept_simulcast_extensions()

RIDS = ("q", "h", "f")
LAYER_SIZES = ((320, 180, 100_000), (640, 360, 350_000), (1280, 720, 900_000))
FPS = 15


def simulcast_clips(
    seconds: int = 6, sizes: Sequence[tuple[int, int, int]] = LAYER_SIZES
) -> list[EncodedClip]:
    """One VP8 clip per layer (cached on disk after the first encode)."""
    return [vp8_clip(w, h, FPS, rate, seconds, gop=FPS * 2) for w, h, rate in sizes]


def offer_simulcast(sdp: str, rids: Sequence[str] = RIDS) -> str:
    """Make an aiortc offer's video m-line a Chrome-style RID simulcast offer."""
    eol = "\r\n" if "\r\n" in sdp else "\n"
    parts = re.split(r"(?=^m=)", sdp, flags=re.M)
    out = []
    for original in parts:
        part = original
        if part.startswith("m=video"):
            lines = [
                line
                for line in part.split(eol)
                if not line.startswith("a=ssrc:") and not line.startswith("a=ssrc-group:")
            ]
            body = eol.join(line for line in lines if line)
            body += eol + eol.join(f"a=rid:{rid} send" for rid in rids)
            body += eol + f"a=simulcast:send {';'.join(rids)}" + eol
            part = body
        out.append(part)
    return "".join(out)


@dataclass
class _LayerState:
    rid: str
    clip: EncodedClip
    ssrc: int
    rtx_ssrc: int
    active: bool = True
    index: int = 0
    seq: int = field(default_factory=lambda: random.randint(0, 0x7FFF))
    rtx_seq: int = field(default_factory=lambda: random.randint(0, 0x7FFF))
    picture_id: int = field(default_factory=lambda: random.randint(0, 0x7FFF))
    tl0: int = field(default_factory=lambda: random.randint(0, 0xFF))
    timestamp: int = field(default_factory=lambda: random.randint(0, 0xFFFFFFFF))
    packets_sent: int = 0
    keyframe_requests: int = 0
    sent: dict[int, bytes] = field(default_factory=dict)  # seq -> payload


class SimulcastReplaySender:
    """Sends three layers on one negotiated video m-line, in real time, looping."""

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        clips: Sequence[EncodedClip],
        mid: str,
        rids: Sequence[str] = RIDS,
    ) -> None:
        self.transceiver = transceiver
        self.mid = mid
        self.layers = [
            _LayerState(rid, clip, random.getrandbits(32), random.getrandbits(32))
            for rid, clip in zip(rids, clips, strict=True)
        ]
        self.resent = 0
        self.layer_commands: list[dict[str, bool]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is not None:
            return
        codecs = aiortc_hooks.negotiated_codecs(self.transceiver)
        self._pt = int(codecs[0].payloadType or 0)
        self._rtx_pt = next(
            (
                int(c.payloadType or 0)
                for c in codecs
                if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") == self._pt
            ),
            None,
        )
        ext = {e.uri: e.id for e in aiortc_hooks.negotiated_header_extensions(self.transceiver)}
        self._mid_ext = ext.get(EXT_MID)
        self._rid_ext = ext.get(EXT_RID)
        self._rrid_ext = ext.get(EXT_REPAIRED_RID)
        self._ast_ext = ext.get(EXT_ABS_SEND_TIME)
        if self._rid_ext is None:
            raise RuntimeError("the server did not accept the RID header extension")
        self._egress = aiortc_hooks.SrtpEgress(aiortc_hooks.dtls_transport(self.transceiver))
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def packets_sent(self) -> int:
        return sum(layer.packets_sent for layer in self.layers)

    def set_active(self, active: dict[str, bool]) -> None:
        """Apply a ``publisher_layers`` command (rid -> on/off)."""
        self.layer_commands.append(dict(active))
        for layer in self.layers:
            on = active.get(layer.rid, layer.active)
            if on and not layer.active:
                self._jump_to_keyframe(layer)  # a restarted encoder starts with a keyframe
            layer.active = on

    def on_event(self, event: dict[str, object]) -> None:
        """Feed signalling events; acts on ``publisher_layers``."""
        if event.get("type") != "publisher_layers":
            return
        layers = event.get("layers")
        if isinstance(layers, list):
            self.set_active({str(item["rid"]): bool(item["active"]) for item in layers})

    def on_rtcp(self, records: list[object]) -> None:
        for record in records:
            if isinstance(record, KeyframeRequest):
                for layer in self.layers:
                    if layer.ssrc == record.media_ssrc:
                        layer.keyframe_requests += 1
                        self._jump_to_keyframe(layer)
            elif isinstance(record, Nack):
                for layer in self.layers:
                    if layer.ssrc == record.media_ssrc:
                        for seq in record.lost:
                            self._retransmit(layer, seq)

    def _jump_to_keyframe(self, layer: _LayerState) -> None:
        clip = layer.clip
        n = len(clip.frames)
        for step in range(n):
            if clip.keyframes[(layer.index + step) % n]:
                layer.index += step
                return

    def _extensions(self, rid_ext: int | None, rid: str) -> bytes:
        elements: list[tuple[int, bytes]] = []
        if self._mid_ext is not None:
            elements.append((self._mid_ext, self.mid.encode()))
        if rid_ext is not None:
            elements.append((rid_ext, rid.encode()))
        if self._ast_ext is not None:
            elements.append((self._ast_ext, abs_send_time(time.time())))
        return extension_block(elements)

    def _retransmit(self, layer: _LayerState, seq: int) -> None:
        entry = layer.sent.get(seq)
        if entry is None:
            return
        if self._rtx_pt is None:
            return
        marker_ts = entry[:5]
        marker = bool(marker_ts[0])
        timestamp = int.from_bytes(marker_ts[1:5], "big")
        payload = entry[5:]
        header = build_header(
            marker,
            self._rtx_pt,
            layer.rtx_seq,
            timestamp,
            layer.rtx_ssrc,
            self._extensions(self._rrid_ext, layer.rid),
        )
        layer.rtx_seq = (layer.rtx_seq + 1) & 0xFFFF
        if self._egress.send_rtp(header + seq.to_bytes(2, "big") + payload):
            self.resent += 1

    def _send_frame(self, layer: _LayerState, tick_ts: int) -> None:
        clip = layer.clip
        data = clip.frames[layer.index % len(clip.frames)]
        layer.index += 1
        chunks = [data[i : i + MAX_PAYLOAD] for i in range(0, len(data), MAX_PAYLOAD)] or [b""]
        layer.picture_id = (layer.picture_id + 1) & 0x7FFF
        layer.tl0 = (layer.tl0 + 1) & 0xFF  # every picture is temporal layer 0
        descriptor_tail = bytes(
            (0xE0, 0x80 | (layer.picture_id >> 8), layer.picture_id & 0xFF, layer.tl0, 0x00)
        )
        ext = self._extensions(self._rid_ext, layer.rid)
        timestamp = (layer.timestamp + tick_ts) & 0xFFFFFFFF
        last = len(chunks) - 1
        for i, chunk in enumerate(chunks):
            payload = bytes((0x90 if i == 0 else 0x80,)) + descriptor_tail + chunk
            seq = layer.seq
            layer.seq = (seq + 1) & 0xFFFF
            header = build_header(i == last, self._pt, seq, timestamp, layer.ssrc, ext)
            if self._egress.send_rtp(header + payload):
                layer.packets_sent += 1
            layer.sent[seq] = bytes((i == last,)) + timestamp.to_bytes(4, "big") + payload
            layer.sent.pop((seq - RESEND_BUFFER) & 0xFFFF, None)

    async def _run(self) -> None:
        period = 1.0 / FPS
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        while True:
            tick_ts = tick * (90000 // FPS)
            for layer in self.layers:
                if layer.active:
                    self._send_frame(layer, tick_ts)
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


@dataclass
class SimulcastPublication:
    video: SimulcastReplaySender
    audio: RtpReplaySender

    async def stop(self) -> None:
        await self.video.stop()
        await self.audio.stop()


async def publish_simulcast(
    client: ConsultClient,
    clips: Sequence[EncodedClip],
    audio_clip: EncodedClip,
    stamped_audio: bool = False,
) -> SimulcastPublication:
    """Publish Opus + three-layer simulcast VP8 through ``client`` (already joined).

    The client's publisher offer is rewritten into a RID simulcast offer, and
    ``publisher_layers`` commands from the server reach the video sender.
    """
    previous = client.publisher_offer_filter
    client.publisher_offer_filter = offer_simulcast
    senders: list[RtpReplaySender | SimulcastReplaySender] = []

    def start() -> None:
        for sender in senders:
            sender.start()

    try:
        audio_t, video_t = await client.publish_raw([Source.MICROPHONE, Source.CAMERA], start)
    finally:
        client.publisher_offer_filter = previous
    audio = RtpReplaySender(audio_t, audio_clip, audio_t.mid or "", stamped_audio)
    video = SimulcastReplaySender(video_t, clips, video_t.mid or "")
    senders.extend([audio, video])
    client.event_listeners.append(video.on_event)

    def on_rtcp(data: bytes) -> None:
        try:
            records: list[object] = list(parse_rtcp(data))
        except RtcpError:
            return
        audio.on_rtcp(records)
        video.on_rtcp(records)

    dtls = aiortc_hooks.dtls_transport(video_t)
    aiortc_hooks.take_over_transport(dtls, lambda data, ms: None, on_rtcp)
    if dtls.state == "connected":
        start()
    return SimulcastPublication(video, audio)
