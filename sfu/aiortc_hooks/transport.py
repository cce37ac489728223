"""DTLS transport: decrypted packets in, SRTP-protected packets out.

Part of sfu/aiortc_hooks (every use of aiortc's private API, pinned to aiortc 1.16.0).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsTransport

from sfu.udp_batch import BatchedSocket

RtpHandler = Callable[[bytes, int], None]
"""Called with decrypted RTP bytes and the arrival time (monotonic clock, ms)."""
RtcpHandler = Callable[[bytes], None]
"""Called with one decrypted (possibly compound) RTCP datagram."""


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
