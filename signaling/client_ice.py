"""ConsultClient's ICE settings: how its PeerConnections are made.

The ICE servers are the caller's (``servers``) or, when the caller gives
none, the ones the server hands out on admission (TURN credentials,
``learn``); ``transport_policy`` is ``all`` or ``relay``; ``addresses``
restricts the host candidates to those addresses.
"""

from __future__ import annotations

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)

from sfu import aiortc_hooks
from signaling.client_errors import Event


class IceSettings:
    """The ICE servers, transport policy and host addresses of the client's PeerConnections."""

    def __init__(
        self,
        addresses: list[str] | None = None,
        servers: list[RTCIceServer] | None = None,
        transport_policy: str = "all",
    ) -> None:
        if transport_policy not in ("all", "relay"):
            raise ValueError("ice_transport_policy is 'all' or 'relay'")
        self.addresses = addresses
        # None: use the ICE servers (TURN credentials) the server hands out on admission
        self.servers = servers
        self.server_servers: list[RTCIceServer] = []
        self.transport_policy = transport_policy

    def learn(self, event: Event) -> None:
        """Keep the ICE servers of a ``joined`` or ``admitted`` event (none: an empty list)."""
        self.server_servers = [
            RTCIceServer(
                urls=server["urls"],
                username=server.get("username"),
                credential=server.get("credential"),
            )
            for server in event.get("ice_servers", [])
        ]

    def configuration(self) -> RTCConfiguration:
        servers = self.servers if self.servers is not None else self.server_servers
        policy = (
            RTCIceTransportPolicy.RELAY
            if self.transport_policy == "relay"
            else RTCIceTransportPolicy.ALL
        )
        return RTCConfiguration(
            iceServers=servers,
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            iceTransportPolicy=policy,
        )

    def new_pc(self) -> RTCPeerConnection:
        return RTCPeerConnection(self.configuration())

    def restrict_host_candidates(self, pc: RTCPeerConnection) -> None:
        """Offer host candidates on ``addresses`` only (when set), before a description is set."""
        if self.addresses is not None:
            aiortc_hooks.configure_host_candidates(pc, self.addresses)
