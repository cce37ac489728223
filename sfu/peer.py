"""What publisher and subscriber peers share: settings, state, the PeerConnection.

Each participant has up to two RTCPeerConnections with the server (as in
LiveKit): a *publisher* peer the client offers on (its outgoing tracks) and
a *subscriber* peer the server offers on (everyone else's tracks). One
direction per connection means no offer glare and simple renegotiation.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpTransceiver,
)
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu import aiortc_hooks
from sfu.faults import FAULTS, supervise
from sfu.media import CodecInfo
from sfu.remote_candidates import RemoteCandidatePolicy
from sfu.udp_mux import UdpMux
from sfu.udp_sockets import DEFAULT_SOCKET_BUFFER

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
    # one UDP port for all media (sfu/udp_mux.py), opened by the app; None: per-connection ports
    udp_mux: UdpMux | None = None
    ice_servers: tuple[IceServer, ...] = ()
    relay_only: bool = False
    socket_buffer: int = DEFAULT_SOCKET_BUFFER
    keyframe_interval: float = 0.25
    cname: str = "digiclinic"
    # adaptation (see sfu/bandwidth.py)
    opus_dtx: bool = True
    opus_red: bool = True
    opus_max_bitrate_kbps: int = 0  # 0: the publisher's own choice
    opus_ptime_ms: int = 0  # 0: the publisher's own choice (20 ms in browsers)
    thin_link_opus_kbps: int = 16  # asked of publishers while a link is too thin (0: never)
    thin_link_opus_ptime_ms: int = 60  # ...in packets this long, without RED (0: unchanged)
    publisher_start_bitrate_kbps: int = 1000
    transport_cc: bool = True  # offer/accept transport-wide congestion control (sfu/twcc.py)
    subscriber_start_bitrate_kbps: int = 300
    subscriber_max_bitrate_kbps: int = 5000
    quality_interval: float = 2.0
    # remote ICE candidates a connection accepts (sfu/remote_candidates.py)
    max_remote_candidates: int = 16
    remote_candidate_deny: tuple[str, ...] = ()


def create_peer_connection(settings: MediaSettings) -> RTCPeerConnection:
    """A PeerConnection with MAX_BUNDLE and an explicit (possibly empty) ICE list.

    ``iceServers=None`` would make aiortc use a public STUN server; never do
    that implicitly.
    """
    servers = [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in settings.ice_servers
    ]
    config = RTCConfiguration(
        iceServers=servers,
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        iceTransportPolicy=(
            RTCIceTransportPolicy.RELAY if settings.relay_only else RTCIceTransportPolicy.ALL
        ),
    )
    return RTCPeerConnection(configuration=config)


def configure_candidates(pc: RTCPeerConnection, settings: MediaSettings) -> None:
    aiortc_hooks.configure_host_candidates(
        pc,
        list(settings.ice_addresses),
        port_range=settings.port_range,
        announce=settings.announce,
        socket_buffer=settings.socket_buffer,
        mux=settings.udp_mux,
    )


_PC_STATES = {
    "new": PeerState.NEW,
    "connecting": PeerState.CONNECTING,
    "connected": PeerState.CONNECTED,
    "failed": PeerState.FAILED,
    "closed": PeerState.CLOSED,
}


class Peer:
    """One RTCPeerConnection whose media the SFU handles below aiortc.

    Owns the connection, its state and one background task; subclasses
    (PublisherPeer, SubscriberPeer) handle the packets.
    """

    role = "peer"

    def __init__(
        self, participant_id: str, settings: MediaSettings, on_state: Callable[[PeerState], None]
    ) -> None:
        self.participant_id = participant_id
        self.settings = settings
        self.state = PeerState.NEW
        self.pc = create_peer_connection(settings)
        self._on_state = on_state
        self._egress: aiortc_hooks.SrtpEgress | None = None
        self._task: asyncio.Task[None] | None = None
        self._candidates = RemoteCandidatePolicy(
            settings.max_remote_candidates, settings.remote_candidate_deny, settings.ice_addresses
        )
        self._remote_candidates = 0  # accepted so far
        self.pc.on("connectionstatechange", self._pc_state_changed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.participant_id} {self.state.value})"

    def _pc_state_changed(self) -> None:
        self._become(_PC_STATES.get(self.pc.connectionState, PeerState.NEW))

    def _become(self, state: PeerState) -> None:
        """Enter ``state`` (never out of CLOSED): subclass hook, then the owner is told."""
        if self.state is PeerState.CLOSED or state is self.state:
            return
        logger.debug(
            "%s %s: %s -> %s", self.role, self.participant_id, self.state.value, state.value
        )
        self.state = state
        self._entered(state)
        self._on_state(state)

    def _entered(self, state: PeerState) -> None:
        """Hook for subclasses, called on every state change."""

    def _take_over_transport(self) -> None:
        """Once the bundled transport exists: route its packets here, bind our sockets."""
        if self._egress is not None:
            return
        dtls = aiortc_hooks.dtls_transport(self.pc.getTransceivers()[0])
        aiortc_hooks.take_over_transport(dtls, self._guarded_rtp, self._guarded_rtcp)
        self._egress = aiortc_hooks.SrtpEgress(dtls)
        configure_candidates(self.pc, self.settings)

    # a packet that trips a bug is dropped: raised into aiortc's receive loop, it would
    # close this transport (sfu/faults.py). What a packet set off (its copies for every
    # subscriber, retransmissions a NACK asked for) leaves with it, batched (sfu/udp_batch.py):
    # left for the loop's next callback, a packet's copies waited for the fan-out of every
    # other packet read in the same iteration (a keyframe's: +2.5 ms median latency at N=100)
    def _guarded_rtp(self, data: bytes, arrival_ms: int) -> None:
        try:
            self.on_rtp(data, arrival_ms)
        except Exception as exc:
            FAULTS.record("packet", self, exc)
        mux = self.settings.udp_mux
        if mux is not None:
            mux.flush()

    def _guarded_rtcp(self, data: bytes) -> None:
        try:
            self.on_rtcp(data)
        except Exception as exc:
            FAULTS.record("packet", self, exc)
        mux = self.settings.udp_mux
        if mux is not None:
            mux.flush()

    def _supervise(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        """A background task of this connection: if it dies, the connection fails, visibly."""
        supervise(task, self, self._crashed)
        return task

    def _crashed(self) -> None:
        self._become(PeerState.FAILED)  # the room tells the client: connection_failed

    async def add_ice_candidate(self, candidate: RTCIceCandidate | None) -> None:
        """A remote candidate (None: end of candidates), if the policy lets the server check it."""
        if candidate is not None:
            self._candidates.check(candidate, self._remote_candidates)
            self._remote_candidates += 1
        await self.pc.addIceCandidate(candidate)

    def on_rtp(self, data: bytes, arrival_ms: int) -> None:
        """Decrypted RTP arriving on this connection (ignored unless overridden)."""

    def on_rtcp(self, data: bytes) -> None:
        """Decrypted RTCP arriving on this connection (ignored unless overridden)."""

    async def _close_connection(self) -> None:
        self.state = PeerState.CLOSED
        if self._task is not None:
            self._task.cancel()
            # (a task that died has been counted by its supervisor: closing goes on)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.pc.close()


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
