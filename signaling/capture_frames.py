"""Capture chunks on the WebSocket: binary frames (docs/capture.md, Transfer).

kind     1 byte   01 upload (client -> server), 02 download (server -> client)
n        1 byte   length of the capture id
id       n bytes  ASCII
offset   8 bytes  uint64 big-endian: where these bytes go in the capture
data     the rest
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sfu.errors import ErrorCode, SfuError

UPLOAD = 0x01
DOWNLOAD = 0x02
_OFFSET = struct.Struct("!Q")
MAX_ID = 64
OVERHEAD = 2 + MAX_ID + _OFFSET.size + 6  # the header at most, and a margin


@dataclass(frozen=True, slots=True)
class Chunk:
    kind: int
    capture_id: str
    offset: int
    data: bytes


def encode(kind: int, capture_id: str, offset: int, data: bytes) -> bytes:
    raw_id = capture_id.encode("ascii")
    return bytes((kind, len(raw_id))) + raw_id + _OFFSET.pack(offset) + data


def decode(frame: bytes) -> Chunk:
    """One frame, or SfuError(bad_message) saying what is wrong with it."""
    if len(frame) < 2:
        raise SfuError(ErrorCode.BAD_MESSAGE, "capture chunk: too short")
    kind, length = frame[0], frame[1]
    if kind not in (UPLOAD, DOWNLOAD):
        raise SfuError(ErrorCode.BAD_MESSAGE, "capture chunk: unknown kind (01 upload)")
    end = 2 + length + _OFFSET.size
    if length == 0 or length > MAX_ID or len(frame) < end:
        raise SfuError(ErrorCode.BAD_MESSAGE, "capture chunk: truncated header")
    try:
        capture_id = frame[2 : 2 + length].decode("ascii")
    except UnicodeDecodeError:
        raise SfuError(ErrorCode.BAD_MESSAGE, "capture chunk: the id is not ASCII") from None
    (offset,) = _OFFSET.unpack_from(frame, 2 + length)
    return Chunk(kind, capture_id, offset, bytes(frame[end:]))
