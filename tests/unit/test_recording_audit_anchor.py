"""The audit log's head is anchored outside the log: cut or emptied logs fail `audit-verify`."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from unittest.mock import ANY

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recording.audit import AuditLog, verify_file
from recording.audit_anchor import AuditAnchorError, Checkpoint, anchor_file, latest_checkpoint
from recording.cli import main
from recording.crypto_stream import generate_keypair
from recording.signing import load_signer, load_signing_key
from signaling.config import RecipientConfig, RecordingConfig
from signaling.recording_service import RecordingService

EVENTS = ("consent_requested", "consent_given", "recording_started", "recording_stopped")


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[Path, Path]:
    key, pub = tmp_path / "server.key", tmp_path / "server.pub"
    assert main(["keygen", "--kind", "audit", "--private", str(key), "--public", str(pub)]) == 0
    return key, pub


def write_log(directory: Path, key: Ed25519PrivateKey) -> tuple[Path, Path]:
    log, anchor = directory / "audit.log", directory / "anchor" / "audit.checkpoints"
    audit = AuditLog(log, key, anchor)
    for event in EVENTS:
        audit.append(event, room="r1", recording_id="rec-1")
    return log, anchor


def audit_verify(log: Path, pub: Path, anchor: Path | None) -> int:
    return main(
        ["audit-verify", str(log), "--public-key", str(pub)]
        + (["--anchor", str(anchor)] if anchor else [])
    )


def test_entries_cut_from_the_end_are_reported_against_the_anchor(
    tmp_path: Path, key_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub = key_files
    log, anchor = write_log(tmp_path, load_signing_key(key))
    assert audit_verify(log, pub, anchor) == 0
    assert "anchored: entries 1..4 match" in capsys.readouterr().out
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:2]))  # the last two entries cut: still a valid chain
    assert audit_verify(log, pub, anchor) == 1
    assert "entries 3..4 are missing" in capsys.readouterr().out


def test_an_emptied_log_is_reported(
    tmp_path: Path, key_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub = key_files
    log, anchor = write_log(tmp_path, load_signing_key(key))
    log.write_bytes(b"")
    assert audit_verify(log, pub, anchor) == 1
    assert "the log was emptied" in capsys.readouterr().out
    log.unlink()  # deleted and re-created empty by the next start: the same
    log.touch()
    assert audit_verify(log, pub, None) == 1  # and without an anchor an empty log is no pass
    assert "the log is empty" in capsys.readouterr().out


def test_a_log_rewritten_with_the_signing_key_fails_the_collected_checkpoints(
    tmp_path: Path, key_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator holding the key re-signs a shorter, altered log and a fresh anchor;
    the checkpoints the hospital collected earlier still show it."""
    key, pub = key_files
    signing = load_signing_key(key)
    log, anchor = write_log(tmp_path, signing)
    collected = tmp_path / "hospital-copy.checkpoints"
    shutil.copy(anchor, collected)
    log.unlink()
    anchor.unlink()
    forged = AuditLog(log, signing, anchor)
    for event in EVENTS[:2]:
        forged.append(event, room="r1", recording_id="rec-1")
    forged.append("consent_withdrawn", room="r1", recording_id="rec-1")
    assert audit_verify(log, pub, anchor) == 0  # consistent with the rewritten anchor...
    capsys.readouterr()
    assert audit_verify(log, pub, collected) == 1  # ...not with what the hospital holds
    out = capsys.readouterr().out
    assert "entry 3 is not the entry the checkpoint" in out and "entries 4..4 are missing" in out


def test_a_checkpoint_edited_without_the_key_is_rejected(
    tmp_path: Path, key_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub = key_files
    log, anchor = write_log(tmp_path, load_signing_key(key))
    lines = anchor.read_text().splitlines()
    cut_log = log.read_bytes().splitlines(keepends=True)[:2]
    log.write_bytes(b"".join(cut_log))
    # the disk attacker makes the anchor agree: rewrites the latest checkpoint's seq
    forged = json.loads(lines[-1])
    forged["seq"], forged["head"] = 2, json.loads(lines[2])["head"]
    anchor.write_text("\n".join([*lines[:-1], json.dumps(forged)]) + "\n")
    assert audit_verify(log, pub, anchor) == 1
    assert "checkpoint signature does not verify" in capsys.readouterr().out


def test_the_server_does_not_extend_a_log_cut_behind_its_anchor(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    key, pub = key_files
    signing = load_signing_key(key)
    log, anchor = write_log(tmp_path, signing)
    AuditLog(log, signing, anchor).append("recording_deleted", recording_id="rec-1")  # reopened
    report = verify_file(log, load_signer(pub), anchor)
    assert report.ok and report.entries == 5 and report.anchored is not None
    assert report.anchored.seq == 5
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:3]))
    with pytest.raises(AuditAnchorError, match=r"entries 4\.\.5 are missing"):
        AuditLog(log, signing, anchor)


def test_recording_service_anchors_its_log_in_the_configured_directory(
    tmp_path: Path, key_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub = key_files
    (tmp_path / "h.pub").write_bytes(generate_keypair()[1])
    config = RecordingConfig(
        enabled=True,
        directory=str(tmp_path / "recordings"),
        recipients=[RecipientConfig("h", str(tmp_path / "h.pub"))],
        audit_log=str(tmp_path / "recordings" / "audit.log"),
        audit_signing_key_file=str(key),
        audit_anchor_dir=str(tmp_path / "hospital-mount"),
    )
    service = RecordingService(config)
    assert service.settings is not None and service.settings.audit is not None
    service.settings.audit.append("recording_deleted", recording_id="rec-1")
    anchor = tmp_path / "hospital-mount" / "recordings-audit.log.checkpoints"
    assert anchor == anchor_file(config.audit_anchor_dir, Path(config.audit_log))
    assert [json.loads(line)["seq"] for line in anchor.read_text().splitlines()] == [0, 1]
    assert audit_verify(Path(config.audit_log), pub, anchor) == 0
    Path(config.audit_log).write_bytes(b"")
    with pytest.raises(AuditAnchorError, match="emptied"):
        RecordingService(config)  # a restart on the emptied log refuses to go on
    assert anchor_file("", Path("rec/audit.log")) == Path("rec/audit.log.checkpoints")


def test_the_latest_checkpoint_is_read_from_the_tail_past_a_torn_line(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    key, pub = key_files
    signing = load_signing_key(key)
    log, anchor = write_log(tmp_path, signing)
    with open(anchor, "ab") as f:
        f.write(b'{"type": "audit_checkpoint", "seq": 9')  # a crash mid-line
    latest = latest_checkpoint(anchor, load_signer(pub), tail=600)  # a few lines only
    assert latest is not None and latest.seq == 4
    audit = AuditLog(log, signing, anchor)  # reopens: the torn line is no evidence
    audit.append("recording_deleted", recording_id="rec-1")
    assert latest_checkpoint(anchor, load_signer(pub), tail=600) == Checkpoint(
        5, hashlib.sha256(log.read_bytes().splitlines()[-1]).hexdigest(), ANY
    )
    report = verify_file(log, load_signer(pub), anchor)  # the hospital's check names it
    assert report.problems == ["anchor line 6: not a checkpoint"]
