"""The weak-link scenario's publisher: pre-encoded video (simulcast or one layer) + Opus.

``simulcast`` is benchmarks/loadgen/simulcast_source.py's ``publish_simulcast``
(three VP8 layers by RID, Chrome-style offer, ``publisher_layers`` obeyed); ``plain``
is the fan-out benchmark's single-layer VP8 replay. Both replay clips that
were encoded once, so the publisher costs little and never adapts by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from benchmarks.loadgen.rtp_source import RtpReplaySender
from benchmarks.synthetic_media import opus_clip, vp8_clip
from sfu import aiortc_hooks
from sfu.media import Source
from sfu.rtcp import RtcpError, parse_rtcp
from signaling.client import ConsultClient


class _Sender(Protocol):
    def start(self) -> None: ...
    def on_rtcp(self, records: list[object]) -> None: ...
    async def stop(self) -> None: ...


THIN_OPUS_BPS = 16_000  # media.thin_link_opus_kbps's default


def _obey_audio_cap(publisher: Publisher, audio_bitrate: int, event: dict[str, Any]) -> None:
    """``publisher_audio``: replay the Opus clip encoded at the bitrate asked for, as a
    browser's capped encoder would (the clip made at that bitrate, from then on)."""
    if event.get("type") != "publisher_audio" or not publisher.senders:
        return
    cap = event.get("max_bitrate_bps")
    bitrate = min(audio_bitrate, cap) if isinstance(cap, int) else audio_bitrate
    audio = publisher.senders[0]
    if isinstance(audio, RtpReplaySender):
        audio.use_clip(opus_clip(bitrate=bitrate))
        publisher.audio_caps.append((time.monotonic(), cap if isinstance(cap, int) else None))


def simulcast_available() -> bool:
    return importlib.util.find_spec("benchmarks.loadgen.simulcast_source") is not None


@dataclass
class Publisher:
    kind: str
    client: ConsultClient
    senders: list[_Sender] = field(default_factory=list)  # audio first
    # publisher_audio obeyed: (monotonic time, bit/s or None)
    audio_caps: list[tuple[float, int | None]] = field(default_factory=list)

    async def stop(self) -> None:
        for sender in self.senders:
            await sender.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.leave(), 5)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for i, sender in enumerate(self.senders):
            out[f"sender{i}_packets"] = getattr(sender, "packets_sent", None)
            commands = getattr(sender, "layer_commands", None)
            if commands is not None:
                out["layer_commands"] = list(commands)
        out["audio_caps"] = list(self.audio_caps)
        return out


async def start_publisher(
    kind: str, ws_url: str, token: str, host: str, video_bitrate: int, audio_bitrate: int = 32_000
) -> Publisher:
    """Join and publish Opus + video; returns once the transport is being set up."""
    client = ConsultClient(ws_url, token, ice_addresses=[host], auto_subscribe=False)
    publisher = Publisher(kind, client)
    client.event_listeners.append(functools.partial(_obey_audio_cap, publisher, audio_bitrate))
    opus_clip(bitrate=min(audio_bitrate, THIN_OPUS_BPS))  # encoded now, not mid-call
    await client.connect()
    await client.join()
    if kind == "simulcast":
        from benchmarks.loadgen import simulcast_source  # noqa: PLC0415 - optional module

        publication = await simulcast_source.publish_simulcast(
            client, simulcast_source.simulcast_clips(), opus_clip(bitrate=audio_bitrate)
        )
        publisher.senders = [publication.audio, publication.video]
        return publisher
    senders: list[_Sender] = []

    def start() -> None:
        for sender in senders:
            sender.start()

    audio_t, video_t = await client.publish_raw([Source.MICROPHONE, Source.CAMERA], start)
    senders.append(RtpReplaySender(audio_t, opus_clip(bitrate=audio_bitrate), audio_t.mid or ""))
    senders.append(RtpReplaySender(video_t, vp8_clip(bitrate=video_bitrate), video_t.mid or ""))
    publisher.senders = senders

    def on_rtcp(data: bytes) -> None:
        try:
            records: list[object] = list(parse_rtcp(data))
        except RtcpError:
            return
        for sender in senders:
            with contextlib.suppress(AttributeError):  # RTCP before the sender started
                sender.on_rtcp(records)

    dtls = aiortc_hooks.dtls_transport(audio_t)
    aiortc_hooks.take_over_transport(dtls, lambda data, ms: None, on_rtcp)
    if dtls.state == "connected":
        start()
    return publisher
