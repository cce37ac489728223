"""Media vocabulary shared by producers, consumers and peers."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class MediaKind(enum.StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


class Source(enum.StrEnum):
    """What a published track carries (shown to users, drives priorities)."""

    MICROPHONE = "microphone"
    CAMERA = "camera"
    SCREEN_SHARE = "screen_share"
    SCREEN_SHARE_AUDIO = "screen_share_audio"

    @property
    def kind(self) -> MediaKind:
        return MediaKind.VIDEO if self in (Source.CAMERA, Source.SCREEN_SHARE) else MediaKind.AUDIO


@dataclass(frozen=True, slots=True)
class CodecInfo:
    """One negotiated codec: what a Producer sends and a Consumer must match."""

    mime_type: str  # e.g. "video/VP8"
    clock_rate: int
    payload_type: int
    channels: int | None = None
    parameters: tuple[tuple[str, str], ...] = ()
    rtx_payload_type: int | None = None
    nack: bool = False

    @property
    def name(self) -> str:
        return self.mime_type.split("/", 1)[1].upper()

    def same_codec(self, other: CodecInfo) -> bool:
        """Same codec and format (payload types may differ per peer)."""
        if self.mime_type.lower() != other.mime_type.lower() or self.clock_rate != other.clock_rate:
            return False
        if self.name == "H264":
            mine, theirs = dict(self.parameters), dict(other.parameters)
            return (
                mine.get("packetization-mode", "0") == theirs.get("packetization-mode", "0")
                and mine.get("profile-level-id", "")[:2] == theirs.get("profile-level-id", "")[:2]
            )
        return True


class PacketClass(enum.IntEnum):
    """What a packet is; a lower value leaves first."""

    AUDIO = 0
    RETRANSMISSION = 1
    VIDEO = 2
    PADDING = 3


class PacketSink(Protocol):
    """Where packets leave the server (one subscriber transport): SRTP, maybe a pacer first."""

    def send_rtp(self, data: bytes, cls: PacketClass = PacketClass.VIDEO) -> bool: ...

    def send_rtcp(self, data: bytes) -> bool: ...


@dataclass(slots=True)
class TrafficCounters:
    """Counters a Producer or Consumer keeps; exported to /metrics."""

    packets: int = 0
    bytes: int = 0
    nacks: int = 0
    retransmissions: int = 0
    keyframe_requests: int = 0
    keyframes: int = 0
    dropped: int = 0
