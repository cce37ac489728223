"""Every use of aiortc's (and aioice's) private API, in one place.

digiclinic uses aiortc for ICE, DTLS, SRTP and SDP, but forwards media at the
RTP packet level below RTCRtpReceiver/RTCRtpSender (which always decode or
encode). The hooks below were verified against exactly the versions pinned in
pyproject.toml; tests/unit/test_aiortc_hooks.py fails if any of them moves.

Nothing outside this module may touch an underscore attribute of an aiortc or
aioice object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aioice
import aioice.stun
import aiortc
import aiortc.codecs
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import StunProtocol, TransportPolicy
from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters

from sfu.rtp import is_srtp
from sfu.udp_batch import BatchedSocket
from sfu.udp_mux import UdpMux
from sfu.udp_sockets import DEFAULT_SOCKET_BUFFER, bind_udp, set_socket_buffers

logger = logging.getLogger(__name__)

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"

if aiortc.__version__ != AIORTC_VERSION or aioice.__version__ != AIOICE_VERSION:
    raise ImportError(
        f"digiclinic's packet path was verified against aiortc {AIORTC_VERSION} / "
        f"aioice {AIOICE_VERSION}, found aiortc {aiortc.__version__} / "
        f"aioice {aioice.__version__}: re-verify sfu/aiortc_hooks.py before upgrading"
    )

RtpHandler = Callable[[bytes, int], None]
"""Called with decrypted RTP bytes and the arrival time (monotonic clock, ms)."""
RtcpHandler = Callable[[bytes], None]
"""Called with one decrypted (possibly compound) RTCP datagram."""

# --------------------------------------------------------------------------
# Transceivers: keep aiortc's encoders/decoders out of the media path
# --------------------------------------------------------------------------


def disable_stock_receiver(transceiver: RTCRtpTransceiver) -> None:
    """Never start RTCRtpReceiver: no decoder thread, no jitter buffer, no RTCP loop.

    RTCPeerConnection calls ``receiver.receive(params)`` once DTLS is up; the
    per-instance replacement makes that a no-op. Media arrives through
    :func:`take_over_transport` instead.
    """

    async def receive(parameters: Any) -> None:
        return None

    setattr(transceiver.receiver, "receive", receive)  # noqa: B010


def disable_stock_sender(
    transceiver: RTCRtpTransceiver, on_connected: Callable[[], None] | None = None
) -> None:
    """Never start RTCRtpSender (no encoder, no send loop, no zero-NTP SRs).

    ``on_connected`` is called when aiortc would have started the sender,
    i.e. once the DTLS transport is connected and parameters are negotiated.
    """

    async def send(parameters: Any) -> None:
        if on_connected is not None:
            on_connected()

    setattr(transceiver.sender, "send", send)  # noqa: B010


NACK_RETRY_TICK = 0.02  # seconds between looks at what is still missing
NACK_RETRY_MIN_WAIT = 0.1  # libwebrtc's round trip before it knows one
NACK_MAX_TRIES = 10  # as libwebrtc's NackRequester


def retry_nacks(transceiver: RTCRtpTransceiver) -> None:
    """Make a stock video receiver ask again for packets that stay missing.

    aiortc's receiver sends a NACK only when a new gap opens, so a
    retransmission lost on the link is asked for again only at the next
    loss, and its jitter buffer (512 packets) holds every later frame until
    then: seconds of frozen video at 10 % loss. Browsers (libwebrtc's
    NackRequester) ask again every round trip, up to ten times. This gives
    the receiver that behaviour: a packet is asked for again once it has
    been missing for twice the time repairs take (at least 100 ms), at most
    ten times. The loop runs while the receiver runs: aiortc's ``receive()``
    starts it and ``stop()`` (from ``RTCPeerConnection.close()``) cancels it.
    """
    receiver = transceiver.receiver
    generator = getattr(receiver, "_RTCRtpReceiver__nack_generator", None)
    if generator is None or getattr(receiver, "_digiclinic_nack_retry", False):
        return  # audio (aiortc never NACKs it), or done at an earlier negotiation
    retrier = _NackRetrier(generator.missing, receiver._send_rtcp_nack)
    stock_receive, stock_stop = receiver.receive, receiver.stop

    async def receive(parameters: Any) -> None:
        await stock_receive(parameters)
        retrier.start()

    async def stop() -> None:
        await retrier.stop()
        await stock_stop()

    setattr(receiver, "_send_rtcp_nack", retrier.send_nack)  # noqa: B010
    setattr(receiver, "receive", receive)  # noqa: B010
    setattr(receiver, "stop", stop)  # noqa: B010
    setattr(receiver, "_digiclinic_nack_retry", True)  # noqa: B010


class _NackRetrier:
    """The NACKs one receiver sent, and the loop that repeats the unanswered ones."""

    def __init__(
        self,
        missing: set[int],
        send_nack: Callable[[int, list[int]], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._missing = missing  # aiortc's NackGenerator keeps this set up to date
        self._send_nack = send_nack
        self._asked: dict[int, tuple[int, float, float]] = {}  # seq -> tries, first, last
        self._ssrc: int | None = None
        self._repair = 0.0  # smoothed time from a first NACK to the packet's arrival
        self._task: asyncio.Task[None] | None = None

    async def send_nack(self, media_ssrc: int, lost: list[int]) -> None:
        self._ssrc = media_ssrc
        now = self._clock()
        for seq in lost:
            tries, first, _ = self._asked.get(seq, (0, now, now))
            self._asked[seq] = (tries + 1, first, now)
        await self._send_nack(media_ssrc, lost)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(NACK_RETRY_TICK)
            if self._ssrc is not None:
                due = self.due(self._clock())
                if due:
                    await self.send_nack(self._ssrc, due)

    def due(self, now: float) -> list[int]:
        """Forget what arrived; the packets to ask for again now."""
        asked, missing = self._asked, self._missing
        for seq in [seq for seq in asked if seq not in missing]:
            tries, first, _ = asked.pop(seq)
            if tries == 1:  # repaired at the first ask: how long repairs take
                self._repair += 0.25 * ((now - first) - self._repair)
        wait = max(NACK_RETRY_MIN_WAIT, 2 * self._repair)
        return sorted(
            seq
            for seq, (tries, _, last) in asked.items()
            if tries < NACK_MAX_TRIES and now - last >= wait
        )


def sender_ssrcs(transceiver: RTCRtpTransceiver) -> tuple[int, int]:
    """The media and RTX SSRCs aiortc signalled for this transceiver's sender."""
    return int(transceiver.sender._ssrc), int(transceiver.sender._rtx_ssrc)


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """Codecs agreed for this m-line (known right after setRemoteDescription)."""
    return list(transceiver._codecs)


