"""Append-only audit log of consent and recording events, hash-chained and signed.

One JSON object per line::

    {"seq": 7, "time": "...", "event": "consent_given", "room": "...",
     "actor": "<participant id>", "recording_id": "...", "prev": "<hex sha256 of line 6>",
     "sig": "<base64 Ed25519 signature of the line without sig>"}

Editing an entry breaks its signature; removing or reordering entries breaks
``seq`` and the ``prev`` chain; `audit verify` needs only the public key. No
media, tokens or display names are ever written: participants appear by
their server-assigned id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from recording.crypto_stream import pem_pair

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
    }
)
GENESIS = "0" * 64


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


class AuditLog:
    def __init__(self, path: Path, signing_key: Ed25519PrivateKey) -> None:
        self.path = path
        self._key = signing_key
        self._seq, self._prev = self._tail()

    def _tail(self) -> tuple[int, str]:
        if not self.path.exists():
            return 0, GENESIS
        last = None
        with open(self.path, "rb") as f:
            for line in f:
                if line.strip():
                    last = line
        if last is None:
            return 0, GENESIS
        entry = json.loads(last)
        return int(entry["seq"]), hashlib.sha256(last.rstrip(b"\n")).hexdigest()

    def append(self, event: str, **fields: str | int | None) -> dict[str, Any]:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        entry: dict[str, Any] = {
            "seq": self._seq + 1,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "event": event,
            **{k: v for k, v in fields.items() if v is not None},
            "prev": self._prev,
        }
        entry["sig"] = base64.b64encode(self._key.sign(_canonical(entry))).decode()
        line = _canonical(entry)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "ab") as out:
            out.write(line + b"\n")
            out.flush()
            os.fsync(out.fileno())
        self._seq += 1
        self._prev = hashlib.sha256(line).hexdigest()
        return entry


@dataclass
class AuditReport:
    entries: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_lines(lines: Iterable[bytes], public_key: Ed25519PublicKey) -> AuditReport:
    problems: list[str] = []
    prev, expected_seq, count = GENESIS, 1, 0
    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\n")
        if not raw.strip():
            continue
        count += 1
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
        prev = hashlib.sha256(raw).hexdigest()
        expected_seq = int(entry.get("seq", expected_seq)) + 1
    return AuditReport(count, problems)


def verify_file(path: Path, public_key: Ed25519PublicKey) -> AuditReport:
    with open(path, "rb") as f:
        return verify_lines(f, public_key)


def generate_signing_key() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a new Ed25519 audit signing key."""
    return pem_pair(Ed25519PrivateKey.generate())
