"""UDP sockets for ICE host candidates: bound in a port range, with large buffers."""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Iterable

logger = logging.getLogger(__name__)

DEFAULT_SOCKET_BUFFER = 4 * 1024 * 1024


def bind_udp(address: str, port_range: tuple[int, int] | None) -> socket.socket:
    """A non-blocking UDP socket on ``address``, at a free port of ``port_range`` (None: any)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    if port_range is None:
        candidates: Iterable[int] = [0]
    else:
        low, high = port_range
        ports = list(range(low, high + 1))
        random.shuffle(ports)
        candidates = ports[:64] + sorted(ports[64:])
    last_error: OSError | None = None
    for port in candidates:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        sock.setblocking(False)
        return sock
    raise OSError(f"no free UDP port for {address} in {port_range}: {last_error}")


def set_socket_buffers(sock: socket.socket, size: int) -> None:
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
        except OSError:  # pragma: no cover - capped by the kernel, not fatal
            logger.debug("could not set socket buffer to %d", size)
