"""One UDP port for all media of a server process (``media.udp_port``).

Hospital firewalls open one port more readily than ten thousand. As
mediasoup's WebRtcServer and LiveKit's single-port mode do, every ICE
connection of the process shares one socket per ICE address, and each
datagram that arrives is handed to the connection it belongs to:

1. by the remote address it came from, once that address is known;
2. else, a STUN Binding request names the connection in its USERNAME
   (``<our ufrag>:<their ufrag>``, RFC 8445 7.2.2): when its
   MESSAGE-INTEGRITY checks out with that connection's password, its
   source address is that connection's from then on (a request that does
   not check out teaches nothing: nobody can steer another participant's
   address);
3. an address the connection itself sends to (its connectivity checks to
   the candidates the client signalled) is its own too, unless another
   connection already holds it;
4. anything else is dropped and counted.

A connection holds at most ``MAX_ADDRESSES`` remote addresses (candidates
and the addresses its checks came from); they are forgotten when it
closes. The per-connection port range (``media.udp_port_min..max``) stays
as the other mode.

Each connection sees the shared socket through a :class:`MuxTransport`,
which has the face of an asyncio datagram transport (``sendto``,
``close``), so aioice's STUN protocol runs on it unchanged
(sfu/aiortc_hooks/ does the wiring).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aioice import stun

from sfu.udp_batch import BatchCounters, BatchedSocket
from sfu.udp_sockets import bind_udp, set_socket_buffers

logger = logging.getLogger(__name__)

MAX_ADDRESSES = 16  # remote addresses one connection may hold
Address = tuple[str, int]


class DatagramReceiver(Protocol):
    """What a datagram is handed to: aioice's StunProtocol has this face."""

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


@dataclass(slots=True)
class MuxCounters:
    """What the shared sockets saw, for /metrics."""

    datagrams: int = 0
    unknown: int = 0  # from an address no connection holds, and no valid check
    bad_checks: int = 0  # a Binding request whose username or integrity did not check out


@dataclass(slots=True, eq=False)
class MuxTransport:
    """One connection's view of a shared socket: an asyncio datagram transport's face."""

    mux: UdpMux
    sock: socket.socket
    receiver: DatagramReceiver
    ufrag: str
    password: bytes
    addresses: set[Address] = field(default_factory=set)
    closed: bool = False

    def sendto(self, data: bytes, addr: Address | None = None) -> None:
        if self.closed or addr is None:
            return
        self.mux.claim(self, (addr[0], addr[1]))
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            pass  # a full socket buffer drops the datagram, as the network would
        except OSError as exc:  # unreachable for now: the next send tries again
            logger.debug("send on the shared UDP socket failed: %s", exc)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self.sock
        if name == "sockname":
            return self.sock.getsockname()
        return default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.mux.release(self)
        asyncio.get_running_loop().call_soon(self.receiver.connection_lost, None)

    def abort(self) -> None:
        self.close()


