"""Which ICE candidates a client may hand the server: the server sends STUN to each.

Every remote candidate becomes connectivity checks (STUN Binding requests,
retransmitted) from the server's own address to the candidate's. Unchecked,
one client could aim those at any host and port — a DNS, NTP or SNMP
server, a service inside the server's own network, the server itself — and
many connections could do it in volume. So a connection accepts:

- at most ``media.max_remote_candidates`` candidates (16 by default;
  browsers send a handful: host, srflx, relay per network);
- UDP candidates only (the server does no ICE-TCP);
- an IP address, or a browser's mDNS name (``<uuid>.local``), never another
  DNS name (it could resolve anywhere);
- a port of 1024 or above (browsers and TURN relays use ephemeral ports;
  below are the services reflection attacks aim at);
- not unspecified, multicast, broadcast, link-local or reserved addresses;
  not loopback unless the server itself offers a loopback address (local
  development and tests); not in ``media.remote_candidate_deny`` (CIDRs, for
  the networks behind the server that no client should make it talk to).

A refused candidate is answered ``bad_message`` with the reason; the
connection and the call go on. Media itself only ever goes to the pair ICE
nominated, which needs the remote's answer with the ICE password.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from aiortc import RTCIceCandidate

from sfu.errors import ErrorCode, SfuError

_MDNS = re.compile(r"^[0-9a-f-]{1,64}\.local$", re.IGNORECASE)
MIN_PORT = 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _refuse(reason: str) -> SfuError:
    return SfuError(ErrorCode.BAD_MESSAGE, f"ICE candidate refused: {reason}")


class RemoteCandidatePolicy:
    def __init__(self, limit: int, deny: Iterable[str], own_addresses: Iterable[str]) -> None:
        self.limit = limit
        self.deny: list[Network] = [ipaddress.ip_network(cidr, strict=False) for cidr in deny]
        self.loopback_ok = any(_is_loopback(a) for a in own_addresses)

    def check(self, candidate: RTCIceCandidate, accepted: int) -> None:
        """Raise SfuError(bad_message) unless ``candidate`` may be checked; ``accepted``
        is how many this connection took already."""
        if accepted >= self.limit:
            raise _refuse(f"at most {self.limit} per connection")
        if (candidate.protocol or "").lower() != "udp":
            raise _refuse("UDP candidates only")
        if not MIN_PORT <= candidate.port <= 65535:
            raise _refuse(f"port below {MIN_PORT}")
        address = candidate.ip
        if _MDNS.match(address):
            return  # a browser's hidden host address: resolved on the local network only
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise _refuse("an IP address or an mDNS .local name only") from None
        if ip.is_loopback:
            if not self.loopback_ok:
                raise _refuse("loopback address")
            return
        if ip.is_unspecified or ip.is_multicast or ip.is_link_local or ip.is_reserved:
            raise _refuse("not a unicast address a client can have")
        if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
            raise _refuse("broadcast address")
        if any(ip in network for network in self.deny):
            raise _refuse("address in media.remote_candidate_deny")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
