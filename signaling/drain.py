"""Draining a node and moving rooms: tell the clients to reconnect, elsewhere.

A room "moves" by all its participants reconnecting: the node first gives
up the room's placement, then sends each of them
``{"type": "reconnect", "reason": ..., "url": <a suggested node>}`` and
closes their connection. Their client libraries reconnect (to the suggested
node, else to the URL they started from); the first re-join places the room
on another node and the others are redirected there.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable

from sfu.participant import LeaveReason
from sfu.room_manager import RoomManager
from signaling.placement import Placement, ReconnectReason
from signaling.redis_placement import choose_node
from signaling.session import SignalingSession

logger = logging.getLogger(__name__)


class DrainState(enum.Enum):
    SERVING = "serving"
    DRAINING = "draining"
    DRAINED = "drained"  # nobody left on this node


class Drainer:
    def __init__(
        self,
        placement: Placement,
        rooms: RoomManager,
        sessions: Callable[[], set[SignalingSession]],
    ) -> None:
        self.placement = placement
        self.rooms = rooms
        self._sessions = sessions
        self.state = DrainState.SERVING
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        # run first when draining starts (e.g. stop listening on the shared port)
        self.listeners: list[Callable[[], Awaitable[None]]] = []

    def _set_state(self, state: DrainState) -> None:
        if state is not self.state:
            logger.info("node %s -> %s", self.state.value, state.value)
            self.state = state

    async def _suggestion(self) -> str | None:
        """Another node's URL for the clients to reconnect to (None: their own URL)."""
        try:
            nodes = await self.placement.nodes()
        except Exception:  # Redis away: the clients use the URL they started from
            return None
        node = choose_node([n for n in nodes if n.id != self.placement.node.id])
        return node.url if node is not None else None

    async def drain(self) -> None:
        """No new rooms here; every participant is told to reconnect elsewhere."""
        async with self._lock:
            if self.state is not DrainState.SERVING:
                return
            self._set_state(DrainState.DRAINING)
            for listener in self.listeners:
                await listener()
            await self.placement.drain()
            await self._move(None, ReconnectReason.NODE_DRAINING)

    def start_drain(self) -> None:
        """drain() in a task this object owns (from a signal handler)."""
        task = asyncio.get_running_loop().create_task(self.drain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def move_room(self, room_id: str) -> None:
        """Another node owns this room now (after a Redis outage): send ours there."""
        task = asyncio.get_running_loop().create_task(
            self._move(room_id, ReconnectReason.ROOM_MOVED)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _move(self, room_id: str | None, reason: ReconnectReason) -> None:
        url = await self._suggestion()
        event: dict[str, object] = {"type": "reconnect", "reason": reason.value}
        if url is not None:
            event["url"] = url
        moving = [
            s
            for s in self._sessions()
            if s.room is not None and (room_id is None or s.room.id == room_id)
        ]
        logger.info("telling %d participants to reconnect (%s)", len(moving), reason.value)
        for session in moving:
            session.send(dict(event))
        await asyncio.gather(
            *(s.close(LeaveReason.SERVER_SHUTDOWN) for s in moving), return_exceptions=True
        )

    async def wait_drained(self, timeout: float) -> bool:
        """Until no participant is left here (True) or the timeout (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(s.room is not None for s in self._sessions()) and not any(
                room.participants for room in self.rooms.rooms.values()
            ):
                self._set_state(DrainState.DRAINED)
                return True
            await asyncio.sleep(0.1)
        return False

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
