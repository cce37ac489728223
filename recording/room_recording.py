"""One room's recording: consent, one encrypted file per consenting participant, audit.

Driven by the room through its public observer hook and by the signalling
layer's consent messages. Every change is applied synchronously: when
``withdraw()`` returns, nothing more of that media is written, so the
signalling layer can acknowledge the withdrawal only afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee.frames import VERSION as E2EE_VERSION
from recording.audit import AuditLog
from recording.consent import ConsentPolicy, ConsentState, RecordingState
from recording.crypto_stream import RecipientKey
from recording.participant_recording import ParticipantRecording, request_recorded_keyframe
from sfu.participant import Participant, ParticipantState
from sfu.producer import Producer
from sfu.room import Room

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingSettings:
    directory: Path
    recipients: list[RecipientKey]
    audit: AuditLog | None
    signing_key: Ed25519PrivateKey  # signs every recording (the audit log's key)
    default_policy: ConsentPolicy = ConsentPolicy.ALL


class RoomRecording:
    def __init__(
        self,
        room: Room,
        settings: RecordingSettings,
        requested_by: Participant,
        policy: ConsentPolicy,
        broadcast: Callable[[dict[str, Any]], None],
    ) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.id = f"{stamp}-{secrets.token_hex(4)}"
        self.room = room
        self.settings = settings
        self.consent = ConsentState(policy=policy)
        self.files: dict[str, ParticipantRecording] = {}
        self._broadcast = broadcast
        self._closing: set[asyncio.Future[None]] = set()
        self._last_state = RecordingState.OFF
        for participant in room.active():
            self.consent.joined(participant.id, participant.role)
        self.consent.request()
        self._audit("consent_requested", actor=requested_by.id)
        room.observers.append(self)
        self._apply()

    # -- consent ------------------------------------------------------------------------

    def give(self, participant: Participant) -> None:
        self.consent.give(participant.id)
        self._audit("consent_given", actor=participant.id)
        self._apply()

    def withdraw(self, participant: Participant) -> None:
        """Returns only once the participant's media is no longer written."""
        self.consent.withdraw(participant.id)
        self._apply()
        self._audit("consent_withdrawn", actor=participant.id)

    # -- room observer --------------------------------------------------------------------

    def participant_active(self, participant: Participant) -> None:
        self.consent.joined(participant.id, participant.role)
        self._apply()
        participant.send({"type": "consent_request", **self.describe()})

    def participant_left(self, participant: Participant) -> None:
        self.consent.left(participant.id)
        recording = self.files.pop(participant.id, None)
        if recording is not None:
            recording.set_writing(False)
            self._close_later(recording)
        self._apply()

    def producers_added(self, participant: Participant, producers: list[Producer]) -> None:
        recording = self.files.get(participant.id)
        if recording is None:
            self._apply()
            return
        for producer in producers:
            recording.attach(producer)
            request_recorded_keyframe(producer)

    # -- applying ------------------------------------------------------------------------

    def _apply(self) -> None:
        writers = self.consent.writers()
        for participant in list(self.room.active()):
            recording = self.files.get(participant.id)
            should_write = participant.id in writers
            if should_write and recording is None and participant.publisher is not None:
                recording = ParticipantRecording(
                    self.settings.directory,
                    self.id,
                    participant.id,
                    self.settings.recipients,
                    {
                        "room": self.room.id,
                        "role": participant.role.value,
                        **self._e2ee(participant),
                    },
                    signing_key=self.settings.signing_key,
                )
                self.files[participant.id] = recording
                for producer in participant.publisher.producers.values():
                    recording.attach(producer)
            if recording is not None:
                was_writing = recording.state.value == "writing"
                recording.set_writing(should_write)
                if should_write and not was_writing and participant.publisher is not None:
                    for producer in participant.publisher.producers.values():
                        request_recorded_keyframe(producer)  # a decodable start
        state = self.consent.state
        if state is not self._last_state:
            event = {
                RecordingState.RECORDING: (
                    "recording_resumed"
                    if self._last_state is RecordingState.PAUSED
                    else "recording_started"
                ),
                RecordingState.PAUSED: "recording_paused",
            }.get(state)
            if event:
                self._audit(event)
            self._last_state = state
        self._broadcast({"type": "recording_state", **self.describe()})

    def _e2ee(self, participant: Participant) -> dict[str, str]:
        """Header metadata of an end-to-end encrypted room (e2ee/mode.py): its mode, and
        ``"e2ee": "v1"`` (the frame format) when this participant's frames are encrypted,
        which the hospital's export then decrypts with the consult key."""
        if not self.room.e2ee.on:
            return {}
        fields = {"e2ee_room": self.room.e2ee.value}
        if participant.e2ee:  # in an "optional" room a page without the key sends in clear
            fields["e2ee"] = f"v{E2EE_VERSION}"  # recording/e2ee_export.py reads it
        return fields

    def describe(self) -> dict[str, Any]:
        return {
            "recording_id": self.id,
            "state": self.consent.state.value,
            "policy": self.consent.policy.value,
            "recorded": sorted(self.consent.writers()),
            "awaiting": sorted(self.consent.required() - self.consent.consented),
        }

    def _audit(self, event: str, **fields: str | int) -> None:
        if self.settings.audit is not None:
            self.settings.audit.append(event, room=self.room.id, recording_id=self.id, **fields)

    def _close_later(self, recording: ParticipantRecording) -> None:
        future = asyncio.get_running_loop().run_in_executor(None, recording.close)
        self._closing.add(future)
        future.add_done_callback(self._closing.discard)
        future.add_done_callback(lambda _: self._audit_sealed(recording))

    def _audit_sealed(self, recording: ParticipantRecording) -> None:
        """On the event loop, once the file is complete: its digest joins the anchored log,
        so even the holder of the signing key cannot later swap the file unnoticed."""
        if recording.sealed is not None:
            chunks, digest = recording.sealed
            self._audit("recording_sealed", file=recording.file_id, chunks=chunks, digest=digest)

    async def stop(self, by: Participant | None = None) -> None:
        self.consent.stop()
        if self in self.room.observers:
            self.room.observers.remove(self)
        for recording in self.files.values():
            recording.set_writing(False)
            self._close_later(recording)
        self.files.clear()
        await asyncio.gather(*self._closing, return_exceptions=True)
        self._audit("recording_stopped", **({"actor": by.id} if by else {}))
        if any(p.state is ParticipantState.ACTIVE for p in self.room.participants.values()):
            self._broadcast({"type": "recording_state", **self.describe()})
