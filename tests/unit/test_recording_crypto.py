"""Encrypted recording files and the audit log: every tampering is detected and named."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from recording.audit import AuditLog, generate_signing_key, verify_file
from recording.cli import main
from recording.crypto_stream import (
    MAGIC,
    EncryptedWriter,
    RecipientKey,
    RecordingFormatError,
    generate_keypair,
    open_recording,
    pem_pair,
    shred,
)
from recording.signing import SIG_LEN

CHUNKS = [f"chunk {i} ".encode() * 50 for i in range(5)]
SIGNING = Ed25519PrivateKey.generate()  # the server's signing key
SIGNER = SIGNING.public_key()


def keypair() -> tuple[X25519PrivateKey, RecipientKey]:
    private_pem, public_pem = generate_keypair()
    private = serialization.load_pem_private_key(private_pem, None)
    assert isinstance(private, X25519PrivateKey)
    return private, RecipientKey.from_pem("hospital-2026", public_pem)


def write(tmp_path: Path, recipients: list[RecipientKey], close: bool = True) -> Path:
    writer = EncryptedWriter(
        tmp_path, "rec-1", recipients, {"room": "r1", "participant": "p1"}, signing_key=SIGNING
    )
    for chunk in CHUNKS[:-1]:
        writer.write_chunk(chunk)
    if close:
        writer.close(CHUNKS[-1])
    return writer.path


def signer_file(tmp_path: Path) -> str:
    """The server's public signing key as the hospital keeps it (PEM)."""
    path = tmp_path / "server.pub"
    path.write_bytes(pem_pair(SIGNING)[1])
    return str(path)