def negotiated_header_extensions(
    transceiver: RTCRtpTransceiver,
) -> list[RTCRtpHeaderExtensionParameters]:
    return list(transceiver._headerExtensions)


def dtls_transport(transceiver: RTCRtpTransceiver) -> RTCDtlsTransport:
    transport: RTCDtlsTransport = transceiver.receiver.transport
    return transport


# --------------------------------------------------------------------------
# DTLS transport: decrypted packets in, SRTP-protected packets out
# --------------------------------------------------------------------------


def take_over_transport(dtls: RTCDtlsTransport, on_rtp: RtpHandler, on_rtcp: RtcpHandler) -> None:
    """Route every decrypted RTP/RTCP datagram of ``dtls`` to our handlers.

    Replaces the per-instance ``_handle_rtp_data``/``_handle_rtcp_data`` that
    aiortc's receive loop awaits after SRTP unprotect, so aiortc's RtpRouter,
    RtpPacket.parse and RTCP parser are bypassed entirely (no lost header
    extensions, no mis-parsed transport-cc feedback).
    """

    async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
        on_rtp(data, int(time.monotonic() * 1000))

    async def handle_rtcp(data: bytes) -> None:
        on_rtcp(data)

    setattr(dtls, "_handle_rtp_data", handle_rtp)  # noqa: B010
    setattr(dtls, "_handle_rtcp_data", handle_rtcp)  # noqa: B010


