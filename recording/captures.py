"""Clinical captures at rest: the recording format (recording.crypto_stream), one file each.

A capture is stored as ``capture-<capture id>.rec`` with its ``.keys``, written by
the same EncryptedWriter as a recording: a fresh data key wrapped for every
hospital recipient key, a server-signed header, signed and chained AES-256-GCM
chunks. Chunk 0 is the capture's description (JSON: kind, mime, size, sha256,
dimensions, note, consent, patient identity); the following chunks are its bytes
(at most ``PIECE`` each); the last one carries the final flag. The plain header
says only ``{"kind": "capture", "room", "participant", "role"}``: no note, no name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from recording.crypto_stream import (
    EncryptedWriter,
    RecipientKey,
    RecordingFormatError,
    open_recording,
)

PIECE = 1024 * 1024
PREFIX = "capture-"


def file_id(capture_id: str) -> str:
    """The capture's file (and recording) id: ``capture-<id>``."""
    return f"{PREFIX}{capture_id}"


@dataclass(frozen=True, slots=True)
class StoredCapture:
    file_id: str
    chunks: int
    digest: str  # hex of the signed hash chain: goes into the audit log


def write_capture(
    directory: Path,
    capture_id: str,
    description: dict[str, Any],
    data: bytes,
    *,
    recipients: list[RecipientKey],
    signing_key: Ed25519PrivateKey,
    header: dict[str, Any],
) -> StoredCapture:
    """Encrypt and sign one capture into ``directory`` (blocking: call it from a thread)."""
    writer = EncryptedWriter(
        directory,
        file_id(capture_id),
        recipients,
        {**header, "kind": "capture"},
        signing_key=signing_key,
    )
    try:
        writer.write_chunk(json.dumps(description, sort_keys=True).encode())
        pieces = [data[i : i + PIECE] for i in range(0, len(data), PIECE)] or [b""]
        for piece in pieces[:-1]:
            writer.write_chunk(piece)
        writer.close(pieces[-1])
    except BaseException:
        writer.close()
        raise
    return StoredCapture(writer.recording_id, writer.index, writer.digest)


@dataclass(frozen=True, slots=True)
class OpenedCapture:
    file_id: str
    header: dict[str, Any]  # the plain, signed header (metadata: room, participant, role)
    description: dict[str, Any]  # chunk 0: kind, mime, size, sha256, note, consent, ...
    data: bytes
    digest: str


def read_capture(path: Path, private: X25519PrivateKey, signer: Ed25519PublicKey) -> OpenedCapture:
    """Verify (signatures, chain, tags, completeness, name, SHA-256) and decrypt one capture.

    Raises RecordingFormatError naming the first problem: nothing of a capture that
    fails any check is returned.
    """
    result = open_recording(path, private, signer)
    if not result.signed:
        raise RecordingFormatError(f"{path.name}: unsigned: not written by a digiclinic server")
    if result.problem:
        raise RecordingFormatError(f"{path.name}: {result.problem}")
    if result.header.get("recording_id") != path.stem:
        raise RecordingFormatError(
            f"{path.name} holds {result.header.get('recording_id')} (renamed or swapped)"
        )
    if result.header.get("metadata", {}).get("kind") != "capture" or not result.chunks:
        raise RecordingFormatError(f"{path.name} is not a capture")
    try:
        description = json.loads(result.chunks[0])
    except ValueError:
        raise RecordingFormatError(f"{path.name}: its description is not JSON") from None
    data = b"".join(result.chunks[1:])
    if not isinstance(description, dict) or description.get("sha256") != (
        hashlib.sha256(data).hexdigest()
    ):
        raise RecordingFormatError(f"{path.name}: the bytes do not match their SHA-256")
    return OpenedCapture(path.stem, result.header, description, data, result.digest or "")