def chunk_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, size) of each chunk record: length, sealed chunk, signature."""
    data = path.read_bytes()
    (hlen,) = struct.unpack_from("!I", data, len(MAGIC))
    pos = len(MAGIC) + 4 + hlen + SIG_LEN
    offsets = []
    while pos < len(data):
        (length,) = struct.unpack_from("!I", data, pos)
        offsets.append((pos, 4 + length + SIG_LEN))
        pos += 4 + length + SIG_LEN
    return offsets


def test_round_trip_and_ciphertext_only_on_disk(tmp_path: Path) -> None:
    private, public = keypair()
    path = write(tmp_path, [public])
    raw = path.read_bytes()
    assert b"chunk 1" not in raw and b"chunk" not in path.with_suffix(".keys").read_bytes()
    assert path.with_suffix(".keys").stat().st_mode & 0o777 == 0o600
    result = open_recording(path, private, SIGNER)
    assert result.chunks == CHUNKS and result.complete and result.problem is None
    assert result.header["metadata"] == {"room": "r1", "participant": "p1"}


def test_several_recipients_each_open_it(tmp_path: Path) -> None:
    (priv_a, pub_a), (priv_b, pub_b) = keypair(), keypair()
    pub_b = RecipientKey("rotated-2027", pub_b.public)
    path = write(tmp_path, [pub_a, pub_b])
    assert open_recording(path, priv_a, SIGNER).chunks == CHUNKS
    assert open_recording(path, priv_b, SIGNER).chunks == CHUNKS
    assert [k["kid"] for k in json.loads(path.with_suffix(".keys").read_text())["keys"]] == [
        "hospital-2026",
        "rotated-2027",
    ]


def test_wrong_private_key_is_refused(tmp_path: Path) -> None:
    _, public = keypair()
    other, _ = keypair()
    path = write(tmp_path, [public])
    with pytest.raises(RecordingFormatError, match="does not open this recording"):
        open_recording(path, other, SIGNER)


def test_flipped_byte_is_detected(tmp_path: Path) -> None:
    private, public = keypair()
    path = write(tmp_path, [public])
    start, size = chunk_offsets(path)[2]
    data = bytearray(path.read_bytes())
    data[start + size // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = open_recording(path, private, SIGNER)
    assert result.chunks == CHUNKS[:2]
    assert result.problem is not None and "chunk 2 fails authentication" in result.problem


def test_dropped_chunk_is_detected(tmp_path: Path) -> None:
    private, public = keypair()
    path = write(tmp_path, [public])
    start, size = chunk_offsets(path)[1]
    data = path.read_bytes()
    path.write_bytes(data[:start] + data[start + size :])
    result = open_recording(path, private, SIGNER)
    assert result.chunks == CHUNKS[:1] and "chunk 1 fails authentication" in (result.problem or "")


def test_swapped_chunks_are_detected(tmp_path: Path) -> None:
    private, public = keypair()
    path = write(tmp_path, [public])
    (a, la), (b, lb) = chunk_offsets(path)[1:3]
    data = path.read_bytes()
    swapped = data[:a] + data[b : b + lb] + data[a : a + la] + data[b + lb :]
    path.write_bytes(swapped)
    result = open_recording(path, private, SIGNER)
    assert "chunk 1 fails authentication" in (result.problem or "")


def test_truncation_is_reported_and_earlier_chunks_decrypt(tmp_path: Path) -> None:
    private, public = keypair()
    path = write(tmp_path, [public])
    start, _ = chunk_offsets(path)[-1]
    path.write_bytes(path.read_bytes()[:start])  # cut off the final chunk exactly
    result = open_recording(path, private, SIGNER)
    assert result.chunks == CHUNKS[:-1] and not result.complete
    assert "truncated: no final chunk" in (result.problem or "")
    path.write_bytes(path.read_bytes()[:-7])  # cut inside a chunk
    result = open_recording(path, private, SIGNER)
    assert "truncated: chunk 3 is incomplete" in (result.problem or "")


def test_interrupted_writer_leaves_decryptable_chunks(tmp_path: Path) -> None:
    private, public = keypair()
    path = write(tmp_path, [public], close=False)  # a crash: no final chunk
    result = open_recording(path, private, SIGNER)
    assert result.chunks == CHUNKS[:-1] and not result.complete


def test_chunk_spliced_from_another_recording_is_detected(tmp_path: Path) -> None:
    private, public = keypair()
    first = write(tmp_path, [public])
    other = EncryptedWriter(tmp_path, "rec-2", [public], {"room": "r1"}, signing_key=SIGNING)
    for chunk in CHUNKS:
        other.write_chunk(chunk)
    other.close()
    s1, l1 = chunk_offsets(first)[1]
    s2, l2 = chunk_offsets(other.path)[1]
    data = first.read_bytes()
    first.write_bytes(data[:s1] + other.path.read_bytes()[s2 : s2 + l2] + data[s1 + l1 :])
    assert "chunk 1 fails authentication" in (open_recording(first, private, SIGNER).problem or "")


def test_crypto_shredding_destroys_keys_first(tmp_path: Path) -> None:
    private, public = keypair()
    path = write(tmp_path, [public])
    copy = tmp_path / "copy.rec"
    copy.write_bytes(path.read_bytes())  # an attacker's copy of the media survives...
    shred(path)
    assert not path.exists() and not path.with_suffix(".keys").exists()
    with pytest.raises(RecordingFormatError, match="crypto-shredded"):
        open_recording(copy, private, SIGNER, keys_path=path.with_suffix(".keys"))


def test_audit_log_detects_edit_removal_and_reordering(tmp_path: Path) -> None:
    private_pem, public_pem = generate_signing_key()
    key = serialization.load_pem_private_key(private_pem, None)
    public = serialization.load_pem_public_key(public_pem)
    assert isinstance(key, Ed25519PrivateKey)
    path = tmp_path / "audit.log"
    log = AuditLog(path, key)
    for event in ("consent_requested", "consent_given", "recording_started", "recording_stopped"):
        log.append(event, room="r1", actor="p1", recording_id="rec-1")
    AuditLog(path, key).append("recording_deleted", recording_id="rec-1")  # reopened: chain goes on
    assert verify_file(path, public).ok  # type: ignore[arg-type]
    lines = path.read_bytes().splitlines(keepends=True)

    edited = lines[1].replace(b"consent_given", b"consent_withdrawn")
    path.write_bytes(b"".join([lines[0], edited, *lines[2:]]))
    report = verify_file(path, public)  # type: ignore[arg-type]
    assert any("signature does not match" in p for p in report.problems)

    path.write_bytes(b"".join([lines[0], *lines[2:]]))
    assert any("removed" in p for p in verify_file(path, public).problems)  # type: ignore[arg-type]

    path.write_bytes(b"".join([lines[0], lines[2], lines[1], *lines[3:]]))
    assert any("order" in p or "chain" in p for p in verify_file(path, public).problems)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        log.append("something_else")


def test_command_line_keygen_verify_export_and_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub = tmp_path / "h.key", tmp_path / "h.pub"
    assert main(["keygen", "--private", str(key), "--public", str(pub)]) == 0
    assert key.stat().st_mode & 0o777 == 0o600
    path = write(tmp_path, [RecipientKey.from_pem("h", pub.read_bytes())])
    signer = ["--signer", signer_file(tmp_path)]
    assert main(["verify", str(path), "--key", str(key), *signer]) == 0
    out = tmp_path / "out.webm"
    assert main(["export", str(path), "--key", str(key), *signer, "--output", str(out)]) == 0
    assert out.read_bytes() == b"".join(CHUNKS)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    assert main(["verify", str(path), "--key", str(key), *signer]) == 1
    assert "chunk 4 fails authentication" in capsys.readouterr().out
    other_key, other_pub = tmp_path / "o.key", tmp_path / "o.pub"
    main(["keygen", "--private", str(other_key), "--public", str(other_pub)])
    assert main(["verify", str(path), "--key", str(other_key), *signer]) == 1
    assert "does not open this recording" in capsys.readouterr().err

    akey, apub = tmp_path / "a.key", tmp_path / "a.pub"
    assert main(["keygen", "--kind", "audit", "--private", str(akey), "--public", str(apub)]) == 0
    signing = serialization.load_pem_private_key(akey.read_bytes(), None)
    assert isinstance(signing, Ed25519PrivateKey)
    log = AuditLog(tmp_path / "audit.log", signing)
    log.append("consent_given", actor="p1", recording_id="rec-1")
    log.append("recording_started", recording_id="rec-1")
    assert main(["audit-verify", str(tmp_path / "audit.log"), "--public-key", str(apub)]) == 0
    lines = (tmp_path / "audit.log").read_bytes().splitlines(keepends=True)
    (tmp_path / "audit.log").write_bytes(lines[1])
    assert main(["audit-verify", str(tmp_path / "audit.log"), "--public-key", str(apub)]) == 1
    assert "WARNING: not anchored" in capsys.readouterr().out


def test_delete_command_shreds_and_audits(tmp_path: Path) -> None:
    key, pub = tmp_path / "h.key", tmp_path / "h.pub"
    main(["keygen", "--private", str(key), "--public", str(pub)])
    akey, apub = tmp_path / "a.key", tmp_path / "a.pub"
    main(["keygen", "--kind", "audit", "--private", str(akey), "--public", str(apub)])
    path = write(tmp_path, [RecipientKey.from_pem("h", pub.read_bytes())])
    copy = tmp_path / "backup.rec"
    copy.write_bytes(path.read_bytes())
    log = tmp_path / "audit.log"
    assert main(["delete", str(path), "--audit-log", str(log), "--audit-key", str(akey)]) == 0
    assert not path.exists() and not path.with_suffix(".keys").exists()
    assert '"recording_deleted"' in log.read_text() and '"rec-1"' in log.read_text()
    assert main(["audit-verify", str(log), "--public-key", str(apub)]) == 0
    # a backup copy of the media is useless: its keys are gone
    assert main(["verify", str(copy), "--key", str(key), "--signer", signer_file(tmp_path)]) == 1
