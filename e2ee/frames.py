"""End-to-end encrypted frames (format v1): the bytes every party agrees on.

The browser (web-client/client/e2ee-worker.js), the Python client and the
hospital's export tool all read and write this one format; docs/e2ee.md is
its description for people, tests/unit/test_e2ee_frames.py pins it with
test vectors the browser must reproduce.

A consult key is 32 random bytes from the hospital portal, named by a key id
(0-255). From it, HKDF-SHA256 (salt ``b"digiclinic e2ee v1"``) derives one
AES-256-GCM key per use: ``info=b"frame"`` for audio and video frames,
``info=b"capture"`` for clinical captures. The raw key never leaves the
pages and the hospital; the server never sees it.

One encoded frame (what the browser's encoded transform hands over, before
RTP packetization) becomes::

    clear header | AES-GCM ciphertext of the rest | tag (16) | IV (12) | key id (1)

The clear header is what the SFU reads to forward without decoding:

* VP8: 10 bytes of a key frame (the 3-byte frame tag with its key-frame bit,
  the start code and the 14-bit width and height the SFU reads for layer
  sizes), 3 bytes of a delta frame (the frame tag: key-frame bit, show flag,
  first partition size).
* Opus: 1 byte, the TOC (mode, bandwidth, frame duration).

The clear header and the key id are the GCM associated data: the server can
read them but not change them. The IV is random (96 bits); a key encrypts far
fewer than 2^32 frames in a consult (10 participants at 80 frames/s for 10
hours are 2^28), and the portal rotates keys. 29 bytes are added per frame.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
KEY_BYTES = 32
IV_BYTES = 12
TAG_BYTES = 16
TRAILER_BYTES = IV_BYTES + 1
OVERHEAD = TAG_BYTES + TRAILER_BYTES
"""Bytes added to each frame."""
SALT = b"digiclinic e2ee v1"
VP8_KEY_HEADER = 10
VP8_DELTA_HEADER = 3
OPUS_HEADER = 1


class Purpose(Enum):
    """What a derived key encrypts (the HKDF info)."""

    FRAME = b"frame"
    CAPTURE = b"capture"


class FrameKind(Enum):
    VP8 = "vp8"
    OPUS = "opus"


class FrameError(ValueError):
    """A frame that cannot be decrypted: too short, an unknown key id, or failed authentication."""


def derive(raw: bytes, purpose: Purpose) -> bytes:
    """The AES-256-GCM key for ``purpose`` from a 32-byte consult key."""
    if len(raw) != KEY_BYTES:
        raise ValueError(f"a consult key is {KEY_BYTES} bytes, not {len(raw)}")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=purpose.value).derive(raw)


def clear_bytes(kind: FrameKind, frame: bytes) -> int:
    """How many leading bytes of ``frame`` stay in clear (never more than the frame)."""
    if kind is FrameKind.OPUS:
        wanted = OPUS_HEADER
    else:  # the VP8 frame tag's lowest bit is 0 on a key frame
        wanted = VP8_KEY_HEADER if frame and not frame[0] & 0x01 else VP8_DELTA_HEADER
    return min(wanted, len(frame))


@dataclass(frozen=True, slots=True)
class ConsultKey:
    """One consult key (by its id), with the frame key derived from it."""

    key_id: int
    frame_key: AESGCM

    @classmethod
    def from_raw(cls, key_id: int, raw: bytes) -> ConsultKey:
        if not 0 <= key_id <= 255:
            raise ValueError("a key id is 0-255")
        return cls(key_id, AESGCM(derive(raw, Purpose.FRAME)))


def encrypt_frame(key: ConsultKey, kind: FrameKind, frame: bytes, iv: bytes | None = None) -> bytes:
    """``frame`` in format v1 (``iv`` only for test vectors: it must never repeat)."""
    iv = os.urandom(IV_BYTES) if iv is None else iv
    if len(iv) != IV_BYTES:
        raise ValueError("the IV is 12 bytes")
    n = clear_bytes(kind, frame)
    header = frame[:n]
    sealed = key.frame_key.encrypt(iv, frame[n:], header + bytes((key.key_id,)))
    return b"".join((header, sealed, iv, bytes((key.key_id,))))


def frame_key_id(frame: bytes) -> int | None:
    """The key id an encrypted frame names (None if it is too short to be one)."""
    return frame[-1] if len(frame) >= OVERHEAD else None


def decrypt_frame(keys: dict[int, ConsultKey], kind: FrameKind, frame: bytes) -> bytes:
    """The encoded frame inside ``frame``; FrameError if it does not decrypt."""
    if len(frame) < OVERHEAD:
        raise FrameError("too short for an encrypted frame")
    key_id = frame[-1]
    key = keys.get(key_id)
    if key is None:
        raise FrameError(f"no key {key_id}")
    body = frame[:-TRAILER_BYTES]
    iv = frame[-TRAILER_BYTES:-1]
    n = min(clear_bytes(kind, body), len(body) - TAG_BYTES)
    header = body[:n]
    try:
        plain = key.frame_key.decrypt(iv, body[n:], header + bytes((key_id,)))
    except InvalidTag:
        raise FrameError("authentication failed (a wrong key, or altered)") from None
    return header + plain


def encode_key(key_id: int, raw: bytes) -> str:
    """A consult key as the portal hands it over: ``<key id>.<base64url key>``."""
    return f"{key_id}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"


def parse_key(text: str) -> tuple[int, bytes]:
    """``<key id>.<base64url key>`` (docs/e2ee.md) as (key id, 32 bytes); else ValueError."""
    key_id, sep, encoded = text.strip().partition(".")
    if not sep or not key_id.isdigit() or not 0 <= int(key_id) <= 255:
        raise ValueError("a consult key is '<key id 0-255>.<base64url of 32 bytes>'")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        raise ValueError("a consult key's bytes are not base64url") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"a consult key is {KEY_BYTES} bytes, not {len(raw)}")
    return int(key_id), raw


def _capture_aad(key_id: int) -> bytes:
    return b"capture" + bytes((key_id,))


def encrypt_capture(key_id: int, raw: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    """A clinical capture (or its note) sealed under the consult key's capture key.

    ``ciphertext | tag (16) | IV (12) | key id (1)``, associated data ``b"capture" || key id``.
    """
    iv = os.urandom(IV_BYTES) if iv is None else iv
    sealed = AESGCM(derive(raw, Purpose.CAPTURE)).encrypt(iv, data, _capture_aad(key_id))
    return sealed + iv + bytes((key_id,))


def decrypt_capture(keys: dict[int, bytes], data: bytes) -> bytes:
    """The capture inside ``data``; ``keys``: raw consult keys by key id. FrameError if it fails."""
    if len(data) < OVERHEAD:
        raise FrameError("too short for an encrypted capture")
    key_id = data[-1]
    raw = keys.get(key_id)
    if raw is None:
        raise FrameError(f"no key {key_id}")
    iv = data[-TRAILER_BYTES:-1]
    try:
        return AESGCM(derive(raw, Purpose.CAPTURE)).decrypt(
            iv, data[:-TRAILER_BYTES], _capture_aad(key_id)
        )
    except InvalidTag:
        raise FrameError("authentication failed (a wrong key, or altered)") from None
