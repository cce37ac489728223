"""Glue between signalling and recording: who may start, consent, stop; one per room."""

from __future__ import annotations

import logging
from pathlib import Path

from recording.audit import AuditLog
from recording.audit_anchor import anchor_file
from recording.consent import ConsentPolicy
from recording.crypto_stream import RecipientKey, RecordingFormatError, read_header
from recording.private_files import make_private, write_private
from recording.room_recording import RecordingSettings, RoomRecording
from recording.signing import load_signing_key
from sfu.errors import ErrorCode, SfuError
from sfu.participant import Participant
from sfu.room import Room
from signaling.config import RecordingConfig

logger = logging.getLogger(__name__)


def mark_interrupted(settings: RecordingSettings) -> list[Path]:
    """At start-up: recordings without a .done marker were cut short (crash, kill).

    They are marked ``.interrupted`` and audited; their complete chunks stay
    decryptable by the hospital. Nothing is decrypted here (no private key).
    Every recording file found is set to mode 0600 (an older version left
    ``.rec`` and ``.done`` readable by other local users).
    """
    found = []
    for path in sorted(settings.directory.glob("*.rec")):
        done, marker = path.with_suffix(".done"), path.with_suffix(".interrupted")
        for existing in (path, path.with_suffix(".keys"), done, marker):
            make_private(existing)
        if done.exists() or marker.exists():
            continue
        try:
            with open(path, "rb") as file:
                header, _ = read_header(file)
        except (OSError, RecordingFormatError):
            header = {}
        write_private(marker, "interrupted: no final chunk at start-up\n")
        if settings.audit is not None:
            settings.audit.append(
                "recording_interrupted",
                recording_id=str(header.get("recording_id", path.stem)),
                room=str(header.get("metadata", {}).get("room", "")) or None,
            )
        logger.warning("recording %s was interrupted; marked", path.name)
        found.append(path)
    return found


class RecordingService:
    def __init__(self, config: RecordingConfig) -> None:
        self.config = config
        self.recordings: dict[str, RoomRecording] = {}
        self.settings: RecordingSettings | None = None
        self.interrupted: list[Path] = []
        if not config.enabled:
            return
        directory = Path(config.directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        recipients = [
            RecipientKey.from_pem(r.kid, Path(r.public_key_file).read_bytes())
            for r in config.recipients
        ]
        try:
            key = load_signing_key(Path(config.audit_signing_key_file))
        except ValueError:
            raise ValueError(
                "recording.audit_signing_key_file must be an Ed25519 private key"
            ) from None
        audit_path = Path(config.audit_log)
        audit_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # raises if the log lost entries its checkpoints anchor: no chain is extended then
        audit = AuditLog(audit_path, key, anchor_file(config.audit_anchor_dir, audit_path))
        self.settings = RecordingSettings(
            directory=directory,
            recipients=recipients,
            audit=audit,
            signing_key=key,
            default_policy=ConsentPolicy(config.default_policy),
        )
        self.interrupted = mark_interrupted(self.settings)

    def start(self, room: Room, by: Participant, policy: str | None) -> RoomRecording:
        if self.settings is None:
            raise SfuError(ErrorCode.FORBIDDEN, "recording is not enabled on this server")
        if not by.grants.record:
            raise SfuError(ErrorCode.FORBIDDEN, "starting a recording needs the record grant")
        current = self.recordings.get(room.id)
        if current is not None and current.consent.active and current.room is room:
            return current
        try:
            chosen = ConsentPolicy(policy or self.settings.default_policy)
        except ValueError:
            raise SfuError(ErrorCode.BAD_MESSAGE, "policy must be 'all' or 'patient'") from None

        def broadcast(event: dict[str, object]) -> None:
            for participant in room.active():
                participant.send(event)

        recording = RoomRecording(room, self.settings, by, chosen, broadcast)
        self.recordings[room.id] = recording
        broadcast(
            {
                "type": "consent_request",
                "requested_by": by.id,
                **{k: v for k, v in recording.describe().items() if k != "recorded"},
            }
        )
        return recording

    def _current(self, room: Room) -> RoomRecording:
        recording = self.recordings.get(room.id)
        if recording is None or recording.room is not room or not recording.consent.active:
            raise SfuError(ErrorCode.NOT_FOUND, "no recording is asking for consent in this room")
        return recording

    def consent(self, room: Room, participant: Participant, given: bool) -> None:
        recording = self._current(room)
        if given:
            recording.give(participant)
        else:
            recording.withdraw(participant)  # returns once nothing more is written

    async def stop(self, room: Room, by: Participant) -> None:
        if not by.grants.record:
            raise SfuError(ErrorCode.FORBIDDEN, "stopping a recording needs the record grant")
        recording = self._current(room)
        del self.recordings[room.id]
        await recording.stop(by)

    def audit_guest(self, room_id: str, participant_id: str, issuer: str) -> None:
        """Another hospital's participant joined ``room_id`` on an invitation: audited."""
        if self.settings is not None and self.settings.audit is not None:
            self.settings.audit.append(
                "guest_joined", room=room_id, actor=participant_id, issuer=issuer
            )

    async def close(self) -> None:
        for recording in list(self.recordings.values()):
            await recording.stop()
        self.recordings.clear()
