"""Placement: which node hosts a room. One interface, two implementations.

- ``InProcessPlacement`` (the default, no Redis): this process is the only
  node and hosts every room, as before.
- ``RedisPlacement`` (signaling/redis_placement.py, when ``cluster.redis_url``
  is set): nodes register in Redis with a heartbeat and a room lives on
  exactly one of them (docs/cluster.md).

Both report the same node load, take part in draining, and answer the admin
API's room and node listings.
"""

from __future__ import annotations

import enum
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Protocol

from sfu.errors import ErrorCode, SfuError
from sfu.room import RoomState
from sfu.room_manager import RoomManager


class PlacementState(enum.Enum):
    STARTING = "starting"
    ACTIVE = "active"  # places rooms
    DEGRADED = "degraded"  # Redis unreachable: serves the rooms it hosts, places none
    DRAINING = "draining"  # takes no new rooms; its rooms move elsewhere
    CLOSED = "closed"


class ReconnectReason(enum.StrEnum):
    """Why the server tells a client to reconnect (the ``reconnect`` event)."""

    NODE_DRAINING = "node_draining"
    ROOM_MOVED = "room_moved"  # another node owns the room (after a Redis outage)


@dataclass(frozen=True, slots=True)
class NodeLoad:
    rooms: int = 0
    participants: int = 0
    packets_per_second: float = 0.0
    cpu_percent: float = 0.0


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: str
    url: str  # signalling WebSocket URL
    media_addresses: tuple[str, ...]
    capacity: int
    load: NodeLoad
    draining: bool = False
    started_at: float = 0.0
    max_rooms: int = 0  # rooms.max_rooms: a node hosting this many takes no new room (0: no cap)

    @property
    def room_full(self) -> bool:
        return bool(self.max_rooms) and self.load.rooms >= self.max_rooms

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "url": self.url,
            "media_addresses": list(self.media_addresses),
            "capacity": self.capacity,
            "rooms": self.load.rooms,
            "participants": self.load.participants,
            "packets_per_second": round(self.load.packets_per_second, 1),
            "cpu_percent": round(self.load.cpu_percent, 1),
            "draining": self.draining,
            "started_at": self.started_at,
            "max_rooms": self.max_rooms,
        }


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a room lives: here (``url`` is None) or on another node."""

    room_id: str
    node_id: str
    url: str | None = None

    @property
    def local(self) -> bool:
        return self.url is None


@dataclass(frozen=True, slots=True)
class RoomSummary:
    room: str  # the room's key: "<issuer>/<name>" (JoinClaims.room_key)
    node: str
    participants: int
    lobby: int
    node_alive: bool = True

    @property
    def issuer(self) -> str:
        return self.room.partition("/")[0]

    @property
    def name(self) -> str:
        return self.room.partition("/")[2]

    def as_dict(self) -> dict[str, object]:
        return {
            "room": self.name,
            "issuer": self.issuer,
            "node": self.node,
            "participants": self.participants,
            "lobby": self.lobby,
            "node_alive": self.node_alive,
        }


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    id: str
    url: str
    media_addresses: tuple[str, ...]
    capacity: int
    started_at: float = field(default_factory=time.time)


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Placement(Protocol):
    node: NodeIdentity
    state: PlacementState

    @property
    def redis_connected(self) -> bool | None:
        """True/False with Redis configured, None without."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def place(self, room_id: str) -> Placed:
        """Where the room lives, placing it (here or elsewhere) if nowhere yet.

        Raises SfuError(placement_unavailable) when no node can take it.
        """

    def room_changed(self, room_id: str) -> None:
        """Participants of a hosted room changed: publish the counts soon."""

    async def drain(self) -> None:
        """Take no new rooms and give up the hosted ones (their clients move)."""

    def admitted(self, room_id: str, identity: str) -> None:
        """A clinician admitted this identity from the lobby of a room hosted here."""

    async def was_admitted(self, room_id: str, identity: str) -> bool:
        """Admitted to this room before it moved here: it skips the lobby."""

    async def rooms(self) -> list[RoomSummary]: ...

    async def nodes(self) -> list[NodeInfo]: ...


class LoadMeter:
    """This node's load: rooms, participants, forwarded packets/s and CPU of this process."""

    def __init__(self, rooms: RoomManager) -> None:
        self._rooms = rooms
        self._stamp = time.monotonic()
        self._cpu = time.process_time()
        self._packets = 0
        self.last = NodeLoad()

    def sample(self) -> NodeLoad:
        totals = self._rooms.totals()
        now, cpu = time.monotonic(), time.process_time()
        elapsed = max(now - self._stamp, 1e-3)
        packets = totals.packets_in + totals.packets_out
        self.last = NodeLoad(
            rooms=totals.rooms,
            participants=totals.participants,
            packets_per_second=max(0, packets - self._packets) / elapsed,
            cpu_percent=100.0 * (cpu - self._cpu) / elapsed,
        )
        self._stamp, self._cpu, self._packets = now, cpu, packets
        return self.last


def local_summaries(rooms: RoomManager, node_id: str) -> list[RoomSummary]:
    return [
        RoomSummary(room.id, node_id, len(room.participants), len(room.lobby()))
        for room in rooms.rooms.values()
        if room.state is RoomState.OPEN
    ]


class InProcessPlacement:
    """One node, every room here: today's single-process behaviour."""

    def __init__(self, node: NodeIdentity, rooms: RoomManager) -> None:
        self.node = node
        self.state = PlacementState.STARTING
        self._rooms = rooms
        self._meter = LoadMeter(rooms)

    @property
    def redis_connected(self) -> bool | None:
        return None

    async def start(self) -> None:
        self.state = PlacementState.ACTIVE

    async def close(self) -> None:
        self.state = PlacementState.CLOSED

    async def place(self, room_id: str) -> Placed:
        if self.state is PlacementState.DRAINING:
            raise SfuError(
                ErrorCode.PLACEMENT_UNAVAILABLE, "this server is draining: try again shortly"
            )
        return Placed(room_id, self.node.id)

    def room_changed(self, room_id: str) -> None:
        pass

    async def drain(self) -> None:
        self.state = PlacementState.DRAINING

    def admitted(self, room_id: str, identity: str) -> None:
        pass  # one node: a room never moves, a reconnection waits in the lobby as before

    async def was_admitted(self, room_id: str, identity: str) -> bool:
        return False

    async def rooms(self) -> list[RoomSummary]:
        return local_summaries(self._rooms, self.node.id)

    async def nodes(self) -> list[NodeInfo]:
        return [
            NodeInfo(
                self.node.id,
                self.node.url,
                self.node.media_addresses,
                self.node.capacity,
                self._meter.sample(),
                draining=self.state is PlacementState.DRAINING,
                started_at=self.node.started_at,
                max_rooms=self._rooms.max_rooms,
            )
        ]
