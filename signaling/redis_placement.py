"""RedisPlacement: nodes coordinated through Redis (``cluster.redis_url``).

Keys (``P`` is ``cluster.key_prefix``; docs/cluster.md has the full story):

- ``P:node:<id>`` hash (url, media, capacity, rooms, participants, pps, cpu,
  draining, started_at) with a TTL of ``node_ttl``, rewritten by every
  heartbeat: a node whose key has expired is gone. ``P:nodes`` lists the ids.
- ``P:room:<room>`` hash (node, participants, lobby, placed_at) with a lease of
  ``room_lease``, refreshed by the hosting node's heartbeat. ``P:rooms`` lists
  the room ids.
- ``P:admitted:<room>`` set of keyed digests of the identities a clinician
  admitted from the lobby, so a room that moves does not send them back to
  the lobby; same lease, deleted when the room ends.
- ``P:jti:<digest of issuer and jti>`` the used single-use join tokens
  (``auth.single_use_tokens``, signaling/single_use.py): the SHA-256 of the
  token's resume secret, or ``spent``; expires with the token.

A room is placed by one Lua script, so two simultaneous first joins on two
nodes cannot both place it: the script keeps a mapping whose node is alive,
otherwise maps the room to the candidate (the least-loaded healthy node the
caller chose) and returns the winner.

Redis is only on the join path, never on the media path: while it is
unreachable the node keeps serving the rooms it hosts (joins to them
included), refuses to place new ones with ``placement_unavailable``, and
re-registers itself and re-claims its rooms as soon as Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from sfu.errors import ErrorCode, SfuError
from sfu.room import RoomState
from sfu.room_manager import RoomManager
from signaling.config import ClusterConfig
from signaling.placement import (
    LoadMeter,
    NodeIdentity,
    NodeInfo,
    NodeLoad,
    Placed,
    PlacementState,
    RoomSummary,
)
from signaling.single_use import RedisUsedTokens

logger = logging.getLogger(__name__)

ROOM_WEIGHT = 3  # a new room is expected to bring about three participants

# KEYS: room key, rooms set, candidate node key
# ARGV: candidate id, node key prefix, lease ms, now, room id
PLACE = """
local owner = redis.call('HGET', KEYS[1], 'node')
if owner and redis.call('EXISTS', ARGV[2] .. owner) == 1 then
  return {owner, ''}
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  return {'', ''}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'participants', 0, 'lobby', 0, 'placed_at', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('HINCRBY', KEYS[3], 'rooms', 1)
return {ARGV[1], owner or ''}
"""

# KEYS: room key, rooms set. ARGV: self id, node key prefix, lease ms, participants, lobby, room id
CLAIM = """
local owner = redis.call('HGET', KEYS[1], 'node')
if owner and owner ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. owner) == 1 then
  return owner
end
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'participants', ARGV[4], 'lobby', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[6])
return ARGV[1]
"""

# KEYS: room key, rooms set. ARGV: self id, room id
RELEASE = """
if redis.call('HGET', KEYS[1], 'node') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

_ERRORS = (RedisError, OSError, TimeoutError)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _f(value: Any) -> float:
    try:
        return float(_s(value) or 0)
    except ValueError:
        return 0.0


def node_from_hash(node_id: str, data: dict[Any, Any]) -> NodeInfo:
    d = {_s(k): _s(v) for k, v in data.items()}
    return NodeInfo(
        id=node_id,
        url=d.get("url", ""),
        media_addresses=tuple(a for a in d.get("media", "").split(",") if a),
        capacity=int(_f(d.get("capacity"))),
        load=NodeLoad(
            rooms=int(_f(d.get("rooms"))),
            participants=int(_f(d.get("participants"))),
            packets_per_second=_f(d.get("pps")),
            cpu_percent=_f(d.get("cpu")),
        ),
        draining=d.get("draining") == "1",
        started_at=_f(d.get("started_at")),
        max_rooms=int(_f(d.get("max_rooms"))),
    )


def choose_node(nodes: list[NodeInfo]) -> NodeInfo | None:
    """The least-loaded healthy node: not draining, below capacity and its rooms.max_rooms."""
    healthy = [
        n for n in nodes if not n.draining and n.load.participants < n.capacity and not n.room_full
    ]
    if not healthy:
        return None

    def score(n: NodeInfo) -> tuple[float, float, str]:
        used = (ROOM_WEIGHT * n.load.rooms + n.load.participants) / max(1, n.capacity)
        return (used, n.load.cpu_percent, n.id)

    return min(healthy, key=score)


