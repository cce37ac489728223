"""``digiclinic-recording export-captures``: verified captures as files plus a FHIR Bundle.

Every ``capture-*.rec`` of the directory (with ``--room``, of that room) is
verified and decrypted (recording.captures.read_capture: signatures, chain,
tags, completeness, SHA-256); each one that passes is written as
``<capture id>.<ext>`` (mode 0600) and all of them go into ``bundle.json``
(recording.fhir_bundle). A capture that fails is named on a ``PROBLEM`` line and
not exported, and the command then exits 1; the others are still exported.

``--room`` takes the room as its header names it, ``<hospital>/<room>``
(``portal-hospital-a/ward-3``), or the room's name alone (``ward-3``), which
matches that room at any hospital whose captures are in the directory. The
filter reads the plain header first (no key needed) and is checked again on the
verified header. A file whose header cannot even be read is reported whatever
``--room`` says: nothing shows it belongs to another room.

Nothing printed names a patient or holds a note: only file names, capture ids,
types and sizes.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from e2ee.frames import FrameError, decrypt_capture
from recording.audit import AuditLog
from recording.captures import PREFIX, OpenedCapture, read_capture
from recording.crypto_stream import RecordingFormatError, read_header
from recording.fhir_bundle import ExportedCapture, build_bundle

BUNDLE = "bundle.json"
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "video/webm": ".webm",
    "video/mp4": ".mp4",
}
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def extension(mime: Any) -> str:
    """The exported file's extension for a capture's type (``.bin`` if unknown)."""
    return EXTENSIONS.get(str(mime).split(";")[0].strip().lower(), ".bin")


def room_matches(header_room: Any, wanted: str | None) -> bool:
    """``wanted`` is ``<hospital>/<room>`` (exact) or the room's name alone."""
    if wanted is None:
        return True
    if not isinstance(header_room, str):
        return False
    return header_room == wanted or header_room.partition("/")[2] == wanted


def _header_room(path: Path) -> Any:
    with open(path, "rb") as file:
        header, _ = read_header(file)
    return header.get("metadata", {}).get("room")


def _checked(opened: OpenedCapture) -> dict[str, Any]:
    """The description, its hospital and room filled from the signed header if missing."""
    capture_id = opened.file_id.removeprefix(PREFIX)
    description = dict(opened.description)
    if str(description.get("capture_id", capture_id)) != capture_id:
        raise RecordingFormatError(
            f"{opened.file_id}.rec describes capture {description.get('capture_id')!r}"
        )
    if not _SAFE_ID.fullmatch(capture_id):
        raise RecordingFormatError(f"{opened.file_id}.rec: capture id unfit for a file name")
    description["capture_id"] = capture_id
    hospital, _, room = str(opened.header.get("metadata", {}).get("room", "")).partition("/")
    description.setdefault("hospital", hospital or None)
    description.setdefault("room", room or None)
    return description


def _opened_e2ee(description: dict[str, Any], data: bytes, keys: dict[int, bytes]) -> bytes:
    """An end-to-end encrypted capture (``e2ee``: its key id) opened, and its note; else ``data``.

    ValueError (reported, not exported) without the consult key or if it does not open.
    """
    key_id = description.get("e2ee")
    if key_id is None:
        return data
    if key_id not in keys:
        raise ValueError(
            f"end-to-end encrypted under consult key id {key_id}: give the consult's key(s) "
            "with --consult-key or --consult-keys"
        )
    try:
        opened = decrypt_capture(keys, data)
        note = description.get("note")
        if isinstance(note, str) and note:
            sealed = base64.urlsafe_b64decode(note + "=" * (-len(note) % 4))
            description["note"] = decrypt_capture(keys, sealed).decode()
    except (FrameError, ValueError) as exc:
        raise ValueError(f"does not open with consult key id {key_id}: {exc}") from None
    return opened


def export_captures(
    directory: Path,
    output: Path,
    private: X25519PrivateKey,
    signer: Ed25519PublicKey,
    *,
    write: Callable[[Path, bytes], None],
    room: str | None = None,
    audit: AuditLog | None = None,
    say: Callable[[str], None] = print,
    consult_keys: dict[int, bytes] | None = None,
) -> int:
    """Export; 0 if every capture considered was exported, 1 if any was not.

    ``write(path, data)`` creates a new file, mode 0600, never replacing one.
    ``consult_keys``: raw consult keys by id, to open end-to-end encrypted captures.
    """
    if not directory.is_dir():
        raise FileNotFoundError(f"no directory {directory}")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise FileExistsError(f"{output} exists and is not an empty directory")
    paths = sorted(directory.glob(f"{PREFIX}*.rec"))
    exported: list[ExportedCapture] = []
    problems = 0
    output.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in paths:
        try:
            if not room_matches(_header_room(path), room):
                continue
            opened = read_capture(path, private, signer)
            if not room_matches(opened.header.get("metadata", {}).get("room"), room):
                raise RecordingFormatError(f"{path.name}: its signed header names another room")
            description = _checked(opened)
            data = _opened_e2ee(description, opened.data, consult_keys or {})
            name = description["capture_id"] + extension(description.get("mime"))
            capture = ExportedCapture.of(description, name, data)
            build_bundle([capture])  # its FHIR resources are valid, before a byte is written
        except (RecordingFormatError, OSError, ValueError, KeyError, TypeError) as exc:
            problems += 1
            message = str(exc) if str(exc).startswith(path.name) else f"{path.name}: {exc}"
            say(f"PROBLEM: {message} (not exported)")
            continue
        write(output / name, data)
        exported.append(capture)
        if audit is not None:
            audit.append(
                "capture_exported",
                capture_id=description["capture_id"],
                recording_id=opened.file_id,
                file=name,
            )
        say(
            f"exported {path.name} -> {name} "
            f"({description.get('kind', '?')}, {description.get('mime', '?')}, "
            f"{len(data)} bytes)"
        )
    bundle = build_bundle(exported)
    write(output / BUNDLE, (json.dumps(bundle, indent=2) + "\n").encode())
    say(
        f"wrote {output / BUNDLE}: FHIR R4 transaction Bundle, {len(exported)} capture(s) "
        f"({len(bundle.get('entry', []))} entries)"
    )
    if not paths:
        say(f"WARNING: no {PREFIX}*.rec in {directory}")
    elif not exported and not problems:
        say(f"WARNING: no capture of room {room} in {directory}")
    if problems:
        say(f"{problems} capture(s) failed verification and were not exported")
    return 1 if problems else 0
