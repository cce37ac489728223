"""WebSocket connections that have not joined a room: capped per source address and in total.

Opening a WebSocket needs no token, so a connection counts against these
caps from its upgrade until it joins (or closes); a joined connection is
bounded by the rooms' own limits instead. Refused upgrades are answered
before the WebSocket exists: HTTP 429 when the source address has
``server.max_unjoined_per_address`` unjoined connections, HTTP 503 when the
node has ``server.max_unjoined_connections`` (docs/protocol.md#connecting).
The session closes a connection that has not joined in time
(``server.join_timeout``, signaling/session.py).

An IPv6 client holds a whole /64, so IPv6 addresses count per /64. Behind a
reverse proxy every client has the proxy's address: raise the per-address
cap to the total there.
"""

from __future__ import annotations

import ipaddress
import logging
import time

from sfu.errors import ErrorCode, SfuError

logger = logging.getLogger(__name__)

WARN_INTERVAL = 60.0  # seconds between two warnings that a cap refuses connections


class TooManyConnections(SfuError):
    """A connection refused by a cap; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(ErrorCode.TOO_MANY_CONNECTIONS, message)
        self.status = status


def address_key(remote: str | None) -> str:
    """What the per-address cap counts by: the IPv4 address, or the IPv6 /64."""
    if not remote:
        return ""
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class UnjoinedSlot:
    """One unjoined connection's place under the caps; released once (join or close)."""

    __slots__ = ("_key", "_owner", "_released")

    def __init__(self, owner: UnjoinedConnections, key: str) -> None:
        self._owner = owner
        self._key = key
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._owner._release(self._key)


class UnjoinedConnections:
    def __init__(self, per_address: int, total: int) -> None:
        self.per_address = per_address
        self.total = total
        self._by_key: dict[str, int] = {}
        self._count = 0
        self._warned = -WARN_INTERVAL

    def __len__(self) -> int:
        return self._count

    def open(self, remote: str | None) -> UnjoinedSlot:
        """A slot for a new connection from ``remote``, or TooManyConnections."""
        key = address_key(remote)
        if self._by_key.get(key, 0) >= self.per_address:
            self._warn(f"{self.per_address} from one address")
            raise TooManyConnections(
                429, "too many connections from your address have not joined a room"
            )
        if self._count >= self.total:
            self._warn(f"{self.total} in total")
            raise TooManyConnections(503, "too many connections have not joined a room")
        self._by_key[key] = self._by_key.get(key, 0) + 1
        self._count += 1
        return UnjoinedSlot(self, key)

    def _release(self, key: str) -> None:
        self._count -= 1
        left = self._by_key[key] - 1
        if left:
            self._by_key[key] = left
        else:
            del self._by_key[key]

    def _warn(self, cap: str) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_INTERVAL:  # one line a minute, however many are refused
            self._warned = now
            logger.warning("refusing WebSocket connections: %s have not joined a room", cap)
