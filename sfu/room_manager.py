"""RoomManager: the rooms this process hosts (in-process placement)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sfu.consumer import ConsumerState
from sfu.errors import ErrorCode, SfuError
from sfu.participant import LeaveReason
from sfu.peer import MediaSettings
from sfu.room import RetiredCounters, Room, RoomSettings, RoomState

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class SfuTotals:
    rooms: int = 0
    participants: int = 0
    lobby: int = 0
    producers: int = 0
    consumers: int = 0
    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    nacks: int = 0
    retransmissions: int = 0
    keyframe_requests: int = 0


class RoomManager:
    def __init__(
        self, room_settings: RoomSettings, media: MediaSettings, max_rooms: int = 1000
    ) -> None:
        self.room_settings = room_settings
        self.media = media
        self.max_rooms = max_rooms  # rooms.max_rooms: new rooms beyond it are refused
        self.rooms: dict[str, Room] = {}
        self.retired = RetiredCounters()

    def get_or_create(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None or room.state is RoomState.CLOSED:
            if room is None and len(self.rooms) >= self.max_rooms:
                logger.warning("refused a new room: this node hosts %d rooms", len(self.rooms))
                raise SfuError(
                    ErrorCode.TOO_MANY_ROOMS, "this server hosts as many rooms as it may"
                )
            room = Room(room_id, self.room_settings, self.media, self._room_closed)
            self.rooms[room_id] = room
            room.start_empty_timer()  # a room nobody enters does not live forever
            logger.info("%r created", room)
        return room

    def _room_closed(self, room: Room) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
        for name in vars(self.retired):
            setattr(self.retired, name, getattr(self.retired, name) + getattr(room.retired, name))

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            for participant in list(room.participants.values()):
                participant.send({"type": "room_closed", "reason": "server_shutdown"})
                await room.leave(participant, LeaveReason.SERVER_SHUTDOWN)
            await room.close("server_shutdown")

    def totals(self) -> SfuTotals:
        """Live figures plus the retired totals (monotonic counters)."""
        t = SfuTotals()
        retired = [self.retired, *(r.retired for r in self.rooms.values())]
        for r in retired:
            t.packets_in += r.packets_in
            t.bytes_in += r.bytes_in
            t.packets_out += r.packets_out
            t.bytes_out += r.bytes_out
            t.nacks += r.nacks
            t.retransmissions += r.retransmissions
            t.keyframe_requests += r.keyframe_requests
        for room in self.rooms.values():
            t.rooms += 1
            t.lobby += len(room.lobby())
            for participant in room.participants.values():
                t.participants += 1
                for consumer in participant.consumers.values():
                    if consumer.state is not ConsumerState.CLOSED:
                        t.consumers += 1
                        t.packets_out += consumer.counters.packets
                        t.bytes_out += consumer.counters.bytes
                        t.retransmissions += consumer.counters.retransmissions
                        t.nacks += consumer.counters.nacks
            for producer in room.producers():
                t.producers += 1
                t.packets_in += producer.counters.packets
                t.bytes_in += producer.counters.bytes
                t.keyframe_requests += producer.counters.keyframe_requests
                t.nacks += producer.counters.nacks
        return t
