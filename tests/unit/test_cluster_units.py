"""Placement tickets, node choice, in-process placement and cluster configuration."""

from __future__ import annotations

import dataclasses
import time

import pytest

from sfu.errors import ErrorCode, SfuError
from sfu.participant import Grants, Role
from sfu.peer import MediaSettings
from sfu.room import RoomSettings
from sfu.room_manager import RoomManager
from signaling.cluster import node_identity, node_scoped_recording
from signaling.config import Config, ConfigError, RecordingConfig, Secret, load_config
from signaling.placement import (
    InProcessPlacement,
    NodeIdentity,
    NodeInfo,
    NodeLoad,
    PlacementState,
)
from signaling.redis_placement import choose_node, node_from_hash
from signaling.tickets import TicketSigner
from signaling.tokens import JoinClaims
from signaling.workers import use_worker_media_port, worker_url

CLAIMS = JoinClaims(
    issuer="dev",
    identity="dr-1",
    name="Dr. One",
    room="ward-1",
    role=Role.SPECIALIST,
    grants=Grants(publish=True, subscribe=True, admit=True, record=True),
    # far enough that collection time does not matter (the suite runs 13 min before these)
    expires_at=int(time.time()) + 86400,
)


def test_ticket_round_trip_for_its_node() -> None:
    signer = TicketSigner(Secret("s3cret"), ttl=30)
    ticket = signer.issue(CLAIMS, "node-b")
    claims = signer.verify(ticket, "node-b")
    assert claims.identity == CLAIMS.identity and claims.room == CLAIMS.room
    assert claims.role is Role.SPECIALIST and claims.grants == CLAIMS.grants
    assert claims.expires_at <= time.time() + 31


def test_a_guest_ticket_keeps_the_hosts_room() -> None:
    """A redirected guest lands in the inviting hospital's room, not its own of that name."""
    guest = dataclasses.replace(CLAIMS, issuer="centre-b", identity="centre-b/dr-1", host="hosp-a")
    signer = TicketSigner(Secret("s3cret"), ttl=30)
    claims = signer.verify(signer.issue(guest, "node-b"), "node-b")
    assert claims.room_key == "hosp-a/ward-1" and claims.guest
    assert CLAIMS.room_key == "dev/ward-1" and not CLAIMS.guest


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t, "another node"),
        (lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"), "signature"),
        (lambda t: "x" + t, "signature"),
        (lambda t: "no-dot", "malformed"),
        (lambda t: 42, "malformed"),
        (lambda t: t + "\ud800", "malformed"),  # a lone surrogate from JSON's \ud800
        (lambda t: t[:-1] + "\u00e9", "malformed"),
        (lambda t: "\udc80" + t, "malformed"),
    ],
)
def test_ticket_refused(mutate: object, message: str) -> None:
    signer = TicketSigner(Secret("s3cret"), ttl=30)
    ticket = signer.issue(CLAIMS, "node-b")
    with pytest.raises(SfuError) as refused:
        signer.verify(mutate(ticket), "node-c")  # type: ignore[operator]
    assert refused.value.code is ErrorCode.TICKET_INVALID
    assert message in refused.value.message


def test_ticket_expires_and_needs_the_same_secret() -> None:
    signer = TicketSigner(Secret("s3cret"), ttl=30)
    ticket = signer.issue(CLAIMS, "node-b", now=time.time() - 60)
    with pytest.raises(SfuError, match="expired"):
        signer.verify(ticket, "node-b")
    fresh = signer.issue(CLAIMS, "node-b")
    with pytest.raises(SfuError, match="signature"):
        TicketSigner(Secret("other"), ttl=30).verify(fresh, "node-b")


def test_ticket_never_outlives_the_token() -> None:
    short = dataclasses.replace(CLAIMS, expires_at=int(time.time()) + 5)
    signer = TicketSigner(Secret("s3cret"), ttl=30)
    assert signer.verify(signer.issue(short, "n"), "n").expires_at == short.expires_at


def _node(node_id: str, rooms: int = 0, participants: int = 0, **kw: object) -> NodeInfo:
    return NodeInfo(
        node_id, f"ws://{node_id}/ws", (), 100, NodeLoad(rooms, participants, 0.0, 0.0), **kw
    )  # type: ignore[arg-type]


