"""Append-only audit log of consent and recording events, hash-chained and signed.

One JSON object per line::

    {"seq": 7, "time": "...", "event": "consent_given", "room": "...",
     "actor": "<participant id>", "recording_id": "...", "prev": "<hex sha256 of line 6>",
     "sig": "<base64 Ed25519 signature of the line without sig>"}

Editing an entry breaks its signature; removing or reordering entries breaks
``seq`` and the ``prev`` chain; `audit verify` needs only the public key.
Entries cut from the end, or an emptied log, leave a valid chain: with an
anchor file every append also writes a signed checkpoint of the head
(recording.audit_anchor), which `audit-verify --anchor` holds the log to.
No media, tokens or display names are ever written: participants appear by
their server-assigned id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from recording.audit_anchor import (
    GENESIS,
    AuditAnchorError,
    Checkpoint,
    append_checkpoint,
    check_heads,
    latest_checkpoint,
    read_checkpoints,
)
from recording.crypto_stream import pem_pair
from recording.private_files import make_private, open_private

logger = logging.getLogger(__name__)

EVENTS = frozenset(
    {
        "consent_requested",
        "consent_given",
        "consent_withdrawn",
        "recording_started",
        "recording_paused",
        "recording_resumed",
        "recording_stopped",
        "recording_interrupted",
        "recording_deleted",
        "recording_sealed",  # a participant file completed: file id, chunks, digest
        "guest_joined",  # another hospital's participant joined on an invitation
        # clinical captures (docs/capture.md)
        "capture_requested",
        "capture_consent_given",
        "capture_consent_withdrawn",
        "capture_uploaded",  # complete, SHA-256 verified
        "capture_stored",  # file id, chunks, digest
        "capture_viewed",
        "capture_discarded",  # no consent by the end of the consult
        "capture_exported",
        "capture_deleted",
    }
)


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


class AuditLog:
    """Appends signed, chained entries; with ``anchor``, a signed checkpoint after each.

    Opening a log whose anchor holds a checkpoint the log no longer contains
    raises AuditAnchorError: the server does not extend a cut or rewritten chain.
    """

    def __init__(
        self, path: Path, signing_key: Ed25519PrivateKey, anchor: Path | None = None
    ) -> None:
        self.path = path
        self.anchor = anchor
        self._key = signing_key
        self._lock = threading.Lock()  # appended from the event loop and executor threads
        for existing in (path, anchor):  # 0600, even if an older version left them 0644
            if existing is not None:
                make_private(existing)
        latest = latest_checkpoint(anchor, signing_key.public_key()) if anchor else None
        count, self._prev, head_at = self._scan({latest.seq} if latest else set())
        self._seq = count
        if anchor is not None:
            problems = check_heads(count, head_at, [latest] if latest else [])
            if problems:
                raise AuditAnchorError(
                    f"audit log {path} does not match its anchor {anchor}: "
                    + "; ".join(problems)
                    + ". Keep both files as evidence, move them aside to start a new chain."
                )
            if latest is None or latest.seq != count:
                self._checkpoint()

    def _scan(self, keep: Collection[int]) -> tuple[int, str, dict[int, str]]:
        """(entries, SHA-256 hex of the last entry's line, that of each entry in ``keep``)."""
        count, last, head_at = 0, GENESIS, {}
        if self.path.exists():
            with open(self.path, "rb") as f:
                for line in f:
                    if line.strip():
                        count += 1
                        last = hashlib.sha256(line.rstrip(b"\n")).hexdigest()
                        if count in keep:
                            head_at[count] = last
        return count, last, head_at

    def _checkpoint(self) -> None:
        if self.anchor is None:
            return
        try:
            append_checkpoint(self.anchor, self._key, self._seq, self._prev)
        except OSError:  # the entry itself is written; the next append anchors it
            logger.exception("audit anchor %s: checkpoint not written", self.anchor)

    def append(self, event: str, **fields: str | int | None) -> dict[str, Any]:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        with self._lock:
            entry: dict[str, Any] = {
                "seq": self._seq + 1,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "event": event,
                **{k: v for k, v in fields.items() if v is not None},
                "prev": self._prev,
            }
            entry["sig"] = base64.b64encode(self._key.sign(_canonical(entry))).decode()
            line = _canonical(entry)
            fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)
            with os.fdopen(fd, "ab") as out:
                out.write(line + b"\n")
                out.flush()
                os.fsync(out.fileno())
            self._seq += 1
            self._prev = hashlib.sha256(line).hexdigest()
            self._checkpoint()
        return entry


@dataclass
class AuditReport:
    entries: int
    problems: list[str]
    head_at: dict[int, str] = field(default_factory=dict)  # entry -> SHA-256 hex of its line
    anchored: Checkpoint | None = None  # the latest checkpoint checked, if any

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_lines(
    lines: Iterable[bytes], public_key: Ed25519PublicKey, keep: Collection[int] = ()
) -> AuditReport:
    """Chain and signatures; ``head_at`` holds the line hash of the entries in ``keep``."""
    problems: list[str] = []
    head_at: dict[int, str] = {}
    prev, expected_seq, count = GENESIS, 1, 0
    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\n")
        if not raw.strip():
            continue
        count += 1
        head = hashlib.sha256(raw).hexdigest()
        if count in keep:
            head_at[count] = head
        try:
            entry = json.loads(raw)
            sig = base64.b64decode(entry.pop("sig"))
        except (ValueError, KeyError):
            problems.append(f"line {number}: not an audit entry")
            break
        try:
            public_key.verify(sig, _canonical(entry))
        except InvalidSignature:
            problems.append(f"line {number}: signature does not match (entry edited)")
        if entry.get("seq") != expected_seq:
            problems.append(
                f"line {number}: sequence {entry.get('seq')} where {expected_seq} was expected "
                "(an entry was removed or the order changed)"
            )
        if entry.get("prev") != prev:
            problems.append(f"line {number}: does not follow the previous entry (chain broken)")
        prev = head
        expected_seq = int(entry.get("seq", expected_seq)) + 1
    return AuditReport(count, problems, head_at)


def verify_file(
    path: Path, public_key: Ed25519PublicKey, anchor: Path | None = None
) -> AuditReport:
    """Chain and signatures; with ``anchor`` (a checkpoints file the hospital collected)
    also that no anchored entry was cut or rewritten."""
    checkpoints: list[Checkpoint] = []
    problems: list[str] = []
    if anchor is not None:
        checkpoints, problems = read_checkpoints(anchor, public_key)
        if not checkpoints and not problems:
            problems.append(f"the anchor {anchor} holds no checkpoint")
    with open(path, "rb") as f:
        report = verify_lines(f, public_key, {cp.seq for cp in checkpoints})
    if anchor is not None:
        report.problems += problems + check_heads(report.entries, report.head_at, checkpoints)
        report.anchored = max(checkpoints, key=lambda c: c.seq, default=None)
    return report


def generate_signing_key() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a new Ed25519 audit signing key."""
    return pem_pair(Ed25519PrivateKey.generate())
