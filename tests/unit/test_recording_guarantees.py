"""Recording guarantees: public keys only; a slow disk never stalls the packet path."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recording import participant_recording
from recording.crypto_stream import EncryptedWriter, RecipientKey, generate_keypair
from recording.participant_recording import ParticipantRecording, WritingState


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
