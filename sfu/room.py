"""Room: who is in a consult, the lobby, and who receives whose tracks.

The Room owns its Participants; a Participant owns its peers, a peer its
Producers or Consumers. Closing a parent closes its children.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

from e2ee.mode import E2eeMode, settle
from sfu.announcements import BATCH_FROM, Announcements
from sfu.consumer import Consumer
from sfu.errors import ErrorCode, SfuError
from sfu.media import MediaKind, Source
from sfu.participant import LeaveReason, Participant, ParticipantState, Role, SharedEvent
from sfu.peer import MediaSettings, PeerState
from sfu.producer import Producer
from sfu.publisher_peer import PublisherPeer
from sfu.subscriber_peer import OfferedTrack, SubscriberPeer
from sfu.uplink_health import DownlinkHint

logger = logging.getLogger(__name__)

_consumer_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class RoomSettings:
    max_participants: int = 12
    empty_timeout: float = 30.0
    lobby_roles: frozenset[Role] = frozenset({Role.PATIENT})
    max_media_sections: int = 16  # m-lines in one publish offer
    max_published_tracks: int = 8  # tracks one participant publishes at once
    # active participants from which arrivals and departures are announced in batches
    # (sfu/announcements.py)
    announce_batch_from: int = BATCH_FROM


class RoomObserver(Protocol):
    """Public hook for components driven by the room (the recorder): told, never asked."""

    def participant_active(self, participant: Participant) -> None: ...

    def participant_left(self, participant: Participant) -> None: ...

    def producers_added(self, participant: Participant, producers: list[Producer]) -> None: ...


class RoomState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class Room:
    def __init__(
        self,
        room_id: str,
        settings: RoomSettings,
        media: MediaSettings,
        on_closed: Callable[[Room], None],
    ) -> None:
        self.id = room_id
        self.settings = settings
        self.media = media
        self.state = RoomState.OPEN
        self.participants: dict[str, Participant] = {}
        self._on_closed = on_closed
        self._empty_timer: asyncio.TimerHandle | None = None
        self._close_task: asyncio.Task[None] | None = None
        self.retired = RetiredCounters()
        self.observers: list[RoomObserver] = []
        self.e2ee = E2eeMode.OFF  # set by the first join (e2ee/mode.py)
        self._media = media  # as configured: ``media`` is this room's (without RED when e2ee)
        self._announcements = Announcements(self._send_all, settings.announce_batch_from)

    def __repr__(self) -> str:
        return f"Room({self.id})"

    # -- queries ---------------------------------------------------------------

    def active(self) -> Iterator[Participant]:
        return (p for p in self.participants.values() if p.state is ParticipantState.ACTIVE)

    def lobby(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.state is ParticipantState.LOBBY]

    def producers(self) -> Iterator[Producer]:
        for participant in self.active():
            if participant.publisher is not None:
                yield from participant.publisher.producers.values()

    def find_producer(self, producer_id: str) -> Producer:
        for producer in self.producers():
            if producer.id == producer_id:
                return producer
        raise SfuError(ErrorCode.NOT_FOUND, "no such track in this room")

    # -- membership -----------------------------------------------------------------

    def join(self, participant: Participant, *, admitted: bool = False) -> None:
        """Add a participant; ``admitted``: admitted before (the room moved), skip the lobby."""
        if self.state is RoomState.CLOSED:
            raise SfuError(ErrorCode.ROOM_CLOSED, "the room is closed")
        if len(self.participants) >= self.settings.max_participants:
            raise SfuError(ErrorCode.ROOM_FULL, "the room is full")
        if any(p.identity == participant.identity for p in self.participants.values()):
            raise SfuError(ErrorCode.DUPLICATE_IDENTITY, "this identity is already in the room")
        self._cancel_empty_timer()
        self.participants[participant.id] = participant
        waits = participant.role in self.settings.lobby_roles and not participant.grants.admit
        if waits and not admitted:
            participant.set_state(ParticipantState.LOBBY)
            self._lobby_changed()
        else:
            self._activate(participant)

    def _activate(self, participant: Participant) -> None:
        participant.set_state(ParticipantState.ACTIVE)
        for observer in list(self.observers):
            observer.participant_active(participant)
        self._announcements.joined(participant, sum(1 for _ in self.active()))
        if participant.grants.subscribe and participant.auto_subscribe:
            for producer in list(self.producers()):
                if producer.participant_id != participant.id:
                    self._consume(participant, producer)

    def admit(self, by: Participant, participant_id: str) -> None:
        target = self._lobby_member(by, participant_id)
        logger.info("%r admitted %r", by, target)
        target.send({"type": "admitted", "participants": self.roster(exclude=target)})
        self._activate(target)
        self._lobby_changed()

    def deny(self, by: Participant, participant_id: str) -> Participant:
        target = self._lobby_member(by, participant_id)
        logger.info("%r denied %r", by, target)
        target.send({"type": "denied"})
        return target

    def require_admit(self, by: Participant, what: str) -> None:
        """Who decides who is in the room (the ``admit`` grant) also decides when it ends."""
        if not by.grants.admit or by.state is not ParticipantState.ACTIVE:
            raise SfuError(ErrorCode.FORBIDDEN, f"{what} needs the admit grant")

    async def end(self, by: Participant) -> None:
        """A clinician ends the consult: everyone gets ``room_closed`` ("ended") and leaves."""
        self.require_admit(by, "ending the consult")
        logger.info("%r ended the consult", by)
        await self.close("ended")

    def _lobby_member(self, by: Participant, participant_id: str) -> Participant:
        self.require_admit(by, "admitting")
        target = self.participants.get(participant_id)
        if target is None or target.state is not ParticipantState.LOBBY:
            raise SfuError(ErrorCode.NOT_FOUND, "no such participant in the lobby")
        return target

    def _lobby_changed(self) -> None:
        waiting = [{"id": p.id, "name": p.name, "role": p.role.value} for p in self.lobby()]
        for participant in self.active():
            if participant.grants.admit:
                participant.send({"type": "lobby", "waiting": waiting})

    def roster(self, exclude: Participant | None = None) -> list[dict[str, object]]:
        return [p.info() for p in self.active() if p is not exclude]

    async def leave(self, participant: Participant, reason: LeaveReason) -> None:
        if self.participants.pop(participant.id, None) is None:
            return
        was_active = participant.state is ParticipantState.ACTIVE
        was_lobby = participant.state is ParticipantState.LOBBY
        participant.set_state(ParticipantState.LEFT)
        if was_active:
            for observer in list(self.observers):
                observer.participant_left(participant)
        if participant.publisher is not None:
            ended = await participant.publisher.close()
            self._producers_removed(ended)
            self.retired.add_producers(ended)
            participant.publisher = None
        if participant.subscriber is not None:
            self.retired.add_consumers(participant.consumers.values())
            await participant.subscriber.close()
            participant.subscriber = None
        participant.consumers.clear()
        if was_active:
            self._announcements.left(participant.id, reason, sum(1 for _ in self.active()))
        if was_lobby:
            self._lobby_changed()
        if not self.participants and self.state is RoomState.OPEN:
            self._start_empty_timer()

    def agree_e2ee(self, participant: Participant, token: E2eeMode, encrypts: bool) -> None:
        """Before ``participant`` joins: the token's end-to-end encryption must be the room's.

        An encrypted room's frames pass through as they are, without RED: the
        browser's transform would encrypt the RED block headers the SFU reads.
        """
        self.e2ee = settle(self.e2ee if self.participants else None, token, encrypts)
        self.media = replace(self._media, opus_red=self._media.opus_red and not self.e2ee.on)
        participant.e2ee = encrypts and self.e2ee.on

    # -- media -----------------------------------------------------------------------

    async def publish(self, participant: Participant, offer: str, tracks: dict[str, Source]) -> str:
        self._require_active(participant)
        if not participant.grants.publish:
            raise SfuError(ErrorCode.FORBIDDEN, "this token may not publish")
        created = participant.publisher is None
        if participant.publisher is None:
            participant.publisher = PublisherPeer(
                participant.id,
                self.media,
                functools.partial(self._peer_state, participant, "publisher"),
                functools.partial(self._publisher_layers, participant),
                functools.partial(self._publisher_audio, participant),
                functools.partial(self._publisher_uplink, participant),
                max_media_sections=self.settings.max_media_sections,
                max_tracks=self.settings.max_published_tracks,
            )
            participant.publisher.downlink_hint = functools.partial(
                self._downlink_hint, participant
            )
        publisher = participant.publisher
        try:
            result = await publisher.negotiate(offer, tracks)
        except Exception:
            if created and participant.publisher is publisher:
                # a refused first offer leaves nothing behind: no connection, no track
                # (none was announced); the next publish starts afresh
                participant.publisher = None
                await publisher.close()
            raise
        if participant.state is not ParticipantState.ACTIVE:
            return result.answer
        self.retired.add_producers(result.removed)
        self._producers_removed(result.removed)
        if result.added:
            for observer in list(self.observers):
                observer.producers_added(participant, result.added)
        for producer in result.added:
            producer.fanout.on_consumer_failed = self._consumer_failed
            self._broadcast(
                {
                    "type": "track_published",
                    "participant_id": participant.id,
                    "track": {
                        "id": producer.id,
                        "kind": producer.kind.value,
                        "source": producer.source.value,
                        "muted": producer.muted,
                    },
                },
                skip=participant,
            )
            for other in self.active():
                if other is not participant and other.grants.subscribe and other.auto_subscribe:
                    self._consume(other, producer)
        return result.answer

    def _consumer_failed(self, consumer: Consumer) -> None:
        """A delivery that tripped a bug was closed (sfu/faults.py): its subscriber is told."""
        participant = self.participants.get(consumer.subscriber_id)
        if participant is None or participant.consumers.get(consumer.producer.id) is not consumer:
            return
        del participant.consumers[consumer.producer.id]
        self.retired.add_consumers([consumer])
        if participant.subscriber is not None:
            participant.subscriber.remove_consumer(consumer)
        participant.send(
            {"type": "track_failed", "track_id": consumer.producer.id, "reason": "internal_error"}
        )

    def _producers_removed(self, producers: list[Producer]) -> None:
        for producer in producers:
            for other in self.participants.values():
                consumer = other.consumers.pop(producer.id, None)
                if consumer is not None and other.subscriber is not None:
                    self.retired.add_consumers([consumer])
                    other.subscriber.remove_consumer(consumer)
            self._broadcast(
                {
                    "type": "track_unpublished",
                    "participant_id": producer.participant_id,
                    "track_id": producer.id,
                }
            )

    def subscribe(self, participant: Participant, producer_id: str) -> None:
        self._require_active(participant)
        if not participant.grants.subscribe:
            raise SfuError(ErrorCode.FORBIDDEN, "this token may not subscribe")
        producer = self.find_producer(producer_id)
        if producer.participant_id == participant.id:
            raise SfuError(ErrorCode.BAD_MESSAGE, "cannot subscribe to your own track")
        if producer.id not in participant.consumers:
            self._consume(participant, producer)

    def unsubscribe(self, participant: Participant, producer_id: str) -> None:
        self._require_active(participant)
        consumer = participant.consumers.pop(producer_id, None)
        if consumer is None:
            raise SfuError(ErrorCode.NOT_FOUND, "not subscribed to that track")
        self.retired.add_consumers([consumer])
        if participant.subscriber is not None:
            participant.subscriber.remove_consumer(consumer)

    def set_audio_only(self, participant: Participant, enabled: bool) -> None:
        """A participant chose audio only (no video sent or received): the others are told."""
        self._set_presence(participant, "audio_only", enabled)

    def set_on_hold(self, participant: Participant, enabled: bool) -> None:
        """A specialist put this room on hold (busy in another room): the others are told."""
        self._set_presence(participant, "on_hold", enabled)

    def _set_presence(self, participant: Participant, flag: str, enabled: bool) -> None:
        """Set one of the participant's said-so flags; a change goes to everyone else."""
        self._require_active(participant)
        if getattr(participant, flag) == enabled:
            return
        setattr(participant, flag, enabled)
        self._broadcast(
            {"type": f"participant_{flag}", "participant_id": participant.id, "enabled": enabled},
            skip=participant,
        )

    def set_muted(self, participant: Participant, producer_id: str, muted: bool) -> None:
        self._require_active(participant)
        publisher = participant.publisher
        producer = next(
            (p for p in (publisher.producers.values() if publisher else []) if p.id == producer_id),
            None,
        )
        if producer is None:
            raise SfuError(ErrorCode.NOT_FOUND, "no such track of yours")
        if producer.muted != muted:
            producer.muted = muted
            # a muted track is not forwarded at all: it saves the subscribers' bandwidth
            for consumer in list(producer.consumers):
                if muted:
                    consumer.pause("muted")
                else:
                    consumer.resume("muted")
            self._broadcast(
                {
                    "type": "track_muted",
                    "participant_id": participant.id,
                    "track_id": producer.id,
                    "muted": muted,
                }
            )

    def set_video_paused(self, participant: Participant, track_id: str, paused: bool) -> None:
        """A subscriber stops (or resumes) receiving one video track: audio-only, on hold."""
        self._require_active(participant)
        consumer = participant.consumers.get(track_id)
        if consumer is None or consumer.kind is not MediaKind.VIDEO:
            raise SfuError(ErrorCode.NOT_FOUND, "not receiving that video track")
        if paused:
            consumer.pause("subscriber")
        else:
            consumer.resume("subscriber")
        participant.send(
            {"type": "track_paused", "track_id": track_id, "paused": paused, "reason": "subscriber"}
        )

    def set_track_settings(
        self,
        participant: Participant,
        track_id: str,
        size: tuple[int, int] | None,
        pinned: bool | None,
    ) -> None:
        """How a subscriber shows one video: its rendered size (device pixels), pinned or not."""
        self._require_active(participant)
        consumer = participant.consumers.get(track_id)
        if consumer is None or consumer.kind is not MediaKind.VIDEO:
            raise SfuError(ErrorCode.NOT_FOUND, "not receiving that video track")
        if size is not None:
            consumer.render_size = size
        if pinned is not None:
            consumer.pinned = pinned

    def _publisher_layers(
        self, participant: Participant, producer: Producer, active: list[bool]
    ) -> None:
        """Tell a publisher which simulcast layers somebody still needs."""
        logger.info("%r layers %s", producer, active)
        participant.send(
            {
                "type": "publisher_layers",
                "track_id": producer.id,
                "layers": [
                    {"rid": layer.rid, "active": on}
                    for layer, on in zip(producer.layers, active, strict=True)
                ],
            }
        )

    def _publisher_audio(
        self, participant: Participant, producer: Producer, max_bitrate: int | None
    ) -> None:
        """Ask a publisher for less Opus while a subscriber's link is too thin (None: lift).

        ``packet_ms``: the packet duration its next answer asks for (thin-link
        audio, sfu/publisher_peer.py), so it renegotiates when that changes.
        """
        logger.info("%r audio cap %s", producer, max_bitrate)
        ptime = self.media.thin_link_opus_ptime_ms
        participant.send(
            {
                "type": "publisher_audio",
                "track_id": producer.id,
                "max_bitrate_bps": max_bitrate,
                "packet_ms": ptime if producer.audio.thin_packets else None,
            }
        )

    @staticmethod
    def _downlink_hint(participant: Participant) -> DownlinkHint | None:
        subscriber = participant.subscriber
        if subscriber is None:
            return None
        downlink = subscriber.downlink
        return DownlinkHint(downlink.estimator.estimate, downlink.resumed_at)

    def _publisher_uplink(self, participant: Participant, producer: Producer, weak: bool) -> None:
        """Tell everyone else that this camera arrives (or no longer arrives) at a crawl."""
        logger.info("%r uplink %s", producer, "weak" if weak else "well again")
        self._broadcast(
            {
                "type": "publisher_link",
                "participant_id": participant.id,
                "track_id": producer.id,
                "weak": weak,
            },
            skip=participant,
        )

    def relay_chat(self, participant: Participant, text: str) -> None:
        """Pass a chat message to everyone in the call. Never stored, never logged."""
        self._require_active(participant)
        self._broadcast(
            {
                "type": "chat",
                "from": participant.id,
                "name": participant.name,
                "role": participant.role.value,
                "text": text,
                "sent_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )

    def _consume(self, participant: Participant, producer: Producer) -> None:
        if participant.subscriber is None:
            participant.subscriber = SubscriberPeer(
                participant.id,
                self.media,
                functools.partial(self._send_subscriber_offer, participant),
                functools.partial(self._peer_state, participant, "subscriber"),
                participant.send,
            )
        consumer = Consumer(f"c{next(_consumer_ids)}", producer, participant.id)
        if producer.muted:
            consumer.pause("muted")
        producer.add_consumer(consumer)
        participant.consumers[producer.id] = consumer
        participant.subscriber.add_consumer(consumer)

    async def _send_subscriber_offer(
        self, participant: Participant, sdp: str, tracks: list[OfferedTrack]
    ) -> None:
        participant.send(
            {
                "type": "subscriber_offer",
                "sdp": sdp,
                "tracks": [
                    {
                        "mid": t.mid,
                        "track_id": t.consumer.producer.id,
                        "participant_id": t.consumer.producer.participant_id,
                        "kind": t.consumer.kind.value,
                        "source": t.consumer.producer.source.value,
                    }
                    for t in tracks
                ],
            }
        )

    async def subscriber_answer(self, participant: Participant, sdp: str) -> None:
        self._require_active(participant)
        if participant.subscriber is None:
            raise SfuError(ErrorCode.BAD_MESSAGE, "no subscriber offer was sent")
        await participant.subscriber.handle_answer(sdp)

    def _peer_state(self, participant: Participant, which: str, state: PeerState) -> None:
        # FAILED, or CLOSED without our asking (a closed peer reports nothing more):
        # the client should reconnect
        lost = state in (PeerState.FAILED, PeerState.CLOSED)
        if lost and participant.state is not ParticipantState.LEFT:
            logger.warning("%r %s connection failed", participant, which)
            participant.send({"type": "connection_failed", "pc": which})

    def _require_active(self, participant: Participant) -> None:
        if participant.state is ParticipantState.LOBBY:
            raise SfuError(ErrorCode.NOT_ADMITTED, "waiting in the lobby")
        if participant.state is not ParticipantState.ACTIVE:
            raise SfuError(ErrorCode.NOT_JOINED, "not in the room")

    def _broadcast(self, event: dict[str, object], skip: Participant | None = None) -> None:
        self._announcements.flush()  # nothing about someone before their arrival
        self._send_all(event, skip)

    def _send_all(self, event: dict[str, object], skip: Participant | None = None) -> None:
        shared = SharedEvent(event)  # one JSON encoding for everyone
        for participant in list(self.active()):
            if participant is not skip:
                participant.send(shared)

    # -- lifecycle ---------------------------------------------------------------------

    def start_empty_timer(self) -> None:
        """Close the room if nobody is in it when the empty timeout ends."""
        self._start_empty_timer()

    def _start_empty_timer(self) -> None:
        self._cancel_empty_timer()
        loop = asyncio.get_running_loop()
        self._empty_timer = loop.call_later(self.settings.empty_timeout, self._empty_timeout)

    def _cancel_empty_timer(self) -> None:
        if self._empty_timer is not None:
            self._empty_timer.cancel()
            self._empty_timer = None

    def _empty_timeout(self) -> None:
        self._empty_timer = None
        if not self.participants and self.state is RoomState.OPEN:
            self._close_task = asyncio.get_running_loop().create_task(self.close("empty"))

    async def close(self, reason: str) -> None:
        if self.state is RoomState.CLOSED:
            return
        self.state = RoomState.CLOSED
        self._cancel_empty_timer()
        self._announcements.flush()
        logger.info("%r closed (%s)", self, reason)
        for participant in list(self.participants.values()):
            participant.send({"type": "room_closed", "reason": reason})
            await self.leave(participant, LeaveReason.ROOM_CLOSED)
        self._announcements.close()  # nobody is left to tell
        self._cancel_empty_timer()
        self._on_closed(self)


class RetiredCounters:
    """Totals of producers/consumers that have ended (so /metrics counters never go down)."""

    def __init__(self) -> None:
        self.packets_in = 0
        self.bytes_in = 0
        self.packets_out = 0
        self.bytes_out = 0
        self.nacks = 0
        self.retransmissions = 0
        self.keyframe_requests = 0

    def add_producers(self, producers: list[Producer]) -> None:
        for p in producers:
            self.packets_in += p.counters.packets
            self.bytes_in += p.counters.bytes
            self.keyframe_requests += p.counters.keyframe_requests
            self.nacks += p.counters.nacks

    def add_consumers(self, consumers: Iterable[Consumer]) -> None:
        for c in consumers:
            self.packets_out += c.counters.packets
            self.bytes_out += c.counters.bytes
            self.retransmissions += c.counters.retransmissions
            self.nacks += c.counters.nacks
