"""Clinical captures in the consult (docs/capture.md): requests, uploads, delivery, consent,
encrypted storage and audit. One per server process; the signalling session hands it
every ``capture_*`` message and every binary frame of an admitted participant.

Lobby participants never reach it (the session refuses their messages before any
effect) and never hear of a capture: every event goes to ``room.active()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from recording.captures import write_capture
from recording.consent import ConsentPolicy, ConsentState, RecordingState
from recording.room_recording import RecordingSettings
from sfu.errors import ErrorCode, SfuError
from sfu.participant import Participant
from sfu.room import Room, RoomState
from signaling import capture_frames
from signaling.capture_delivery import Deliveries, Outlet
from signaling.capture_uploads import (
    KINDS,
    MAX_NOTE_CHARS,
    Capture,
    CaptureInfo,
    Person,
    Upload,
    new_capture_id,
)
from signaling.config import CaptureConfig
from signaling.protocol import Message

logger = logging.getLogger(__name__)

PROGRESS_TO_OTHERS_S = 1.0
THIN_HOLD_S = 20.0  # a thin uplink's audio stays thin this long after the last chunk
SWEEP_S = 30.0
CONSENT_STATES = {
    RecordingState.AWAITING_CONSENT: "awaiting_consent",
    RecordingState.RECORDING: "granted",
    RecordingState.PAUSED: "paused",
}


@dataclass
class RoomCaptures:
    """One consult's captures and its capture consent (keyed by identity: a reload keeps it)."""

    room: Room
    consent: ConsentState
    captures: OrderedDict[str, Capture] = field(default_factory=OrderedDict)
    requests: dict[str, Person] = field(default_factory=dict)
    progress_sent: dict[str, float] = field(default_factory=dict)
    granted_at: str | None = None

    @property
    def granted(self) -> bool:
        return self.consent.state is RecordingState.RECORDING

    def held_bytes(self) -> int:
        return sum(len(c.data) for c in self.captures.values())