class SrtpEgress:
    """Synchronous SRTP egress on one DTLS transport.

    ``RTCDtlsTransport._send_rtp`` is a coroutine that awaits aioice's async
    ``sendto``; per forwarded packet that is a coroutine and two awaits. Here
    the packet is protected with the transport's SRTP session and written
    straight to the nominated ICE pair's socket (the one we bound in
    :func:`configure_host_candidates`; on the one media port it is queued for
    the port's batched flush, sfu/udp_batch.py; a TURN relay pair goes
    through its datagram transport instead). A full socket buffer drops the packet, as
    the network would.
    """

    __slots__ = ("_addr", "_dtls", "_out", "_pair", "_sock", "_transport", "dropped")

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = dtls
        self._pair: Any = None
        self._sock: socket.socket | None = None
        self._out: BatchedSocket | None = None  # the one media port's batched egress
        self._transport: Any = None
        self._addr: tuple[str, int] | None = None
        self.dropped = 0

    @property
    def ready(self) -> bool:
        return self._dtls.state == "connected" and self._dtls._tx_srtp is not None

    def _route(self) -> bool:
        """Refresh the cached destination when ICE (re)nominates a pair."""
        pair = self._dtls.transport._connection._nominated.get(1)
        if pair is None:
            return False
        if pair is not self._pair:
            self._pair = pair
            self._addr = pair.remote_addr
            self._sock = getattr(pair.protocol, "_digiclinic_sock", None)
            self._out = getattr(pair.protocol, "_digiclinic_out", None)
            self._transport = pair.protocol.transport
        return True

    def _send(self, data: bytes) -> bool:
        out = self._out
        if out is not None:
            out.send(data, self._addr)  # type: ignore[arg-type]
            return True
        sock = self._sock
        try:
            if sock is not None:
                sock.sendto(data, self._addr)  # type: ignore[arg-type]
            else:
                self._transport.sendto(data, self._addr)
        except (BlockingIOError, InterruptedError):
            self.dropped += 1
            return False
        except OSError:
            self.dropped += 1
            self._pair = None
            return False
        return True

    def send_rtp(self, data: bytes, cls: object = None) -> bool:
        """Protect and send one RTP packet now (``cls``, the packet's class, is not used here)."""
        dtls = self._dtls
        srtp = dtls._tx_srtp
        if srtp is None or dtls.state != "connected" or not self._route():
            self.dropped += 1
            return False
        return self._send(srtp.protect(data))

    def send_rtcp(self, data: bytes) -> bool:
        dtls = self._dtls
        srtp = dtls._tx_srtp
        if srtp is None or dtls.state != "connected" or not self._route():
            self.dropped += 1
            return False
        return self._send(srtp.protect_rtcp(data))


# --------------------------------------------------------------------------
# ICE: which local addresses and ports are offered as host candidates
# --------------------------------------------------------------------------


def configure_host_candidates(
    pc: RTCPeerConnection,
    addresses: list[str],
    port_range: tuple[int, int] | None = None,
    announce: dict[str, str] | None = None,
    socket_buffer: int = DEFAULT_SOCKET_BUFFER,
    mux: UdpMux | None = None,
) -> None:
    """Offer host candidates on exactly ``addresses`` (e.g. 127.0.0.1).

    aioice's own gathering skips loopback and binds port 0 on every
    interface. This replaces the per-instance ``get_component_candidates`` of
    every ICE connection of ``pc`` (call it after the transceivers exist and
    before setLocalDescription): host sockets are bound to the given addresses
    within ``port_range`` (or, with ``mux``, the process's one shared socket
    per address carries them: sfu/udp_mux.py), announced under the mapped
    public address when ``announce`` has one (1:1 NAT), and STUN/TURN
    gathering still runs.
    """
    announce = announce or {}
    wanted = list(addresses)
    for transceiver in pc.getTransceivers():
        gatherer = transceiver.receiver.transport.transport.iceGatherer
        connection = gatherer._connection
        if getattr(connection, "_digiclinic_hosts", False):
            continue
        original = connection.get_component_candidates

        async def gather(
            component: int,
            addresses: list[str],
            timeout: int = 5,
            *,
            _connection: Any = connection,
            _original: Callable[..., Awaitable[list[Candidate]]] = original,
        ) -> list[Candidate]:
            loop = asyncio.get_running_loop()
            del addresses  # aioice's own host list: replaced by ours
            candidates: list[Candidate] = []
            # relay-only (RFC 9429 3.5.3): no host candidates at all
            relay_only = _connection._transport_policy == TransportPolicy.RELAY
            for address in [] if relay_only else wanted:
                shared = None if mux is None else mux.socket_for(address)
                if shared is not None and mux is not None:
                    sock = shared
                    protocol = StunProtocol(_connection)
                    setattr(protocol, "_digiclinic_out", mux.batch_for(address))  # noqa: B010
                    protocol.connection_made(
                        mux.attach(  # type: ignore[arg-type]
                            address,
                            _connection.local_username,
                            _connection.local_password,
                            protocol,
                        )
                    )
                else:
                    try:
                        sock = bind_udp(address, port_range)
                    except OSError as exc:
                        logger.warning("ICE host candidate not bound: %s", exc)
                        continue
                    set_socket_buffers(sock, socket_buffer)
                    _transport, protocol = await loop.create_datagram_endpoint(
                        lambda: StunProtocol(_connection), sock=sock
                    )
                host, port = sock.getsockname()[:2]
                public = announce.get(host, host)
                protocol.local_candidate = Candidate(
                    foundation=candidate_foundation("host", "udp", public),
                    component=component,
                    transport="udp",
                    priority=candidate_priority(component, "host"),
                    host=public,
                    port=port,
                    type="host",
                )
                setattr(protocol, "_digiclinic_sock", sock)  # noqa: B010
                _connection._protocols.append(protocol)
                candidates.append(protocol.local_candidate)
            # STUN (server-reflexive, derived from host sockets) is not needed
            # when the public address is configured; TURN relays still are.
            candidates += await _original(component, [], timeout)
            return candidates

        setattr(connection, "get_component_candidates", gather)  # noqa: B010
        setattr(connection, "_digiclinic_hosts", True)  # noqa: B010
        tolerate_slow_consent(connection)


