"""The signalling protocol, version 1: message shapes and validation.

Full description with examples: docs/protocol.md. Every client message is a
JSON object with a ``type`` and an optional ``id`` (echoed as ``ref`` in the
reply or error). Validation here is strict and cheap; a message that fails
it is answered with an ``error`` and changes nothing.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from aiortc import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp

from sfu.errors import ErrorCode, SfuError
from sfu.media import Source

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MAX_SDP_CHARS = 60000
MAX_TRACKS = 16
MAX_CHAT_CHARS = 2000
MAX_CANDIDATE_CHARS = 512
MAX_MLINE_INDEX = 255

# a \uD800-\uDFFF escape: JSON lets it stand alone, but such a string cannot be
# encoded (to UTF-8, a JWT, a log line): checked only when one appears
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

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
        "on_hold",
        "end_consult",
        "pause_video",
        "track_settings",
        "chat",
        "recording_start",
        "consent",
        "recording_stop",
        "capture_request",
        "capture_consent",
        "capture_begin",
        "capture_resume",
        "capture_fetch",
        "capture_viewed",
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
    except RecursionError:  # [[[[... deeper than the parser goes
        raise SfuError(ErrorCode.BAD_JSON, "message is nested too deeply") from None
    if _SURROGATE_ESCAPE.search(raw if isinstance(raw, str) else raw.decode("utf-8", "replace")):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise SfuError(
                ErrorCode.BAD_MESSAGE, "message has a string with an unpaired surrogate"
            ) from None
        except RecursionError:
            raise SfuError(ErrorCode.BAD_JSON, "message is nested too deeply") from None
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


_FOUNDATION = re.compile(r"[A-Za-z0-9+/]{1,32}")  # 1*32ice-char (RFC 8445)
_MDNS_NAME = re.compile(r"[A-Za-z0-9-]{1,63}\.local")  # what aioice resolves
_CANDIDATE_TYPES = frozenset({"host", "srflx", "relay"})  # what aioice pairs with
_TCP_TYPES = frozenset({"active", "passive", "so"})


def _number(text: str, maximum: int) -> int | None:
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    value = int(text)
    return value if value <= maximum else None


def _address(text: str) -> bool:
    """An IP address literal, or a browser's mDNS host name."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return _MDNS_NAME.fullmatch(text) is not None
    return True


def _candidate_fields_valid(bits: list[str]) -> bool:
    """``<foundation> <component> <transport> <priority> <address> <port> typ <type>`` + pairs."""
    if len(bits) < 8 or len(bits) % 2 or bits[6] != "typ":
        return False
    if (
        _FOUNDATION.fullmatch(bits[0]) is None
        or _number(bits[1], 256) in (None, 0)
        or bits[2].lower() not in ("udp", "tcp")
        or _number(bits[3], 2**32 - 1) is None
        or not _address(bits[4])
        or _number(bits[5], 65535) is None
        or bits[7] not in _CANDIDATE_TYPES
    ):
        return False
    for name, value in zip(bits[8::2], bits[9::2], strict=True):
        if name == "raddr" and not _address(value):
            return False
        if name == "rport" and _number(value, 65535) is None:
            return False
        if name == "tcptype" and value not in _TCP_TYPES:
            return False
    return True


def ice_candidate_field(message: Message) -> RTCIceCandidate | None:
    """``candidate`` of an ``ice_candidate`` message; None means end of candidates.

    An RTCIceCandidateInit, ``{"candidate": "candidate:...", "sdpMid", "sdpMLineIndex"}``,
    checked here field by field: aiortc's parser asserts, and aioice takes a
    port or an address it cannot use. One of ``sdpMid`` and ``sdpMLineIndex``
    is required (aiortc's rule), except for the end of candidates.
    """
    raw = message.body.get("candidate")
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("candidate"), str):
        raise SfuError(ErrorCode.BAD_MESSAGE, "'candidate' must be an RTCIceCandidateInit")
    text = raw["candidate"]
    if len(text) > MAX_CANDIDATE_CHARS:
        raise SfuError(
            ErrorCode.BAD_MESSAGE, f"an ICE candidate is at most {MAX_CANDIDATE_CHARS} characters"
        )
    text = text.removeprefix("candidate:")
    if not text:
        return None
    bits = text.split()
    if not _candidate_fields_valid(bits):
        raise SfuError(ErrorCode.BAD_MESSAGE, "unparseable ICE candidate")
    try:
        candidate = candidate_from_sdp(" ".join(bits))
    except (ValueError, IndexError, AssertionError):  # (not reached after the checks above)
        raise SfuError(ErrorCode.BAD_MESSAGE, "unparseable ICE candidate") from None
    mid, index = raw.get("sdpMid"), raw.get("sdpMLineIndex")
    if not isinstance(mid, str) or not 0 < len(mid) <= 32:
        mid = None
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_MLINE_INDEX:
        index = None
    if mid is None and index is None:
        raise SfuError(ErrorCode.BAD_MESSAGE, "an ICE candidate needs its sdpMid or sdpMLineIndex")
    candidate.sdpMid, candidate.sdpMLineIndex = mid, index
    return candidate


def error(code: ErrorCode, message: str, ref: str | int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "error", "code": code.value, "message": message}
    if ref is not None:
        event["ref"] = ref
    return event
