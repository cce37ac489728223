"""Unit tests for signaling/client_ice.py: the ICE settings of ConsultClient's connections."""

from __future__ import annotations

import pytest
from aiortc import RTCIceServer, RTCIceTransportPolicy

from signaling.client_ice import IceSettings

TURN = {"urls": ["turn:127.0.0.1:3478"], "username": "u", "credential": "c"}


def test_only_all_or_relay() -> None:
    with pytest.raises(ValueError, match="'all' or 'relay'"):
        IceSettings(transport_policy="nearby")


def test_the_servers_handed_out_are_used_unless_the_caller_chose() -> None:
    ice = IceSettings()
    assert ice.configuration().iceServers == []
    ice.learn({"type": "joined", "ice_servers": [TURN, {"urls": ["stun:127.0.0.1"]}]})
    [turn, stun] = ice.configuration().iceServers or []
    assert (turn.urls, turn.username, turn.credential) == (TURN["urls"], "u", "c")
    assert (stun.urls, stun.username, stun.credential) == (["stun:127.0.0.1"], None, None)
    ice.learn({"type": "admitted"})  # no ice_servers: none any more
    assert ice.configuration().iceServers == []

    mine = [RTCIceServer(urls=["stun:192.0.2.1"])]
    chosen = IceSettings(servers=mine)
    chosen.learn({"type": "joined", "ice_servers": [TURN]})
    assert chosen.configuration().iceServers == mine
    assert IceSettings(servers=[]).configuration().iceServers == []  # none at all, on purpose


def test_transport_policy_and_bundle() -> None:
    relay = IceSettings(transport_policy="relay").configuration()
    assert relay.iceTransportPolicy == RTCIceTransportPolicy.RELAY
    assert IceSettings().configuration().iceTransportPolicy == RTCIceTransportPolicy.ALL
    assert relay.bundlePolicy.value == "max-bundle"
