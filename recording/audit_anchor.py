"""Signed checkpoints of the audit log's head, kept outside the log file itself.

The hash chain of ``audit.log`` shows an edited, removed or reordered entry,
but not entries cut from the end, nor an emptied file: what is left is still
a valid chain. So after every append (and when the log is opened) the server
appends a checkpoint to a separate file, by default ``<audit log>.checkpoints``
next to the log, or ``<recording.audit_anchor_dir>/<log dir>-<log name>.checkpoints``
(a different mount the hospital collects from). One JSON object per line::

    {"type": "audit_checkpoint", "seq": 12, "head": "<hex SHA-256 of entry 12's line>",
     "time": "2026-01-01T10:00:00Z", "sig": "<base64 Ed25519 signature>"}

The signature covers ``CONTEXT || canonical JSON without sig``; the context
keeps checkpoints and audit entries (signed with the same key) apart.
``seq`` 0 with the all-zero head is the checkpoint of an empty log.

``audit-verify --anchor FILE`` checks every checkpoint in FILE against the
log: a checkpoint beyond the log's last entry means entries were cut (or the
log was emptied); one whose head differs means the log was rewritten.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from recording.private_files import open_private
from recording.signing import verifies

CONTEXT = b"digiclinic audit checkpoint v1\x00"
GENESIS = "0" * 64
TYPE = "audit_checkpoint"


class AuditAnchorError(ValueError):
    """The audit log does not contain what its checkpoints anchor (cut or rewritten)."""


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head: str
    time: str


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def anchor_file(anchor_dir: str, audit_log: Path) -> Path:
    """Where the checkpoints of ``audit_log`` go ('' = next to the log)."""
    if not anchor_dir:
        return audit_log.with_name(audit_log.name + ".checkpoints")
    return Path(anchor_dir) / f"{audit_log.parent.name}-{audit_log.name}.checkpoints"


def checkpoint_line(key: Ed25519PrivateKey, seq: int, head: str) -> bytes:
    entry: dict[str, Any] = {
        "type": TYPE,
        "seq": seq,
        "head": head,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    entry["sig"] = base64.b64encode(key.sign(CONTEXT + _canonical(entry))).decode()
    return _canonical(entry)


def append_checkpoint(path: Path, key: Ed25519PrivateKey, seq: int, head: str) -> None:
    """Append one signed checkpoint and fsync it (mode 0600, like every recording file:
    the hospital's collector reads it as the server's user, see docs/recording.md)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    line = checkpoint_line(key, seq, head)
    fd = open_private(path, os.O_RDWR | os.O_APPEND)
    with os.fdopen(fd, "r+b") as out:
        size = out.seek(0, os.SEEK_END)
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"  # a crash mid-line before
        out.write((b"\n" if torn else b"") + line + b"\n")
        out.flush()
        os.fsync(out.fileno())


def _parse(raw: bytes, public: Ed25519PublicKey, number: int) -> Checkpoint | str:
    """A checkpoint whose signature verifies, or the problem with this line."""
    try:
        entry = json.loads(raw)
        sig = base64.b64decode(entry.pop("sig"), validate=True)
        checkpoint = Checkpoint(int(entry["seq"]), str(entry["head"]), str(entry["time"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"anchor line {number}: not a checkpoint"
    if entry.get("type") != TYPE or not verifies(public, sig, CONTEXT + _canonical(entry)):
        return (
            f"anchor line {number}: checkpoint signature does not verify "
            "(forged or edited checkpoint, or another server's key)"
        )
    return checkpoint


def read_checkpoints(path: Path, public: Ed25519PublicKey) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints of FILE whose signature verifies, and a problem for every other line."""
    checkpoints: list[Checkpoint] = []
    problems: list[str] = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                parsed = _parse(line.strip(), public, number)
                if isinstance(parsed, str):
                    problems.append(parsed)
                else:
                    checkpoints.append(parsed)
    return checkpoints, problems


def latest_checkpoint(path: Path, public: Ed25519PublicKey, tail: int = 65536) -> Checkpoint | None:
    """The last valid checkpoint of FILE, reading only its end (the file grows for ever)."""
    if not path.exists():
        return None
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - tail))
        lines = f.read().split(b"\n")
    if size > tail:
        lines = lines[1:]  # the first one is likely cut
    for line in reversed(lines):
        if line.strip():
            parsed = _parse(line.strip(), public, 0)
            if isinstance(parsed, Checkpoint):
                return parsed
    return None


def check_heads(count: int, head_at: Mapping[int, str], checkpoints: list[Checkpoint]) -> list[str]:
    """Problems of a log of ``count`` entries whose entry ``seq`` hashes to ``head_at[seq]``
    (known at least for every checkpoint's ``seq`` up to ``count``)."""
    problems = []
    beyond = [cp for cp in checkpoints if cp.seq > count]
    if beyond:
        cp = max(beyond, key=lambda c: c.seq)
        if not count:
            problems.append(
                f"the log is empty but the checkpoint of {cp.time} anchors {cp.seq} "
                "entries: the log was emptied"
            )
        else:
            problems.append(
                f"entries {count + 1}..{cp.seq} are missing: the checkpoint of "
                f"{cp.time} anchors {cp.seq} entries, the log has {count} "
                "(entries were cut from the end)"
            )
    for cp in checkpoints:
        if cp.seq == 0 and cp.head != GENESIS:
            problems.append(f"the checkpoint of {cp.time} for seq 0 has a non-empty head")
        elif 0 < cp.seq <= count and head_at.get(cp.seq) != cp.head:
            problems.append(
                f"entry {cp.seq} is not the entry the checkpoint of {cp.time} anchors "
                "(the log was rewritten)"
            )
    return problems