class _SharedSocket(asyncio.DatagramProtocol):
    """The one socket of one ICE address; hands each datagram to its connection."""

    def __init__(self, mux: UdpMux, sock: socket.socket) -> None:
        self.mux = mux
        self.sock = sock
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.mux.dispatch(self.sock, data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        logger.debug("shared UDP socket: %s", exc)


class UdpMux:
    """The process's shared media sockets, one per ICE address, and who owns which address."""

    def __init__(self, port: int, socket_buffer: int, batched: bool = True) -> None:
        self.port = port  # 0: one port the OS chooses (per address)
        self.socket_buffer = socket_buffer
        self.batched = batched  # RTP egress through sendmmsg (sfu/udp_batch.py)
        self.counters = MuxCounters()
        self._sockets: dict[str, _SharedSocket] = {}  # by local address
        self._batches: dict[str, BatchedSocket] = {}
        # per socket: remote address -> transport; ICE ufrag -> transport
        self._by_addr: dict[tuple[int, Address], MuxTransport] = {}
        self._by_ufrag: dict[tuple[int, str], MuxTransport] = {}

    async def open(self, addresses: Iterable[str]) -> None:
        """Bind the shared socket of every ICE address (an error names the port that is taken)."""
        loop = asyncio.get_running_loop()
        for address in addresses:
            if address in self._sockets:
                continue
            sock = bind_udp(address, None if self.port == 0 else (self.port, self.port))
            set_socket_buffers(sock, self.socket_buffer)
            shared = _SharedSocket(self, sock)
            await loop.create_datagram_endpoint(functools.partial(_same, shared), sock=sock)
            self._sockets[address] = shared
            if self.batched:
                self._batches[address] = BatchedSocket(sock)

    def close(self) -> None:
        for transport in list(self._by_ufrag.values()):
            transport.close()
        for batch in self._batches.values():
            batch.flush()
        self._batches.clear()
        for shared in self._sockets.values():
            if shared.transport is not None:
                shared.transport.close()
        self._sockets.clear()

    def ports(self) -> dict[str, int]:
        """The port bound on each ICE address."""
        return {a: s.sock.getsockname()[1] for a, s in self._sockets.items()}

    def socket_for(self, address: str) -> socket.socket | None:
        shared = self._sockets.get(address)
        return None if shared is None else shared.sock

    def flush(self) -> None:
        """Send what is queued on every shared socket now (the end of one packet's fan-out)."""
        for batch in self._batches.values():
            batch.flush_queue()

    def batch_for(self, address: str) -> BatchedSocket | None:
        """Where a connection's SRTP on ``address`` is queued, or None (sent at once)."""
        return self._batches.get(address)

    def batch_counters(self) -> list[BatchCounters]:
        return [batch.counters for batch in self._batches.values()]

    # -- connections ------------------------------------------------------------------

    def attach(
        self, address: str, ufrag: str, password: str, receiver: DatagramReceiver
    ) -> MuxTransport:
        """A connection's transport on the shared socket of ``address`` (opened before)."""
        shared = self._sockets[address]
        transport = MuxTransport(self, shared.sock, receiver, ufrag, password.encode("utf8"))
        self._by_ufrag[(shared.sock.fileno(), ufrag)] = transport
        return transport

    def release(self, transport: MuxTransport) -> None:
        fd = transport.sock.fileno()
        if self._by_ufrag.get((fd, transport.ufrag)) is transport:
            del self._by_ufrag[(fd, transport.ufrag)]
        for addr in transport.addresses:
            if self._by_addr.get((fd, addr)) is transport:
                del self._by_addr[(fd, addr)]
        transport.addresses.clear()

    def claim(self, transport: MuxTransport, addr: Address, *, force: bool = False) -> None:
        """``addr`` is ``transport``'s (``force``: even when another connection held it)."""
        key = (transport.sock.fileno(), addr)
        holder = self._by_addr.get(key)
        if holder is transport or (holder is not None and not force):
            return
        if addr not in transport.addresses and len(transport.addresses) >= MAX_ADDRESSES:
            return
        if holder is not None:
            holder.addresses.discard(addr)
        transport.addresses.add(addr)
        self._by_addr[key] = transport

    # -- the hot path -----------------------------------------------------------------

    def dispatch(self, sock: socket.socket, data: bytes, addr: Address) -> None:
        self.counters.datagrams += 1
        fd = sock.fileno()
        transport = self._by_addr.get((fd, addr))
        if transport is None or _is_binding_request(data):
            # a check names its connection; one from a known address may be a new ufrag
            # (an ICE restart) or another connection's (a NAT that reused the address)
            checked = self._checked(fd, data)
            if checked is not None:
                self.claim(checked, addr, force=True)
                transport = checked
        if transport is None:
            self.counters.unknown += 1
            return
        transport.receiver.datagram_received(data, addr)

    def _checked(self, fd: int, data: bytes) -> MuxTransport | None:
        """The connection a valid STUN Binding request is for, or None."""
        if not _is_binding_request(data):
            return None
        try:
            message = stun.parse_message(data)
        except ValueError:
            self.counters.bad_checks += 1
            return None
        username = message.attributes.get("USERNAME")
        if not isinstance(username, str) or ":" not in username:
            self.counters.bad_checks += 1
            return None
        transport = self._by_ufrag.get((fd, username.split(":", 1)[0]))
        if transport is None or not message.check_message_integrity(transport.password):
            self.counters.bad_checks += 1
            return None
        return transport


def _same(shared: _SharedSocket) -> _SharedSocket:
    return shared


def _is_binding_request(data: bytes) -> bool:
    """A STUN Binding request (RFC 8489: type 0x0001 and the magic cookie)."""
    return len(data) >= 20 and data[0] == 0 and data[1] == 1 and data[4:8] == b"\x21\x12\xa4\x42"
