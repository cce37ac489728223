"""The signalling protocol, version 1: message shapes and validation.

Full description with examples: docs/protocol.md. Every client message is a
JSON object with a ``type`` and an optional ``id`` (echoed as ``ref`` in the
reply or error). Validation here is strict and cheap; a message that fails
it is answered with an ``error`` and changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sfu.errors import ErrorCode, SfuError
from sfu.media import Source

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MAX_SDP_CHARS = 60000
MAX_TRACKS = 16
MAX_CHAT_CHARS = 2000

CLIENT_TYPES = frozenset(
    {
        "join",
        "leave",
        "admit",
        "deny",
        "publish",
        "subscriber_answer",
        "ice_candidate",
        "subscribe",
        "unsubscribe",
        "mute",
        "audio_only",
        "pause_video",
        "track_settings",
        "chat",
        "recording_start",
        "consent",
        "recording_stop",
        "ping",
    }
)


@dataclass(frozen=True, slots=True)
class Message:
    type: str
    id: str | int | None
    body: dict[str, Any]

    def str_field(self, key: str, max_len: int = 256, optional: bool = False) -> str:
        value = self.body.get(key)
        if value is None and optional:
            return ""
        if not isinstance(value, str) or not value or len(value) > max_len:
            raise SfuError(ErrorCode.BAD_MESSAGE, f"'{key}' must be a non-empty string")
        return value

    def bool_field(self, key: str, default: bool) -> bool:
        value = self.body.get(key, default)
        if not isinstance(value, bool):
            raise SfuError(ErrorCode.BAD_MESSAGE, f"'{key}' must be true or false")
        return value


def decode(raw: str | bytes, max_bytes: int) -> Message:
    """Parse one WebSocket text frame into a Message, or raise SfuError."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise SfuError(ErrorCode.MESSAGE_TOO_LARGE, f"messages are limited to {max_bytes} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise SfuError(ErrorCode.BAD_JSON, "message is not valid JSON") from None
    if not isinstance(data, dict):
        raise SfuError(ErrorCode.BAD_MESSAGE, "message must be a JSON object")
    msg_id = data.get("id")
    if msg_id is not None and not (
        (isinstance(msg_id, str) and len(msg_id) <= 64)
        or (isinstance(msg_id, int) and not isinstance(msg_id, bool))
    ):
        raise SfuError(ErrorCode.BAD_MESSAGE, "'id' must be a short string or an integer")
    msg_type = data.get("type")
    if not isinstance(msg_type, str):
        raise SfuError(ErrorCode.BAD_MESSAGE, "message needs a string 'type'")
    if msg_type not in CLIENT_TYPES:
        raise SfuError(ErrorCode.UNKNOWN_TYPE, "unknown message type")
    return Message(msg_type, msg_id, data)


def sdp_field(message: Message) -> str:
    return message.str_field("sdp", MAX_SDP_CHARS)


def tracks_field(message: Message) -> dict[str, Source]:
    """``tracks: [{mid, source}]`` of a publish message."""
    raw = message.body.get("tracks", [])
    if not isinstance(raw, list) or len(raw) > MAX_TRACKS:
        raise SfuError(ErrorCode.BAD_MESSAGE, f"'tracks' must be a list of at most {MAX_TRACKS}")
    tracks: dict[str, Source] = {}
    for item in raw:
        if not isinstance(item, dict):
            raise SfuError(ErrorCode.BAD_MESSAGE, "each track must be an object")
        mid, source = item.get("mid"), item.get("source")
        if not isinstance(mid, str) or not mid or len(mid) > 32:
            raise SfuError(ErrorCode.BAD_MESSAGE, "track 'mid' must be a short string")
        try:
            tracks[mid] = Source(str(source))
        except ValueError:
            raise SfuError(
                ErrorCode.BAD_MESSAGE,
                "track 'source' must be one of " + ", ".join(s.value for s in Source),
            ) from None
    return tracks


MAX_RENDER_PIXELS = 16384


def render_size_field(message: Message) -> tuple[int, int] | None:
    """``width``/``height`` of a track_settings message (both or neither)."""
    width, height = message.body.get("width"), message.body.get("height")
    if width is None and height is None:
        return None
    for value in (width, height):
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value <= MAX_RENDER_PIXELS
        ):
            raise SfuError(
                ErrorCode.BAD_MESSAGE,
                f"'width' and 'height' must be integers from 0 to {MAX_RENDER_PIXELS}",
            )
    assert isinstance(width, int) and isinstance(height, int)
    return width, height


def error(code: ErrorCode, message: str, ref: str | int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "error", "code": code.value, "message": message}
    if ref is not None:
        event["ref"] = ref
    return event
