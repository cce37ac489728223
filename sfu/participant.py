"""Participant: one person's session in a room (roles, grants, lobby state)."""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from sfu.consumer import Consumer
from sfu.publisher_peer import PublisherPeer
from sfu.subscriber_peer import SubscriberPeer

logger = logging.getLogger(__name__)

Event = dict[str, Any]
EventSink = Callable[[Event], None]


class SharedEvent(dict[str, Any]):
    """An event broadcast to a room: encoded to JSON once, not once per recipient.

    Not to be changed once sent (every recipient gets the first encoding).
    """

    __slots__ = ("_encoded",)

    def encoded(self) -> str:
        try:
            return self._encoded
        except AttributeError:
            self._encoded: str = json.dumps(self)
            return self._encoded


class Role(enum.StrEnum):
    PATIENT = "patient"
    HEALTH_WORKER = "health_worker"
    SPECIALIST = "specialist"
    INTERPRETER = "interpreter"
    OBSERVER = "observer"


@dataclass(frozen=True, slots=True)
class Grants:
    publish: bool = True
    subscribe: bool = True
    admit: bool = False
    record: bool = False
    capture: bool = False  # ask for clinical captures (docs/capture.md)

    def as_dict(self) -> dict[str, bool]:
        return {
            "publish": self.publish,
            "subscribe": self.subscribe,
            "admit": self.admit,
            "record": self.record,
            "capture": self.capture,
        }


GRANT_NAMES = frozenset(f.name for f in fields(Grants))  # what a token may set


class ParticipantState(enum.Enum):
    LOBBY = "lobby"
    ACTIVE = "active"
    LEFT = "left"


class LeaveReason(enum.StrEnum):
    LEFT = "left"
    DISCONNECTED = "disconnected"
    DENIED = "denied"
    ROOM_CLOSED = "room_closed"
    SERVER_SHUTDOWN = "server_shutdown"


class Participant:
    def __init__(
        self,
        participant_id: str,
        identity: str,
        name: str,
        role: Role,
        grants: Grants,
        events: EventSink,
        auto_subscribe: bool = True,
    ) -> None:
        self.id = participant_id
        self.identity = identity
        self.name = name
        self.role = role
        self.grants = grants
        self.auto_subscribe = auto_subscribe
        self.state = ParticipantState.LOBBY
        self.publisher: PublisherPeer | None = None
        self.subscriber: SubscriberPeer | None = None
        self.consumers: dict[str, Consumer] = {}  # by producer id
        self.audio_only = False  # said so (`audio_only`): no video either way, on purpose
        self.on_hold = False  # said so (`on_hold`): a specialist busy in another room
        self.e2ee = False  # said so at join: its frames are end-to-end encrypted (docs/e2ee.md)
        self._events = events

    def __repr__(self) -> str:  # ids only: names are patient data
        return f"Participant({self.id} {self.role})"

    def set_state(self, state: ParticipantState) -> None:
        if state is not self.state:
            logger.info("%r %s -> %s", self, self.state.value, state.value)
            self.state = state

    def send(self, event: Event) -> None:
        if self.state is not ParticipantState.LEFT:
            self._events(event)

    def info(self) -> dict[str, Any]:
        producers = []
        if self.publisher is not None:
            producers = [
                {
                    "id": p.id,
                    "kind": p.kind.value,
                    "source": p.source.value,
                    "muted": p.muted,
                }
                for p in self.publisher.producers.values()
            ]
        # the portal's identity (``sub``) may be a patient number: never broadcast it
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "state": self.state.value,
            "producers": producers,
            "audio_only": self.audio_only,
            "on_hold": self.on_hold,
            "e2ee": self.e2ee,
        }