class CaptureService:
    def __init__(
        self, config: CaptureConfig, storage: RecordingSettings | None, max_message_bytes: int
    ) -> None:
        self.config = config
        # a chunk and its framing fit in one WebSocket message (server.max_message_bytes)
        self.chunk_max = min(config.chunk_max_bytes, max_message_bytes - capture_frames.OVERHEAD)
        self.storage = storage  # None: captures are delivered, never stored
        self.uploads: dict[str, Upload] = {}
        self.rooms: dict[str, RoomCaptures] = {}
        self.deliveries = Deliveries(self.chunk_max, float(config.min_rate_bps))
        self._tasks: set[asyncio.Task[None]] = set()  # storing, sweeping
        self._sweeper: asyncio.Task[None] | None = None

    # -- messages ---------------------------------------------------------------------

    async def handle(
        self, message: Message, room: Room, participant: Participant, outlet: Outlet
    ) -> dict[str, Any]:
        """One ``capture_*`` message; the reply (``ack`` or another) without its ``ref``."""
        if not self.config.enabled:
            raise SfuError(ErrorCode.CAPTURE_DISABLED, "captures are not enabled on this server")
        self._start_sweeper()
        kind = message.type
        if kind == "capture_request":
            return self._request(message, room, participant)
        if kind == "capture_consent":
            self._consent(room, participant, message.bool_field("given", True))
            return {"type": "ack"}
        if kind == "capture_begin":
            return self._begin(message, room, participant)
        if kind == "capture_resume":
            return self._resume(message, room, participant)
        if kind == "capture_fetch":
            return self._fetch(message, room, participant, outlet)
        if kind == "capture_viewed":
            capture = self._capture(room, message.str_field("capture_id", 64))
            self._audit("capture_viewed", room, capture_id=capture.id, actor=participant.id)
            return {"type": "ack"}
        raise SfuError(ErrorCode.UNKNOWN_TYPE, "unknown message type")

    def _request(self, message: Message, room: Room, participant: Participant) -> dict[str, Any]:
        if not participant.grants.capture:
            raise SfuError(ErrorCode.FORBIDDEN, "asking for a capture needs the capture grant")
        kind = message.str_field("kind", 8)
        if kind not in KINDS:
            raise SfuError(ErrorCode.BAD_MESSAGE, "'kind' must be 'photo' or 'clip'")
        note = message.str_field("note", MAX_NOTE_CHARS, optional=True) or None
        state = self._room(room)
        request_id = new_capture_id().replace("c", "r", 1)
        state.requests[request_id] = Person.of(participant)
        self._audit(
            "capture_requested", room, request_id=request_id, kind=kind, actor=participant.id
        )
        self._broadcast(
            room,
            {
                "type": "capture_requested",
                "request_id": request_id,
                "kind": kind,
                "max_seconds": self.config.max_clip_seconds,
                "by": participant.id,
                "name": participant.name,
                "role": participant.role.value,
                "note": note,
            },
        )
        self._ask_consent(state)
        return {"type": "ack", "request_id": request_id}

    def _begin(self, message: Message, room: Room, participant: Participant) -> dict[str, Any]:
        if not participant.grants.publish:
            raise SfuError(ErrorCode.FORBIDDEN, "sending a capture needs the publish grant")
        info = CaptureInfo.parse(message, self.config.max_bytes, self.config.max_clip_seconds)
        if participant.e2ee and info.e2ee is None:  # its frames are, so must its captures be
            raise SfuError(
                ErrorCode.BAD_MESSAGE, "an end-to-end encrypted page seals its captures ('e2ee')"
            )
        state = self._room(room)
        upload = Upload(new_capture_id(), room.id, Person.of(participant), info)
        upload.thin_uplink = message.bool_field("thin_uplink", False)
        self.uploads[upload.id] = upload
        self._make_room(participant, upload)
        self._broadcast(
            room,
            {
                "type": "capture_started",
                "capture_id": upload.id,
                "kind": info.kind,
                "size": info.size,
                "from": participant.id,
                "name": participant.name,
            },
            exclude=participant,
        )
        self._ask_consent(state)
        return self._upload_reply(upload.id, 0)

    def _make_room(self, participant: Participant, upload: Upload | None) -> None:
        """A capture crosses the sender's thin uplink: its audio takes the thin-link form
        (sfu/publisher_peer.py) while chunks keep coming, and for THIN_HOLD_S after."""
        publisher = participant.publisher
        if publisher is None:
            return
        if upload is None:  # complete: the audio may take its usual form again
            publisher.capture_thin_until = 0.0
        elif upload.thin_uplink:
            publisher.capture_thin_until = time.monotonic() + THIN_HOLD_S

    def _upload_reply(self, capture_id: str, offset: int, complete: bool = False) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "type": "capture_upload",
            "capture_id": capture_id,
            "offset": offset,
            "chunk_max": self.chunk_max,
        }
        if complete:
            reply["complete"] = True
        return reply

    def _resume(self, message: Message, room: Room, participant: Participant) -> dict[str, Any]:
        capture_id = message.str_field("capture_id", 64)
        upload = self.uploads.get(capture_id)
        if upload is not None and upload.owned_by(room.id, participant):
            upload.touched = time.monotonic()
            upload.thin_uplink = message.bool_field("thin_uplink", upload.thin_uplink)
            self._make_room(participant, upload)
            return self._upload_reply(capture_id, upload.offset)
        state = self.rooms.get(room.id)
        done = state.captures.get(capture_id) if state is not None else None
        if done is not None and done.sender.identity == participant.identity:
            return self._upload_reply(capture_id, done.info.size, complete=True)
        raise SfuError(ErrorCode.NOT_FOUND, "no such capture to resume here: send it again")

    def _fetch(
        self, message: Message, room: Room, participant: Participant, outlet: Outlet
    ) -> dict[str, Any]:
        if not participant.grants.subscribe:
            raise SfuError(ErrorCode.FORBIDDEN, "receiving captures needs the subscribe grant")
        capture = self._capture(room, message.str_field("capture_id", 64))
        offset = message.body.get("offset", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise SfuError(ErrorCode.BAD_MESSAGE, "'offset' must be a byte offset")
        offset = min(offset, len(capture.data))
        self.deliveries.start(participant, capture.id, capture.data, offset, outlet)
        return {"type": "ack", "size": len(capture.data)}

    def _capture(self, room: Room, capture_id: str) -> Capture:
        state = self.rooms.get(room.id)
        capture = state.captures.get(capture_id) if state and state.room is room else None
        if capture is None:
            raise SfuError(ErrorCode.NOT_FOUND, "no such capture in this consult")
        return capture

    # -- chunks -------------------------------------------------------------------------

    def chunk(self, frame: bytes, room: Room, participant: Participant) -> dict[str, Any]:
        """One binary upload frame; the progress event for its sender."""
        if not self.config.enabled:
            raise SfuError(ErrorCode.CAPTURE_DISABLED, "captures are not enabled on this server")
        chunk = capture_frames.decode(frame)
        if chunk.kind != capture_frames.UPLOAD:
            raise SfuError(ErrorCode.BAD_MESSAGE, "capture chunk: clients send upload chunks (01)")
        upload = self.uploads.get(chunk.capture_id)
        if upload is None or not upload.owned_by(room.id, participant):
            raise SfuError(ErrorCode.NOT_FOUND, "no such capture upload: capture_begin first")
        if len(chunk.data) > self.chunk_max:
            raise SfuError(
                ErrorCode.CAPTURE_TOO_LARGE,
                f"a chunk may carry at most {self.chunk_max} bytes",
            )
        try:
            complete = upload.append(chunk.offset, chunk.data)
        except SfuError as exc:
            if exc.code is ErrorCode.CAPTURE_CORRUPT:
                del self.uploads[upload.id]
            raise
        progress = {
            "type": "capture_progress",
            "capture_id": upload.id,
            "offset": upload.offset,
            "size": upload.info.size,
        }
        state = self._room(room)
        now = time.monotonic()
        if complete or now - state.progress_sent.get(upload.id, 0.0) >= PROGRESS_TO_OTHERS_S:
            state.progress_sent[upload.id] = now
            self._broadcast(room, progress, exclude=participant)
        if complete:
            self._make_room(participant, None)
            self._completed(state, upload)
        else:
            self._make_room(participant, upload)
        return progress

    def _completed(self, state: RoomCaptures, upload: Upload) -> None:
        del self.uploads[upload.id]
        state.progress_sent.pop(upload.id, None)
        requested = state.requests.get(upload.info.request_id or "")
        capture = Capture(
            upload.id, upload.room_id, upload.sender, upload.info, bytes(upload.data), requested
        )
        state.captures[capture.id] = capture
        while state.held_bytes() > self.config.room_memory_bytes and len(state.captures) > 1:
            state.captures.popitem(last=False)  # the oldest, already delivered
        self._audit(
            "capture_uploaded",
            state.room,
            capture_id=capture.id,
            kind=capture.info.kind,
            size=capture.info.size,
            actor=capture.sender.id,
        )
        self._broadcast(state.room, capture.ready_event())
        if state.granted:
            self._store_later(state, capture)

    # -- consent and storage -------------------------------------------------------------

    def _ask_consent(self, state: RoomCaptures) -> None:
        """The first request or capture of a consult asks (only where captures are stored)."""
        if self.storage is None or state.consent.active:
            return
        self._sync(state)
        state.consent.request()
        self._audit("consent_requested", state.room, recording_id=f"captures:{state.room.id}")
        awaiting = self._awaiting(state)
        event = {
            "type": "capture_consent_request",
            "policy": state.consent.policy.value,
            "awaiting": awaiting,
        }
        self._broadcast(state.room, event)
        self._consent_changed(state)

    def _consent(self, room: Room, participant: Participant, given: bool) -> None:
        state = self.rooms.get(room.id)
        if self.storage is None or state is None or not state.consent.active:
            raise SfuError(ErrorCode.NOT_FOUND, "no capture consent is being asked here")
        self._sync(state)
        was = state.granted
        if given:
            state.consent.give(participant.identity)
        else:
            state.consent.withdraw(participant.identity)
        self._audit(
            "capture_consent_given" if given else "capture_consent_withdrawn",
            room,
            actor=participant.id,
            role=participant.role.value,
        )
        if state.granted and not was:
            state.granted_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for capture in state.captures.values():
                if not capture.stored:
                    self._store_later(state, capture)
        self._consent_changed(state)

    def _consent_changed(self, state: RoomCaptures) -> None:
        ids = {p.identity: p.id for p in state.room.active()}
        self._broadcast(
            state.room,
            {
                "type": "capture_consent_state",
                "state": CONSENT_STATES.get(state.consent.state, "off"),
                "policy": state.consent.policy.value,
                "consented": sorted(ids[i] for i in state.consent.consented if i in ids),
                "awaiting": self._awaiting(state),
            },
        )

    def _awaiting(self, state: RoomCaptures) -> list[str]:
        ids = {p.identity: p.id for p in state.room.active()}
        required = state.consent.required() - state.consent.consented
        return sorted(ids[i] for i in required if i in ids)

    def _sync(self, state: RoomCaptures) -> None:
        """Who is present now (by identity); someone gone keeps the consent they gave."""
        present = {p.identity: p.role for p in state.room.active()}
        for identity in set(state.consent.present) - set(present):
            state.consent.absent(identity)
        for identity, role in present.items():
            if identity not in state.consent.present:
                state.consent.joined(identity, role)

    def _store_later(self, state: RoomCaptures, capture: Capture) -> None:
        capture.stored = True  # claimed: stored once, whatever comes next
        task = asyncio.get_running_loop().create_task(self._store(state, capture))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _store(self, state: RoomCaptures, capture: Capture) -> None:
        storage = self.storage
        assert storage is not None
        directory = storage.directory / "captures"
        description = self._description(state, capture)
        header = {
            "room": state.room.id,
            "participant": capture.sender.id,
            "role": capture.sender.role,
        }
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            stored = await asyncio.to_thread(
                write_capture,
                directory,
                capture.id,
                description,
                capture.data,
                recipients=storage.recipients,
                signing_key=storage.signing_key,
                header=header,
            )
        except Exception:
            capture.stored = False
            logger.exception("capture %s could not be stored", capture.id)
            return
        capture.stored_file = stored.file_id
        self._audit(
            "capture_stored",
            state.room,
            capture_id=capture.id,
            recording_id=stored.file_id,
            chunks=stored.chunks,
            digest=stored.digest,
        )
        self._broadcast(state.room, {"type": "capture_stored", "capture_id": capture.id})

    def _description(self, state: RoomCaptures, capture: Capture) -> dict[str, Any]:
        """Chunk 0 of the stored capture (encrypted): what the hospital's record needs."""
        hospital, _, room_name = state.room.id.partition("/")
        people = {p.identity: p for p in state.room.active()}
        patient = next((p for p in people.values() if p.role.value == "patient"), None)
        given_by = [
            Person.of(people[i]).record() for i in sorted(state.consent.consented) if i in people
        ]
        return {
            "capture_id": capture.id,
            **capture.info.public(),
            "taken_at": capture.taken_at,
            "room": room_name,
            "hospital": hospital,
            "sender": capture.sender.record(),
            "requested_by": capture.requested_by.record() if capture.requested_by else None,
            "patient": {"identity": patient.identity, "name": patient.name} if patient else None,
            "consent": {
                "policy": state.consent.policy.value,
                "given_at": state.granted_at,
                "given_by": given_by,
            },
        }

    # -- participants, rooms -------------------------------------------------------------

    def participant_active(self, room: Room, participant: Participant) -> None:
        """Joined or admitted: asked for consent if a capture consent is open and needs theirs."""
        state = self.rooms.get(room.id)
        if state is None or state.room is not room or not state.consent.active:
            return
        self._sync(state)
        if participant.id in self._awaiting(state):
            participant.send(
                {
                    "type": "capture_consent_request",
                    "policy": state.consent.policy.value,
                    "awaiting": self._awaiting(state),
                }
            )
        self._consent_changed(state)

    def participant_left(self, participant: Participant) -> None:
        self.deliveries.cancel_for(participant.id)

    def _room(self, room: Room) -> RoomCaptures:
        state = self.rooms.get(room.id)
        if state is None or state.room is not room:
            if state is not None:
                self._discard(state)
            policy = ConsentPolicy(self.config.consent_policy)
            state = RoomCaptures(room, ConsentState(policy=policy))
            self.rooms[room.id] = state
        return state

    def _discard(self, state: RoomCaptures) -> None:
        """The consult is over: its plaintext goes; captures never consented to are audited."""
        for capture in state.captures.values():
            if not capture.stored and self.storage is not None:
                self._audit("capture_discarded", state.room, capture_id=capture.id)
        state.captures.clear()
        if self.rooms.get(state.room.id) is state:
            del self.rooms[state.room.id]

    def sweep(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for upload in [
            u for u in self.uploads.values() if now - u.touched > self.config.upload_ttl_seconds
        ]:
            del self.uploads[upload.id]
        for state in [s for s in self.rooms.values() if s.room.state is RoomState.CLOSED]:
            self._discard(state)

    def _start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop())

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            self.sweep()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.deliveries.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for state in list(self.rooms.values()):
            self._discard(state)
        self.uploads.clear()

    # -- helpers --------------------------------------------------------------------------

    def _broadcast(
        self, room: Room, event: dict[str, Any], exclude: Participant | None = None
    ) -> None:
        for participant in room.active():
            if participant is not exclude:
                participant.send(dict(event))

    def _audit(self, event: str, room: Room, **fields: str | int | None) -> None:
        if self.storage is not None and self.storage.audit is not None:
            self.storage.audit.append(event, room=room.id, **fields)