CONSENT_INTERVAL = 5.0  # seconds between consent checks (RFC 7675), randomised +-20 %
CONSENT_TIMEOUT = 30.0  # consent expires this long after the last response (RFC 7675)
CONSENT_RETRANSMISSIONS = 3  # a check waits 0.5 + 1 + 2 + 4 s for its response


def tolerate_slow_consent(
    connection: Any,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Let ICE consent survive a slow, full link, as RFC 7675 intends.

    aioice sends each consent check once and gives it 0.5 s; six failures in
    a row (about 30 s) close the connection. Behind a thin link's full
    queue (tbf at 60 kbit/s: 850 ms), or on a satellite path (600 ms round
    trip), no response ever comes within 0.5 s: real Chromium at 60 kbit/s
    was disconnected 27 s into the cap, twice in a row. Here a check is
    retransmitted (0.5, 1, 2, 4 s) and consent expires only when no
    response at all came for 30 s. Replaces the per-instance
    ``query_consent`` that aioice's ``connect()`` starts.
    """
    if getattr(connection, "_digiclinic_consent", False):
        return

    async def query_consent() -> None:
        last_response = clock()
        while True:
            await sleep(CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
            for pair in list(connection._nominated.values()):
                request = connection.build_request(pair, nominate=False)
                try:
                    await pair.protocol.request(
                        request,
                        pair.remote_addr,
                        integrity_key=connection.remote_password.encode("utf8"),
                        retransmissions=CONSENT_RETRANSMISSIONS,
                    )
                    last_response = clock()
                except aioice.stun.TransactionError:
                    pass
            if clock() - last_response >= CONSENT_TIMEOUT:
                logger.info("ICE consent expired: no response for %.0f s", CONSENT_TIMEOUT)
                connection._query_consent_task = None  # close() would cancel this very task
                await connection.close()
                return

    setattr(connection, "query_consent", query_consent)  # noqa: B010
    setattr(connection, "_digiclinic_consent", True)  # noqa: B010


def local_candidate_addresses(pc: RTCPeerConnection) -> list[tuple[str, int]]:
    """(host, port) of every local ICE candidate gathered for ``pc``."""
    seen: list[tuple[str, int]] = []
    for transceiver in pc.getTransceivers():
        gatherer = transceiver.receiver.transport.transport.iceGatherer
        for candidate in gatherer.getLocalCandidates():
            pair = (candidate.ip, candidate.port)
            if pair not in seen:
                seen.append(pair)
    return seen


# --------------------------------------------------------------------------
# Simulcast: header extensions aiortc must accept for it
# --------------------------------------------------------------------------

SIMULCAST_EXTENSIONS = (
    (10, "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
    (11, "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"),
)


def accept_simulcast_extensions() -> None:
    """Add the RID and repaired-RID extensions to aiortc's video extensions.

    aiortc intersects an offer's extensions with the module-level
    ``aiortc.codecs.HEADER_EXTENSIONS`` in setRemoteDescription, so without
    them a browser's simulcast offer is answered without RIDs and the
    browser sends one encoding. Process-wide and idempotent; aiortc peers
    that don't use the extensions just carry two more extmap lines.
    """
    video = aiortc.codecs.HEADER_EXTENSIONS["video"]
    known = {e.uri for e in video}
    for ext_id, uri in SIMULCAST_EXTENSIONS:
        if uri not in known:
            video.append(RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri))


# --------------------------------------------------------------------------
# Bandwidth estimation: aiortc's (undocumented) abs-send-time REMB estimator
# --------------------------------------------------------------------------


class UplinkEstimator:
    """Receive-side bandwidth estimate of a publisher's uplink (for REMB).

    Wraps ``aiortc.rate.RemoteBitrateEstimator`` (inter-arrival delay
    gradient + AIMD, as in libwebrtc); it needs abs-send-time on packets.
    """

    __slots__ = ("_estimator", "bitrate")

    def __init__(self) -> None:
        self._estimator = RemoteBitrateEstimator()
        self.bitrate = 0

    def add(self, arrival_ms: int, abs_send_time: int, size: int, ssrc: int) -> bool:
        """Feed one packet; True when the estimate changed."""
        result = self._estimator.add(arrival_ms, abs_send_time, size, ssrc)
        if result is None:
            return False
        self.bitrate = int(result[0])
        return True


# --------------------------------------------------------------------------
# Incoming SRTP datagrams, as they come off the socket
# --------------------------------------------------------------------------

SrtpFilter = Callable[[bytes, Callable[[bytes, tuple[str, int]], None], tuple[str, int]], None]
"""(datagram, aioice's own handler, address): called for each SRTP (not SRTCP) datagram."""


def _intercept_srtp(pc: RTCPeerConnection, marker: str, on_srtp: SrtpFilter) -> None:
    """Route every incoming SRTP datagram of ``pc``'s sockets through ``on_srtp``.

    STUN, DTLS and SRTCP go straight on to aioice. Each socket is wrapped
    once per ``marker``. Call after setLocalDescription (the sockets exist then).
    """
    attribute = f"_digiclinic_{marker}"
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        for protocol in connection._protocols:
            if getattr(protocol, attribute, False):
                continue
            original = protocol.datagram_received

            def datagram_received(
                data: bytes, addr: tuple[str, int], _original: Any = original
            ) -> None:
                if is_srtp(data):
                    on_srtp(data, _original, addr)
                else:
                    _original(data, addr)

            setattr(protocol, "datagram_received", datagram_received)  # noqa: B010
            setattr(protocol, attribute, True)


def tap_media_datagrams(
    pc: RTCPeerConnection, on_media: Callable[[bytes], None], pass_through: bool = False
) -> None:
    """Divert every incoming SRTP (not SRTCP) datagram of ``pc`` to ``on_media``.

    The SRTP header is cleartext, so a benchmark subscriber can count packets
    and sequence gaps without paying for decryption, jitter buffers or
    decoders. STUN, DTLS and SRTCP still reach aiortc. With ``pass_through``
    media reaches aiortc too (it decodes, sends REMB, RRs and NACKs) and
    ``on_media`` only watches. Call after setLocalDescription.
    """

    def on_srtp(data: bytes, original: Any, addr: tuple[str, int]) -> None:
        on_media(data)
        if pass_through:
            original(data, addr)

    _intercept_srtp(pc, "tap", on_srtp)


def stamp_arrivals(pc: RTCPeerConnection, arrivals: dict[bytes, int], limit: int = 4096) -> None:
    """Note when each SRTP packet of ``pc`` came off its socket: key (seq, SSRC) -> monotonic us.

    Transport-wide feedback must give the time a packet *arrived*, but aiortc
    hands decrypted packets over only after an asyncio queue, a DTLS task and
    SRTP: packets that arrived spread over a busy loop iteration would all get
    the same time, and a browser reading that feedback sees a link faster
    than it is. The key is the cleartext header's sequence number and SSRC
    (bytes 2-3 and 8-11, the same in the decrypted packet); the consumer
    pops it. Past ``limit`` entries (nobody consumes them) the dict is
    cleared. Call after setLocalDescription.
    """

    def on_srtp(data: bytes, original: Any, addr: tuple[str, int]) -> None:
        if len(arrivals) >= limit:
            arrivals.clear()
        arrivals[data[2:4] + data[8:12]] = time.monotonic_ns() // 1000
        original(data, addr)

    _intercept_srtp(pc, "arrivals", on_srtp)


def srtp_unprotector(transceiver: RTCRtpTransceiver) -> Callable[[bytes], bytes] | None:
    """The receive-side SRTP ``unprotect`` of a connected transport (None before DTLS is up).

    Lets a benchmark subscriber that taps datagrams decrypt only a sample of them.
    """
    session = transceiver.receiver.transport._rx_srtp
    return None if session is None else session.unprotect
