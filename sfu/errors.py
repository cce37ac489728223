"""Error codes shared by the SFU and the signalling protocol (docs/protocol.md)."""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    MESSAGE_TOO_LARGE = "message_too_large"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_USED = "token_used"  # a single-use token joined before (signaling/single_use.py)
    UNKNOWN_ISSUER = "unknown_issuer"
    WRONG_ROOM = "wrong_room"
    NOT_JOINED = "not_joined"
    ALREADY_JOINED = "already_joined"
    FORBIDDEN = "forbidden"
    NOT_ADMITTED = "not_admitted"
    ROOM_FULL = "room_full"
    ROOM_CLOSED = "room_closed"
    DUPLICATE_IDENTITY = "duplicate_identity"
    NOT_FOUND = "not_found"
    BAD_SDP = "bad_sdp"
    RATE_LIMITED = "rate_limited"
    # caps on what one client, one address or everyone together can make a node hold
    TOO_MANY_TRACKS = "too_many_tracks"
    TOO_MANY_ROOMS = "too_many_rooms"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    JOIN_TIMEOUT = "join_timeout"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    INTERNAL_ERROR = "internal_error"
    # clinical captures (docs/capture.md)
    CAPTURE_DISABLED = "capture_disabled"
    CAPTURE_TOO_LARGE = "capture_too_large"
    CAPTURE_OFFSET = "capture_offset"  # a chunk not at the server's offset (it says which)
    CAPTURE_CORRUPT = "capture_corrupt"  # the bytes did not match the announced SHA-256
    # end-to-end encrypted rooms (docs/e2ee.md)
    E2EE_REQUIRED = "e2ee_required"  # the room is end-to-end encrypted: join with the key
    E2EE_MISMATCH = "e2ee_mismatch"  # the token's e2ee mode is not the room's
    # multi-node (docs/cluster.md)
    REDIRECT = "redirect"
    PLACEMENT_UNAVAILABLE = "placement_unavailable"
    TICKET_INVALID = "ticket_invalid"


class SfuError(Exception):
    """A request refused for a reason the client can act on."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
