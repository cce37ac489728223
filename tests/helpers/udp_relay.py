"""A user-space impairment relay between one client and the server, on loopback.

The kernel here has no netem, so loss is emulated in user space. The relay
acts like a NAT in the middle of one ICE connection: the client is told (by
rewriting the server's SDP) that the server is at the relay's client side;
the server is told (by rewriting the client's SDP) that the client is at the
relay's server side. Every datagram crosses the relay, and SRTP/SRTCP is
dropped with the given probability per direction (STUN and DTLS are left
alone, so ICE consent and the handshake are not what is being tested).
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass

_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ udp \d+ )(\S+) (\d+)( typ host.*)$", re.M)


def _is_srtp(data: bytes) -> bool:
    return len(data) > 1 and 128 <= data[0] < 192


@dataclass
class RelayCounters:
    down_packets: int = 0
    down_dropped: int = 0
    up_packets: int = 0
    up_dropped: int = 0


class _Side(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpImpairmentRelay, name: str) -> None:
        self.relay = relay
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay._received(self.name, data, addr)


class UdpImpairmentRelay:
    def __init__(self, down_loss: float = 0.0, up_loss: float = 0.0, seed: int = 7) -> None:
        self.down_loss = down_loss
        self.up_loss = up_loss
        self.counters = RelayCounters()
        self._random = random.Random(seed)
        self._client_side: _Side | None = None
        self._server_side: _Side | None = None
        self.server_addr: tuple[str, int] | None = None
        self.client_addr: tuple[str, int] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        _, self._client_side = await loop.create_datagram_endpoint(
            lambda: _Side(self, "client"), local_addr=("127.0.0.1", 0)
        )
        _, self._server_side = await loop.create_datagram_endpoint(
            lambda: _Side(self, "server"), local_addr=("127.0.0.1", 0)
        )

    def _port(self, side: _Side | None) -> int:
        assert side is not None and side.transport is not None
        return int(side.transport.get_extra_info("sockname")[1])

    def rewrite_server_sdp(self, sdp: str) -> str:
        """The server's SDP: its host candidate becomes the relay's client side."""

        def swap(m: re.Match[str]) -> str:
            self.server_addr = (m.group(2), int(m.group(3)))
            return f"{m.group(1)}127.0.0.1 {self._port(self._client_side)}{m.group(4)}"

        return _CANDIDATE.sub(swap, sdp)

    def rewrite_client_sdp(self, sdp: str) -> str:
        """The client's SDP: its host candidate becomes the relay's server side."""

        def swap(m: re.Match[str]) -> str:
            self.client_addr = (m.group(2), int(m.group(3)))
            return f"{m.group(1)}127.0.0.1 {self._port(self._server_side)}{m.group(4)}"

        return _CANDIDATE.sub(swap, sdp)

    def _received(self, side: str, data: bytes, addr: tuple[str, int]) -> None:
        assert self._client_side is not None and self._server_side is not None
        if side == "client":
            self.client_addr = addr
            self.counters.up_packets += 1
            if _is_srtp(data) and self._random.random() < self.up_loss:
                self.counters.up_dropped += 1
                return
            if self.server_addr is not None and self._server_side.transport is not None:
                self._server_side.transport.sendto(data, self.server_addr)
            return
        self.counters.down_packets += 1
        if _is_srtp(data) and self._random.random() < self.down_loss:
            self.counters.down_dropped += 1
            return
        if self.client_addr is not None and self._client_side.transport is not None:
            self._client_side.transport.sendto(data, self.client_addr)

    def close(self) -> None:
        for side in (self._client_side, self._server_side):
            if side is not None and side.transport is not None:
                side.transport.close()
