"""Captures being received and captures complete: what the server holds in memory.

An Upload is bound to its room and to its sender's identity (the token's
``sub``): only the same person in the same room may resume it, after a dropped
WebSocket, a reconnection or a page reload (docs/capture.md). The server is the
authority on the offset, as in tus: a chunk anywhere else is refused with the
offset it expects.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from sfu.errors import ErrorCode, SfuError
from sfu.participant import Participant
from signaling.protocol import Message

KINDS = ("photo", "clip")
MIME_TYPES = {
    "image/jpeg": ("photo", "jpg"),
    "image/png": ("photo", "png"),
    "image/webp": ("photo", "webp"),
    "video/webm": ("clip", "webm"),
    "video/mp4": ("clip", "mp4"),
}
MAX_NOTE_CHARS = 500
MAX_DIMENSION = 16384
_SHA256 = re.compile(r"[0-9a-f]{64}")


class CaptureError(SfuError):
    """A capture refused, with details the client acts on (e.g. the server's offset)."""

    def __init__(self, code: ErrorCode, message: str, **details: Any) -> None:
        super().__init__(code, message)
        self.details: dict[str, Any] = details


@dataclass(frozen=True, slots=True)
class Person:
    id: str  # participant id at the time
    identity: str
    name: str
    role: str

    @staticmethod
    def of(participant: Participant) -> Person:
        return Person(
            participant.id, participant.identity, participant.name, participant.role.value
        )

    def record(self) -> dict[str, str]:
        """As written into the encrypted description (never into logs or the plain header)."""
        return {"identity": self.identity, "name": self.name, "role": self.role}


@dataclass(frozen=True, slots=True)
class CaptureInfo:
    """What the sender announced in ``capture_begin``, checked."""

    kind: str
    mime: str
    size: int
    sha256: str
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    note: str | None = None
    request_id: str | None = None
    e2ee: int | None = None  # the key id it (and its note) is sealed under (docs/e2ee.md)

    @staticmethod
    def parse(message: Message, max_bytes: int, max_clip_seconds: int) -> CaptureInfo:
        body = message.body
        kind = message.str_field("kind", 8)
        mime = message.str_field("mime", 40)
        if kind not in KINDS:
            raise SfuError(ErrorCode.BAD_MESSAGE, "'kind' must be 'photo' or 'clip'")
        if MIME_TYPES.get(mime, ("", ""))[0] != kind:
            allowed = ", ".join(m for m, (k, _) in MIME_TYPES.items() if k == kind)
            raise SfuError(ErrorCode.BAD_MESSAGE, f"a {kind}'s 'mime' must be one of {allowed}")
        size = _int(body, "size", 1, None)
        if size is None:
            raise SfuError(ErrorCode.BAD_MESSAGE, "'size' must be a positive integer")
        if size > max_bytes:
            raise CaptureError(
                ErrorCode.CAPTURE_TOO_LARGE,
                f"a capture may hold at most {max_bytes} bytes",
                max_bytes=max_bytes,
            )
        digest = body.get("sha256")
        if not isinstance(digest, str) or _SHA256.fullmatch(digest) is None:
            raise SfuError(ErrorCode.BAD_MESSAGE, "'sha256' must be 64 lowercase hex digits")
        duration = _int(body, "duration_ms", 0, (max_clip_seconds + 1) * 1000)
        e2ee = _int(body, "e2ee", 0, 255)
        note = body.get("note")
        # an encrypted note is base64url of its UTF-8 bytes (up to 4 per char) and 29 more
        note_max = MAX_NOTE_CHARS if e2ee is None else (MAX_NOTE_CHARS * 4 + 29) * 4 // 3 + 4
        if note is not None and (not isinstance(note, str) or len(note) > note_max):
            raise SfuError(ErrorCode.BAD_MESSAGE, f"'note' must be at most {MAX_NOTE_CHARS} chars")
        return CaptureInfo(
            kind,
            mime,
            size,
            digest,
            _int(body, "width", 1, MAX_DIMENSION),
            _int(body, "height", 1, MAX_DIMENSION),
            duration,
            note or None,
            message.str_field("request_id", 64, optional=True) or None,
            e2ee,
        )

    @property
    def extension(self) -> str:
        return MIME_TYPES[self.mime][1]

    def public(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "mime": self.mime,
            "size": self.size,
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "duration_ms": self.duration_ms,
            "note": self.note,
            "request_id": self.request_id,
            **({"e2ee": self.e2ee} if self.e2ee is not None else {}),
        }


def _int(body: dict[str, Any], key: str, low: int, high: int | None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f" at most {high}" if high is not None else ""
        raise SfuError(ErrorCode.BAD_MESSAGE, f"'{key}' must be an integer >= {low}{bound}")
    return value


@dataclass(slots=True)
class Upload:
    id: str
    room_id: str
    sender: Person
    info: CaptureInfo
    data: bytearray = field(default_factory=bytearray)
    touched: float = field(default_factory=time.monotonic)
    thin_uplink: bool = False  # the sender's uplink is thin: its audio makes room

    @property
    def offset(self) -> int:
        return len(self.data)

    def owned_by(self, room_id: str, participant: Participant) -> bool:
        return self.room_id == room_id and self.sender.identity == participant.identity

    def append(self, offset: int, chunk: bytes) -> bool:
        """Add ``chunk`` at ``offset``; True once every byte is here (and checked)."""
        if offset != self.offset:
            raise CaptureError(
                ErrorCode.CAPTURE_OFFSET,
                f"this capture continues at byte {self.offset}",
                capture_id=self.id,
                offset=self.offset,
            )
        if self.offset + len(chunk) > self.info.size:
            raise CaptureError(
                ErrorCode.CAPTURE_TOO_LARGE,
                f"more bytes than the {self.info.size} announced",
                capture_id=self.id,
                offset=self.offset,
            )
        self.data += chunk
        self.touched = time.monotonic()
        if self.offset < self.info.size:
            return False
        if hashlib.sha256(self.data).hexdigest() != self.info.sha256:
            raise CaptureError(
                ErrorCode.CAPTURE_CORRUPT,
                "the bytes do not match the announced SHA-256: send the capture again",
                capture_id=self.id,
            )
        return True


@dataclass(slots=True)
class Capture:
    """A complete capture: in memory while the consult lasts (plaintext never on disk)."""

    id: str
    room_id: str
    sender: Person
    info: CaptureInfo
    data: bytes
    requested_by: Person | None
    taken_at: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )
    stored: bool = False
    stored_file: str | None = None

    def ready_event(self) -> dict[str, Any]:
        return {
            "type": "capture_ready",
            "capture_id": self.id,
            **self.info.public(),
            "from": self.sender.id,
            "name": self.sender.name,
            "role": self.sender.role,
            "taken_at": self.taken_at,
            "stored": self.stored,
        }


def new_capture_id() -> str:
    return f"c{secrets.token_hex(8)}"