class RedisPlacement:
    def __init__(
        self,
        node: NodeIdentity,
        rooms: RoomManager,
        config: ClusterConfig,
        on_node_gone: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        assert config.redis_url is not None
        self.node = node
        self.state = PlacementState.STARTING
        self.config = config
        self._rooms = rooms
        self._meter = LoadMeter(rooms)
        self._on_node_gone = on_node_gone
        self._prefix = config.key_prefix
        timeout = config.redis_timeout
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            config.redis_url.reveal(),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_error=[],
            health_check_interval=0,
        )
        self._place = self._redis.register_script(PLACE)
        self._claim = self._redis.register_script(CLAIM)
        self._release = self._redis.register_script(RELEASE)
        self._connected = False
        self._hosted: set[str] = set()  # rooms whose mapping this node keeps alive
        self._pending: dict[str, float] = {}  # placed here, first join not arrived yet
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # identities admitted from a hosted room's lobby (keyed digests, never the ids)
        self._admitted: dict[str, set[str]] = {}
        secret = config.secret.reveal() if config.secret else ""
        self._digest_key = hashlib.sha256(b"digiclinic-admitted\0" + secret.encode()).digest()
        self.on_conflict: Callable[[str], None] | None = None

    # -- keys ------------------------------------------------------------------

    def _node_key(self, node_id: str) -> str:
        return f"{self._prefix}:node:{node_id}"

    def _room_key(self, room_id: str) -> str:
        return f"{self._prefix}:room:{room_id}"

    def _admitted_key(self, room_id: str) -> str:
        return f"{self._prefix}:admitted:{room_id}"

    @property
    def _nodes_key(self) -> str:
        return f"{self._prefix}:nodes"

    @property
    def _rooms_key(self) -> str:
        return f"{self._prefix}:rooms"

    @property
    def redis_connected(self) -> bool | None:
        return self._connected

    def _set_state(self, state: PlacementState) -> None:
        if state is not self.state:
            logger.info("placement %s -> %s", self.state.value, state.value)
            self.state = state

    def _redis_down(self, exc: BaseException) -> None:
        if self._connected or self.state is PlacementState.STARTING:
            logger.warning("redis unreachable (%s): serving hosted rooms only", type(exc).__name__)
        self._connected = False
        if self.state in (PlacementState.ACTIVE, PlacementState.STARTING):
            self._set_state(PlacementState.DEGRADED)

    def _redis_up(self) -> None:
        if not self._connected:
            logger.info("redis reachable: node %s registered", self.node.id)
        self._connected = True
        if self.state in (PlacementState.DEGRADED, PlacementState.STARTING):
            self._set_state(PlacementState.ACTIVE)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        await self._heartbeat_once()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat_loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(*_ERRORS):
            for room_id in list(self._hosted):
                await self._release(
                    keys=[self._room_key(room_id), self._rooms_key], args=[self.node.id, room_id]
                )
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(self._node_key(self.node.id))
                pipe.srem(self._nodes_key, self.node.id)
                await pipe.execute()
        self._hosted.clear()
        self._set_state(PlacementState.CLOSED)
        await self._redis.aclose()

    async def _heartbeat_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.heartbeat_interval)
            self._wake.clear()
            await self._heartbeat_once()

    def room_changed(self, room_id: str) -> None:
        self._wake.set()

    async def _heartbeat_once(self) -> None:
        load = self._meter.sample()
        draining = self.state is PlacementState.DRAINING
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                key = self._node_key(self.node.id)
                pipe.hset(
                    key,
                    mapping={
                        "url": self.node.url,
                        "media": ",".join(self.node.media_addresses),
                        "capacity": self.node.capacity,
                        "rooms": load.rooms + len(self._pending),
                        "participants": load.participants,
                        "pps": round(load.packets_per_second, 1),
                        "cpu": round(load.cpu_percent, 1),
                        "draining": int(draining),
                        "started_at": self.node.started_at,
                        "max_rooms": self._rooms.max_rooms,
                    },
                )
                pipe.pexpire(key, int(self.config.node_ttl * 1000))
                pipe.sadd(self._nodes_key, self.node.id)
                await pipe.execute()
            if not draining:
                await self._refresh_rooms()
        except _ERRORS as exc:
            self._redis_down(exc)
            return
        self._redis_up()

    async def _refresh_rooms(self) -> None:
        now = time.monotonic()
        self._pending = {r: t for r, t in self._pending.items() if t > now}
        live = {r.id: r for r in self._rooms.rooms.values() if r.state is RoomState.OPEN}
        lease = int(self.config.room_lease * 1000)
        for room_id in list(self._hosted):
            if room_id in live or room_id in self._pending:
                continue
            if await self._release(
                keys=[self._room_key(room_id), self._rooms_key], args=[self.node.id, room_id]
            ):
                await self._redis.delete(self._admitted_key(room_id))  # the consult is over
            self._hosted.discard(room_id)
            self._admitted.pop(room_id, None)
        for room_id, room in live.items():
            owner = _s(
                await self._claim(
                    keys=[self._room_key(room_id), self._rooms_key],
                    args=[
                        self.node.id,
                        self._node_key(""),
                        lease,
                        len(room.participants),
                        len(room.lobby()),
                        room_id,
                    ],
                )
            )
            self._hosted.add(room_id)
            if owner == self.node.id:
                await self._flush_admitted(room_id)
            if owner != self.node.id:
                # placed elsewhere while Redis was away: our participants move there
                logger.warning("room placed on another node meanwhile; moving its participants")
                self._hosted.discard(room_id)
                if self.on_conflict is not None:
                    self.on_conflict(room_id)

    # -- placement ---------------------------------------------------------------

    def _unavailable(self) -> SfuError:
        return SfuError(
            ErrorCode.PLACEMENT_UNAVAILABLE,
            "cannot place the room: the cluster's Redis is unreachable; "
            "calls in progress continue, try again shortly",
        )

    async def place(self, room_id: str) -> Placed:
        room = self._rooms.rooms.get(room_id)
        draining = self.state is PlacementState.DRAINING
        if room is not None and room.state is RoomState.OPEN and not draining:
            return Placed(room_id, self.node.id)  # hosted here: no Redis needed
        gone = ""
        try:
            nodes = await self._fetch_nodes()
            by_id = {n.id: n for n in nodes}
            owner = await self._owner(room_id)
            if owner == self.node.id and draining:  # placed here just before the drain
                await self._release(
                    keys=[self._room_key(room_id), self._rooms_key], args=[self.node.id, room_id]
                )
                owner = None
            if owner is None or owner not in by_id:
                # not here when draining, nor when this node hosts its rooms.max_rooms
                # (what Redis holds of its load may be a heartbeat old)
                full_here = draining or len(self._rooms.rooms) >= self._rooms.max_rooms
                others = [n for n in nodes if not (full_here and n.id == self.node.id)]
                candidate = choose_node(others)
                if candidate is None:
                    raise SfuError(
                        ErrorCode.PLACEMENT_UNAVAILABLE,
                        "no node can take the room now (all full or draining)",
                    )
                owner, previous = await self._place_on(room_id, candidate.id)
                if previous and previous != owner:
                    gone = previous
        except _ERRORS as exc:
            self._redis_down(exc)
            raise self._unavailable() from None
        if gone:
            await self._node_gone(gone)
        if owner == self.node.id and not draining:
            self._hosted.add(room_id)
            self._pending[room_id] = time.monotonic() + self.config.ticket_ttl
            return Placed(room_id, owner)
        target = by_id.get(owner)
        if target is None or owner == self.node.id:
            raise SfuError(ErrorCode.PLACEMENT_UNAVAILABLE, "the room's node is not available")
        return Placed(room_id, owner, target.url)

    async def _owner(self, room_id: str) -> str | None:
        value = await self._redis.hget(self._room_key(room_id), "node")
        return _s(value) or None

    async def _place_on(self, room_id: str, candidate: str) -> tuple[str, str]:
        result = await self._place(
            keys=[self._room_key(room_id), self._rooms_key, self._node_key(candidate)],
            args=[
                candidate,
                self._node_key(""),
                int(self.config.room_lease * 1000),
                f"{time.time():.3f}",
                room_id,
            ],
        )
        owner, previous = _s(result[0]), _s(result[1])
        if not owner:
            raise SfuError(ErrorCode.PLACEMENT_UNAVAILABLE, "the chosen node has just gone")
        return owner, previous

    async def _node_gone(self, node_id: str) -> None:
        logger.warning("node %s is gone: its room was re-placed", node_id)
        if self._on_node_gone is not None:
            await self._on_node_gone(node_id)

    async def claim_reaping(self, node_id: str) -> bool:
        """True for exactly one caller per gone node (within the room lease)."""
        try:
            key = f"{self._prefix}:reaped:{node_id}"
            lease = int(self.config.room_lease * 1000)
            return bool(await self._redis.set(key, self.node.id, nx=True, px=lease))
        except _ERRORS:
            return False

    # -- lobby admissions survive a move ---------------------------------------------

    def _digest(self, room_id: str, identity: str) -> str:
        data = f"{room_id}\0{identity}".encode()
        return hmac.new(self._digest_key, data, hashlib.sha256).hexdigest()[:32]

    async def _flush_admitted(self, room_id: str) -> None:
        admitted = self._admitted.get(room_id)
        if admitted:
            key = self._admitted_key(room_id)
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.sadd(key, *admitted)
                pipe.pexpire(key, int(self.config.room_lease * 1000))
                await pipe.execute()

    def admitted(self, room_id: str, identity: str) -> None:
        self._admitted.setdefault(room_id, set()).add(self._digest(room_id, identity))
        self._wake.set()

    async def was_admitted(self, room_id: str, identity: str) -> bool:
        digest = self._digest(room_id, identity)
        if digest in self._admitted.get(room_id, ()):
            return True
        if not self._connected:  # Redis away: do not make the join wait for it
            return False
        try:
            found = bool(await self._redis.sismember(self._admitted_key(room_id), digest))
        except _ERRORS:
            return False
        if found:
            self._admitted.setdefault(room_id, set()).add(digest)
        return found

    def used_tokens(self) -> RedisUsedTokens:
        """The cluster-wide records of used single-use tokens, on this node's Redis client."""
        return RedisUsedTokens(self._redis, f"{self._prefix}:jti:", lambda: self._connected)

    async def drain(self) -> None:
        self._set_state(PlacementState.DRAINING)
        await self._heartbeat_once()  # draining in the registry first: never a candidate again
        try:
            for room_id in list(self._hosted):
                await self._flush_admitted(room_id)  # the next node lets them skip the lobby
                await self._release(
                    keys=[self._room_key(room_id), self._rooms_key], args=[self.node.id, room_id]
                )
        except _ERRORS as exc:
            logger.warning("drain: redis unreachable (%s); mappings expire", type(exc).__name__)
        self._hosted.clear()
        self._pending.clear()

    # -- listings ------------------------------------------------------------------

    async def nodes(self) -> list[NodeInfo]:
        try:
            return await self._fetch_nodes()
        except _ERRORS as exc:
            self._redis_down(exc)
            raise self._unavailable() from None

    async def _fetch_nodes(self) -> list[NodeInfo]:
        ids = sorted(_s(i) for i in await self._redis.smembers(self._nodes_key))
        async with self._redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.hgetall(self._node_key(node_id))
            hashes = await pipe.execute()
        found, gone = [], []
        for node_id, data in zip(ids, hashes, strict=True):
            if data:
                found.append(node_from_hash(node_id, data))
            else:
                gone.append(node_id)
        if gone:
            await self._redis.srem(self._nodes_key, *gone)
        return found

    async def rooms(self) -> list[RoomSummary]:
        try:
            alive = {n.id for n in await self._fetch_nodes()}
            ids = sorted(_s(i) for i in await self._redis.smembers(self._rooms_key))
            async with self._redis.pipeline(transaction=False) as pipe:
                for room_id in ids:
                    pipe.hgetall(self._room_key(room_id))
                hashes = await pipe.execute()
        except _ERRORS as exc:
            self._redis_down(exc)
            raise self._unavailable() from None
        out, gone = [], []
        for room_id, data in zip(ids, hashes, strict=True):
            if not data:
                gone.append(room_id)
                continue
            d = {_s(k): _s(v) for k, v in data.items()}
            node = d.get("node", "")
            out.append(
                RoomSummary(
                    room_id,
                    node,
                    int(_f(d.get("participants"))),
                    int(_f(d.get("lobby"))),
                    node_alive=node in alive,
                )
            )
        if gone:
            with contextlib.suppress(*_ERRORS):
                await self._redis.srem(self._rooms_key, *gone)
        return out
