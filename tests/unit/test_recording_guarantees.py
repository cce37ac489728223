"""Recording guarantees: public keys only; a slow disk never stalls the packet path."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recording import participant_recording
from recording.audit import AuditLog
from recording.audit_anchor import anchor_file
from recording.crypto_stream import EncryptedWriter, RecipientKey, generate_keypair
from recording.participant_recording import ParticipantRecording, WritingState
from recording.room_recording import RecordingSettings
from signaling.recording_service import mark_interrupted


def test_recipients_must_be_public_keys_the_server_cannot_decrypt_with() -> None:
    private_pem, public_pem = generate_keypair()
    assert RecipientKey.from_pem("h1", public_pem).kid == "h1"
    with pytest.raises(ValueError):
        RecipientKey.from_pem("h1", private_pem)  # a private key is refused as a recipient


def test_slow_disk_records_a_gap_instead_of_stalling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    original = EncryptedWriter.write_chunk

    def stuck_disk(self: EncryptedWriter, data: bytes, final: bool = False) -> None:
        release.wait(10)  # the disk takes forever
        original(self, data, final)

    monkeypatch.setattr(EncryptedWriter, "write_chunk", stuck_disk)
    _, public_pem = generate_keypair()
    recording = ParticipantRecording(
        tmp_path,
        "slow",
        "p1",
        [RecipientKey.from_pem("h", public_pem)],
        {},
        signing_key=Ed25519PrivateKey.generate(),
    )
    recording.set_writing(True)
    assert recording.state is WritingState.WRITING
    started = time.monotonic()
    for i in range(participant_recording.MAX_BACKLOG + 4):
        recording._webm.drain = lambda i=i: b"x" * 1000  # type: ignore[method-assign]
        recording.flush()  # what the packet path calls once a second
    assert time.monotonic() - started < 0.5  # never waited for the disk
    assert recording.gaps >= 3
    release.set()
    recording._webm.drain = lambda: b""  # type: ignore[method-assign]
    recording.close()
    assert recording.path.with_suffix(".done").read_text().strip() == str(recording.gaps)
    assert recording.sealed is not None and recording.sealed[0] >= 1  # (chunks, digest)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common 022 umask, under which a plain open() makes files 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _written_chunk(recording: ParticipantRecording) -> None:
    recording.set_writing(True)
    recording._webm.drain = lambda: b"x" * 1000  # type: ignore[method-assign]
    recording.flush()
    recording._webm.drain = lambda: b""  # type: ignore[method-assign]
    deadline = time.monotonic() + 10
    while recording._writer is None or recording._writer.index < 1:
        assert time.monotonic() < deadline, "the writer thread wrote nothing"
        time.sleep(0.01)


def test_every_recording_file_and_marker_is_private_to_the_server_user(
    tmp_path: Path, usual_umask: None
) -> None:
    """.rec, .keys and .done of a complete recording; after a crash, the .interrupted
    marker, the audit log and its checkpoints written at start-up: all 0600."""
    _, public_pem = generate_keypair()
    key = Ed25519PrivateKey.generate()
    recipients = [RecipientKey.from_pem("h", public_pem)]
    complete = ParticipantRecording(tmp_path, "r1", "p1", recipients, {}, signing_key=key)
    _written_chunk(complete)
    complete.close()
    crashed = ParticipantRecording(tmp_path, "r2", "p2", recipients, {}, signing_key=key)
    _written_chunk(crashed)
    crashed._queue.put(None)  # the process dies: no final chunk, no .done
    crashed._thread.join()

    audit_path = tmp_path / "audit.log"
    audit = AuditLog(audit_path, key, anchor_file("", audit_path))  # the restarted server
    settings = RecordingSettings(tmp_path, recipients, audit, key)
    assert mark_interrupted(settings) == [crashed.path]

    files = [
        complete.path,
        complete.path.with_suffix(".keys"),
        complete.path.with_suffix(".done"),
        crashed.path,
        crashed.path.with_suffix(".keys"),
        crashed.path.with_suffix(".interrupted"),
        audit_path,
        anchor_file("", audit_path),
    ]
    assert {f.name: oct(_mode(f)) for f in files} == {f.name: oct(0o600) for f in files}


def test_files_an_older_server_left_readable_are_made_private_at_start_up(
    tmp_path: Path, usual_umask: None
) -> None:
    _, public_pem = generate_keypair()
    key = Ed25519PrivateKey.generate()
    recipients = [RecipientKey.from_pem("h", public_pem)]
    old = ParticipantRecording(tmp_path, "r1", "p1", recipients, {}, signing_key=key)
    _written_chunk(old)
    old.close()
    audit_path = tmp_path / "audit.log"
    AuditLog(audit_path, key, anchor_file("", audit_path)).append("recording_started")
    left = [
        old.path,
        old.path.with_suffix(".keys"),
        old.path.with_suffix(".done"),
        audit_path,
        anchor_file("", audit_path),
    ]
    for path in left:
        path.chmod(0o644)  # as the server before this fix wrote them

    audit = AuditLog(audit_path, key, anchor_file("", audit_path))
    assert mark_interrupted(RecordingSettings(tmp_path, recipients, audit, key)) == []
    assert {f.name: oct(_mode(f)) for f in left} == {f.name: oct(0o600) for f in left}
