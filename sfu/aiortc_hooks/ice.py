"""ICE: which local addresses and ports are offered as host candidates, and consent.

Part of sfu/aiortc_hooks (every use of aiortc's and aioice's private API, pinned to
aiortc 1.16.0 / aioice 0.13.0).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aioice.stun
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import StunProtocol, TransportPolicy
from aiortc import RTCPeerConnection

from sfu.udp_mux import UdpMux
from sfu.udp_sockets import DEFAULT_SOCKET_BUFFER, bind_udp, set_socket_buffers

logger = logging.getLogger(__name__)


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
