"""Incoming SRTP datagrams, as they come off the socket.

Part of sfu/aiortc_hooks (every use of aiortc's and aioice's private API, pinned to
aiortc 1.16.0 / aioice 0.13.0).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver

from sfu.rtp import is_srtp

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
