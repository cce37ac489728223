"""A user-space link into a network namespace that holds nothing but loopback.

For paths ``tbf`` cannot make (the kernel here has no netem): a satellite
hop's long delay and random loss. The namespace (``ip netns add``, only
``lo`` up) has no interface to the outside at all, so a browser in it offers
only 127.0.0.1 candidates, and everything it exchanges with the server in
the root namespace crosses this bridge:

- **UDP, one socket per server media port**: the bridge listens on
  127.0.0.1:P *inside* the namespace for every port P of the server's media
  range; a datagram from a browser socket is sent on from a bridge socket
  in the root namespace to the server's 127.0.0.1:P, and the answers go
  back the same way (a NAT the server sees as a peer-reflexive candidate).
  Both directions go through the link model of tests/helpers/udp_relay.py
  (rate cap with a tbf-like queue, order-keeping delay, SRTP-only loss),
  one ``_Link`` per direction shared by every port, as one physical link.
- **TCP, the server's HTTP/WebSocket port**: a plain proxy (no delay or
  loss: signalling is not what is measured), so the page loads from
  http://127.0.0.1:PORT, a secure context.

Sockets stay in the namespace they were created in: the bridge enters the
namespace (``setns``) only to create its listening sockets, from a
short-lived thread, and runs everything on the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator

from tests.helpers.udp_relay import LinkCounters, LinkSettings, _Link

CLONE_NEWNET = 0x40000000
_namespaces = iter(range(900, 1000))


@contextlib.contextmanager
def loopback_namespace() -> Iterator[str]:
    """A network namespace holding only ``lo`` (up); removed on exit.

    Named like tests/helpers/netns_link.py's (``dclink-<pid>-<n>``), so its
    ``remove_stale`` clears one a killed run left behind.
    """
    name = f"dclink-{os.getpid()}-{next(_namespaces)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


# server port, client port, client IPv4: a trailer on each datagram inside the link (after
# the data, so the link model still sees SRTP's first byte; 8 bytes more in its rate cap)
_ADDR = struct.Struct("!HH4s")


def _sockets_in_namespace(
    namespace: str, make: Callable[[], list[socket.socket]]
) -> list[socket.socket]:
    """Run ``make`` in a thread that has entered ``namespace``; the sockets stay there."""
    result: list[socket.socket] = []
    errors: list[BaseException] = []

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/var/run/netns/{namespace}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {namespace}")
            result.extend(make())
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result


class _Inside(asyncio.DatagramProtocol):
    def __init__(self, bridge: NamespaceBridge, port: int) -> None:
        self.bridge = bridge
        self.port = port
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        ip = socket.inet_aton(addr[0])
        self.bridge.up.push(data + _ADDR.pack(self.port, addr[1], ip))


class _Outside(asyncio.DatagramProtocol):
    def __init__(self, bridge: NamespaceBridge, port: int, client: tuple[str, int]) -> None:
        self.bridge = bridge
        self.port = port
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        ip = socket.inet_aton(self.client[0])
        self.bridge.down.push(data + _ADDR.pack(self.port, self.client[1], ip))


class NamespaceBridge:
    """UDP (impaired) and TCP (plain) between a loopback-only namespace and the root one."""

    def __init__(
        self,
        namespace: str,
        udp_ports: range,
        tcp_port: int,
        down: LinkSettings,
        up: LinkSettings,
        seed: int = 11,
    ) -> None:
        self.namespace = namespace
        self.udp_ports = udp_ports
        self.tcp_port = tcp_port
        rng = random.Random(seed)
        self.down_counters = LinkCounters()
        self.up_counters = LinkCounters()
        self.down = _Link(down, self.down_counters, rng, self._deliver_down)
        self.up = _Link(up, self.up_counters, rng, self._deliver_up)
        self._inside: dict[int, _Inside] = {}
        self._outside: dict[tuple[int, str, int], _Outside] = {}
        self._pending: dict[tuple[int, str, int], list[bytes]] = {}
        self._tcp_server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ports = list(self.udp_ports)

        def make() -> list[socket.socket]:
            made = []
            for port in ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("127.0.0.1", port))
                sock.setblocking(False)
                made.append(sock)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind(("127.0.0.1", self.tcp_port))
            tcp.listen(64)
            tcp.setblocking(False)
            made.append(tcp)
            return made

        sockets = _sockets_in_namespace(self.namespace, make)
        for port, sock in zip(ports, sockets[:-1], strict=True):
            inside = _Inside(self, port)
            await loop.create_datagram_endpoint(lambda inside=inside: inside, sock=sock)  # type: ignore[misc]
            self._inside[port] = inside
        self._tcp_server = await asyncio.start_server(self._proxy, sock=sockets[-1])
        self.down.bind(loop)
        self.up.bind(loop)

    def configure(self, down: LinkSettings | None = None, up: LinkSettings | None = None) -> None:
        if down is not None:
            self.down.configure(down)
        if up is not None:
            self.up.configure(up)

    # -- UDP ----------------------------------------------------------------------------

    def _deliver_up(self, framed: bytes) -> None:
        data, (port, cport, ip) = framed[: -_ADDR.size], _ADDR.unpack(framed[-_ADDR.size :])
        key = (port, socket.inet_ntoa(ip), cport)
        outside = self._outside.get(key)
        if outside is not None and outside.transport is not None:
            outside.transport.sendto(data, ("127.0.0.1", port))
            return
        pending = self._pending.setdefault(key, [])
        pending.append(data)
        if len(pending) == 1:
            task = asyncio.get_running_loop().create_task(self._open_outside(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _open_outside(self, key: tuple[int, str, int]) -> None:
        port, cip, cport = key
        loop = asyncio.get_running_loop()
        protocol = _Outside(self, port, (cip, cport))
        await loop.create_datagram_endpoint(lambda: protocol, local_addr=("127.0.0.1", 0))
        self._outside[key] = protocol
        assert protocol.transport is not None
        for data in self._pending.pop(key, []):
            protocol.transport.sendto(data, ("127.0.0.1", port))

    def _deliver_down(self, framed: bytes) -> None:
        data, (port, cport, ip) = framed[: -_ADDR.size], _ADDR.unpack(framed[-_ADDR.size :])
        inside = self._inside.get(port)
        if inside is not None and inside.transport is not None:
            inside.transport.sendto(data, (socket.inet_ntoa(ip), cport))

    # -- TCP ----------------------------------------------------------------------------

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.tcp_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        self.down.close()
        self.up.close()
        for task in list(self._tasks):
            task.cancel()
        endpoints: list[_Inside | _Outside] = [*self._inside.values(), *self._outside.values()]
        for endpoint in endpoints:
            if endpoint.transport is not None:
                endpoint.transport.close()
        if self._tcp_server is not None:
            self._tcp_server.close()
            with contextlib.suppress(Exception):
                await self._tcp_server.wait_closed()
