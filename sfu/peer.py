"""What publisher and subscriber peers share: settings, state, the PeerConnection.

Each participant has up to two RTCPeerConnections with the server (as in
LiveKit): a *publisher* peer the client offers on (its outgoing tracks) and
a *subscriber* peer the server offers on (everyone else's tracks). One
direction per connection means no offer glare and simple renegotiation.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
)
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu import aiortc_hooks
from sfu.media import CodecInfo

logger = logging.getLogger(__name__)


class SdpError(ValueError):
    """A session description the server cannot accept (client error)."""


class PeerState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class MediaSettings:
    """Network settings of the media plane (see config.sample.yaml, `media:`)."""

    ice_addresses: tuple[str, ...] = ("127.0.0.1",)
    announce: dict[str, str] = field(default_factory=dict)
    port_range: tuple[int, int] | None = None
    ice_servers: tuple[IceServer, ...] = ()
    socket_buffer: int = aiortc_hooks.DEFAULT_SOCKET_BUFFER
    keyframe_interval: float = 0.25
    cname: str = "digiclinic"


def create_peer_connection(settings: MediaSettings) -> RTCPeerConnection:
    """A PeerConnection with MAX_BUNDLE and an explicit (possibly empty) ICE list.

    ``iceServers=None`` would make aiortc use a public STUN server; never do
    that implicitly.
    """
    servers = [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in settings.ice_servers
    ]
    config = RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    return RTCPeerConnection(configuration=config)


def configure_candidates(pc: RTCPeerConnection, settings: MediaSettings) -> None:
    aiortc_hooks.configure_host_candidates(
        pc,
        list(settings.ice_addresses),
        port_range=settings.port_range,
        announce=settings.announce,
        socket_buffer=settings.socket_buffer,
    )


def peer_state_of(pc: RTCPeerConnection) -> PeerState:
    return {
        "new": PeerState.NEW,
        "connecting": PeerState.CONNECTING,
        "connected": PeerState.CONNECTED,
        "failed": PeerState.FAILED,
        "closed": PeerState.CLOSED,
    }.get(pc.connectionState, PeerState.NEW)


def watch_state(pc: RTCPeerConnection, on_change: Callable[[PeerState], None]) -> None:
    @pc.on("connectionstatechange")
    def _changed() -> None:
        on_change(peer_state_of(pc))


def codec_info(transceiver: RTCRtpTransceiver) -> CodecInfo:
    """The primary negotiated codec of an m-line, with its RTX payload type."""
    codecs = aiortc_hooks.negotiated_codecs(transceiver)
    primary = next((c for c in codecs if not c.mimeType.lower().endswith("/rtx")), None)
    if primary is None:
        raise SdpError(f"no usable codec negotiated for m-line {transceiver.mid}")
    return _info(primary, codecs)


def _info(primary: RTCRtpCodecParameters, codecs: list[RTCRtpCodecParameters]) -> CodecInfo:
    rtx = next(
        (
            c.payloadType
            for c in codecs
            if c.mimeType.lower().endswith("/rtx")
            and c.parameters.get("apt") == primary.payloadType
        ),
        None,
    )
    return CodecInfo(
        mime_type=primary.mimeType,
        clock_rate=primary.clockRate,
        payload_type=int(primary.payloadType or 0),
        channels=primary.channels,
        parameters=tuple(sorted((k, str(v)) for k, v in primary.parameters.items())),
        rtx_payload_type=rtx,
        nack=any(fb.type == "nack" and not fb.parameter for fb in primary.rtcpFeedback),
    )


def matching_codec(transceiver: RTCRtpTransceiver, wanted: CodecInfo) -> CodecInfo | None:
    """The subscriber m-line's codec equal to ``wanted`` (its own payload types)."""
    codecs = aiortc_hooks.negotiated_codecs(transceiver)
    for codec in codecs:
        if codec.mimeType.lower().endswith("/rtx"):
            continue
        info = _info(codec, codecs)
        if info.same_codec(wanted):
            return info
    return None


def extension_ids(transceiver: RTCRtpTransceiver) -> dict[str, int]:
    return {e.uri: e.id for e in aiortc_hooks.negotiated_header_extensions(transceiver)}