def test_choose_node_least_loaded_healthy() -> None:
    assert choose_node([]) is None
    chosen = choose_node([_node("a", rooms=2, participants=6), _node("b", rooms=1)])
    assert chosen is not None and chosen.id == "b"
    draining = [_node("a", rooms=5), _node("b", draining=True)]
    assert choose_node(draining).id == "a"  # type: ignore[union-attr]
    assert choose_node([_node("a", participants=100)]) is None  # full
    at_max_rooms = dataclasses.replace(_node("a", rooms=3), max_rooms=3)
    assert choose_node([at_max_rooms, _node("b", rooms=9)]).id == "b"  # type: ignore[union-attr]
    assert choose_node([at_max_rooms]) is None


def test_node_from_redis_hash() -> None:
    info = node_from_hash(
        "n1",
        {
            b"url": b"ws://x/ws",
            b"media": b"10.0.0.1,10.0.0.2",
            b"capacity": b"50",
            b"rooms": b"3",
            b"participants": b"7",
            b"pps": b"120.5",
            b"cpu": b"33.3",
            b"draining": b"1",
            b"started_at": b"1.5",
            b"max_rooms": b"1000",
        },
    )
    assert info.max_rooms == 1000 and not info.room_full
    assert info.media_addresses == ("10.0.0.1", "10.0.0.2")
    assert (info.capacity, info.load.rooms, info.load.participants) == (50, 3, 7)
    assert info.draining and info.load.cpu_percent == 33.3


async def test_in_process_placement_hosts_everything_until_drained() -> None:
    rooms = RoomManager(RoomSettings(), MediaSettings())
    placement = InProcessPlacement(NodeIdentity("solo", "ws://x/ws", ("127.0.0.1",), 10), rooms)
    await placement.start()
    assert placement.redis_connected is None
    placed = await placement.place("r1")
    assert placed.local and placed.node_id == "solo"
    rooms.get_or_create("r1")
    assert [r.room for r in await placement.rooms()] == ["r1"]
    (node,) = await placement.nodes()
    assert node.id == "solo" and node.load.rooms == 1
    await placement.drain()
    assert placement.state is PlacementState.DRAINING
    with pytest.raises(SfuError) as refused:
        await placement.place("r2")
    assert refused.value.code is ErrorCode.PLACEMENT_UNAVAILABLE
    await rooms.close()
    await placement.close()


def test_cluster_config_checks() -> None:
    with pytest.raises(ConfigError, match="heartbeat_interval"):
        load_config(environ={"DIGICLINIC_CLUSTER__HEARTBEAT_INTERVAL": "10"})
    with pytest.raises(ConfigError, match="room_lease"):
        load_config(environ={"DIGICLINIC_CLUSTER__ROOM_LEASE": "1"})
    with pytest.raises(ConfigError, match="node_id"):
        load_config(environ={"DIGICLINIC_CLUSTER__NODE_ID": "a b"})
    config = load_config(environ={"DIGICLINIC_CLUSTER__REDIS_URL": "redis://:pw@127.0.0.1/0"})
    assert "pw" not in repr(config.cluster)


def test_node_identity_and_worker_urls() -> None:
    config = load_config(environ={"DIGICLINIC_SERVER__PORT": "9000"})
    node = node_identity(config)
    assert node.url == "ws://127.0.0.1:9000/ws" and node.id
    assert worker_url(config, 9001) == "ws://127.0.0.1:9001/ws"
    config.cluster.public_url = "wss://media.example:{port}/ws"
    assert worker_url(config, 9002) == "wss://media.example:9002/ws"
    config.cluster.public_url = "wss://media.example/ws"
    with pytest.raises(ValueError, match="port"):
        worker_url(config, 9002)


def test_recordings_are_scoped_per_node() -> None:
    scoped = node_scoped_recording(
        RecordingConfig(directory="rec", audit_log="rec/audit.log"), "w1"
    )
    assert scoped.directory == "rec/w1" and scoped.audit_log == "rec/w1/audit.log"


def test_each_worker_has_its_own_media_port() -> None:
    """SO_REUSEPORT would hash a client's datagrams to any worker: udp_port + index instead."""
    for mode, port, index, expected in [
        ("one_port", 40000, 0, 40000),
        ("one_port", 40000, 3, 40003),
        ("one_port", 0, 3, 0),  # any free port, each worker its own
        ("port_range", 40000, 3, 40000),  # unused in that mode
    ]:
        config = Config()
        config.media.udp_mode, config.media.udp_port = mode, port
        use_worker_media_port(config, index)
        assert config.media.udp_port == expected
