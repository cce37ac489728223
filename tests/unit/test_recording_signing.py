"""Recordings are signed by the server: attacks on `verify` and `export`.

An attacker with the hospital's public key only, or with write access to the
server's disk but not its signing key, must not get a recording accepted:
forged files, replaced keys, substituted, reordered or cut chunks all fail,
and recordings from before signing (format v1) are reported unsigned.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from recording.cli import _private_key, main
from recording.crypto_stream import (
    MAGIC,
    EncryptedWriter,
    RecipientKey,
    RecordingFormatError,
    open_recording,
    wrap_key,
)
from recording.signing import SIG_LEN, fingerprint, load_signer, load_signing_key

CHUNKS = [f"media second {i} ".encode() * 40 for i in range(4)]


@dataclass
class Setup:
    dir: Path
    hospital_key: Path  # X25519 private: the hospital's
    hospital_pub: Path  # X25519 public: in the server's config, i.e. known to attackers
    server_key: Path  # Ed25519 private: the server's signing key
    server_pub: Path  # Ed25519 public: kept by the hospital

    @property
    def recipient(self) -> RecipientKey:
        return RecipientKey.from_pem("h", self.hospital_pub.read_bytes())

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return load_signing_key(self.server_key)

    @property
    def private(self) -> X25519PrivateKey:
        return _private_key(self.hospital_key)

    def cli(self, command: str, path: Path, *extra: str) -> int:
        return main(
            [
                command,
                str(path),
                "--key",
                str(self.hospital_key),
                "--signer",
                str(self.server_pub),
                *extra,
            ]
        )


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    s = Setup(
        tmp_path, tmp_path / "h.key", tmp_path / "h.pub", tmp_path / "s.key", tmp_path / "s.pub"
    )
    assert main(["keygen", "--private", str(s.hospital_key), "--public", str(s.hospital_pub)]) == 0
    assert (
        main(
            [
                "keygen",
                "--kind",
                "audit",
                "--private",
                str(s.server_key),
                "--public",
                str(s.server_pub),
            ]
        )
        == 0
    )
    return s


def write(
    directory: Path, recording_id: str, recipient: RecipientKey, key: Ed25519PrivateKey
) -> EncryptedWriter:
    writer = EncryptedWriter(directory, recording_id, [recipient], {"room": "r1"}, signing_key=key)
    for chunk in CHUNKS[:-1]:
        writer.write_chunk(chunk)
    writer.close(CHUNKS[-1])
    return writer


def records(path: Path) -> tuple[int, list[tuple[int, int]]]:
    """(end of the signed header, [(offset, size) of each chunk record with its signature])."""
    data = path.read_bytes()
    (hlen,) = struct.unpack_from("!I", data, len(MAGIC))
    pos = start = len(MAGIC) + 4 + hlen + SIG_LEN
    out = []
    while pos < len(data):
        (length,) = struct.unpack_from("!I", data, pos)
        out.append((pos, 4 + length + SIG_LEN))
        pos += 4 + length + SIG_LEN
    return start, out


def forge_v1(path: Path, recipient: RecipientKey, chunks: list[bytes]) -> None:
    """What anyone with the hospital's public key can write: an unsigned (v1) recording."""
    recording_id = path.stem
    data_key, prefix = os.urandom(32), os.urandom(4)
    header = json.dumps(
        {
            "cipher": "AES-256-GCM",
            "metadata": {"room": "r1"},
            "nonce_prefix": base64.b64encode(prefix).decode(),
            "recipients": [recipient.kid],
            "recording_id": recording_id,
            "version": 1,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    header_hash = hashlib.sha256(header).digest()
    out = MAGIC + struct.pack("!I", len(header)) + header
    for i, chunk in enumerate(chunks):
        final = b"\x01" if i == len(chunks) - 1 else b"\x00"
        sealed = AESGCM(data_key).encrypt(
            prefix + struct.pack("!Q", i), chunk, header_hash + struct.pack("!Q", i) + final
        )
        out += struct.pack("!I", len(sealed)) + sealed
    path.write_bytes(out)
    keys = {"recording_id": recording_id, "keys": [wrap_key(data_key, recipient, recording_id)]}
    path.with_suffix(".keys").write_text(json.dumps(keys))


def test_forgery_with_only_the_hospital_public_key_is_never_authentic(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = setup.dir / "forged.rec"
    forge_v1(forged, setup.recipient, [b"a consult that never happened"])
    assert setup.cli("verify", forged) == 1
    out = capsys.readouterr().out
    assert "UNSIGNED" in out and "OK" not in out
    output = setup.dir / "out.webm"
    assert setup.cli("export", forged, "--output", str(output)) == 1
    assert "UNSIGNED" in capsys.readouterr().err and not output.exists()
    # the attacker's own signing key, with the current format, does not help either
    attacker = Ed25519PrivateKey.generate()
    own = write(setup.dir, "own-key", setup.recipient, attacker)
    assert setup.cli("verify", own.path) == 1
    assert "not by the given server key" in capsys.readouterr().err
    # nor does claiming the server's key id in the header
    attacker_id = fingerprint(attacker.public_key()).encode()
    server_id = fingerprint(setup.signing_key.public_key()).encode()
    own.path.write_bytes(own.path.read_bytes().replace(attacker_id, server_id))
    assert setup.cli("verify", own.path) == 1
    assert "header's signature does not verify" in capsys.readouterr().err


def test_old_unsigned_recording_is_reported_unsigned_and_exported_only_on_request(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    old = setup.dir / "old.rec"
    forge_v1(old, setup.recipient, CHUNKS)  # the v1 format, as written before signing
    result = open_recording(old, setup.private, load_signer(setup.server_pub))
    assert result.chunks == CHUNKS and result.complete and not result.signed
    assert setup.cli("verify", old) == 1
    assert "UNSIGNED" in capsys.readouterr().out
    output = setup.dir / "old.webm"
    assert setup.cli("export", old, "--output", str(output), "--allow-unsigned") == 1
    assert output.read_bytes() == b"".join(CHUNKS)
    assert "WARNING: UNSIGNED" in capsys.readouterr().out


def test_signed_recording_verifies_and_exports_with_the_server_key(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    writer = write(setup.dir, "rec-1", setup.recipient, setup.signing_key)
    assert setup.cli("verify", writer.path) == 0
    out = capsys.readouterr().out
    assert "OK: signed by the given server key" in out and writer.digest in out
    output = setup.dir / "out.webm"
    assert setup.cli("export", writer.path, "--output", str(output)) == 0
    assert output.read_bytes() == b"".join(CHUNKS)
    # a genuine recording put in the place of another one is not that one
    other = write(setup.dir, "rec-2", setup.recipient, setup.signing_key)
    writer.path.write_bytes(other.path.read_bytes())
    writer.keys_path.write_bytes(other.keys_path.read_bytes())
    capsys.readouterr()
    assert setup.cli("verify", writer.path) == 1
    assert "holds recording rec-2" in capsys.readouterr().out


def test_verify_and_export_need_the_matching_server_key(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    writer = write(setup.dir, "rec-1", setup.recipient, setup.signing_key)
    key = str(setup.hospital_key)
    with pytest.raises(SystemExit) as exit_info:  # --signer is required
        main(["verify", str(writer.path), "--key", key])
    assert exit_info.value.code == 2
    assert "--signer" in capsys.readouterr().err
    other_key, other_pub = setup.dir / "o.key", setup.dir / "o.pub"
    main(["keygen", "--kind", "audit", "--private", str(other_key), "--public", str(other_pub)])
    for command, extra in (("verify", []), ("export", ["--output", str(setup.dir / "x")])):
        args = [command, str(writer.path), "--key", key, "--signer", str(other_pub), *extra]
        assert main(args) == 1
        assert "not by the given server key" in capsys.readouterr().err
    # the hospital's X25519 public key is not a signing key: a usage error
    assert (
        main(["verify", str(writer.path), "--key", key, "--signer", str(setup.hospital_pub)]) == 2
    )
    assert "not an Ed25519 public key" in capsys.readouterr().err
    assert not (setup.dir / "x").exists()


def test_disk_attacker_cannot_replace_the_data_key_and_chunks(setup: Setup) -> None:
    """Keeping the signed header, re-encrypting everything under a key of one's own."""
    writer = write(setup.dir, "rec-1", setup.recipient, setup.signing_key)
    data_key = os.urandom(32)
    keys = {"recording_id": "rec-1", "keys": [wrap_key(data_key, setup.recipient, "rec-1")]}
    writer.keys_path.write_text(json.dumps(keys))
    with pytest.raises(RecordingFormatError, match=r"\.keys file was replaced"):
        open_recording(writer.path, setup.private, load_signer(setup.server_pub))


def test_chunk_substitution_reordering_and_truncation_fail(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    key = setup.signing_key
    signer = load_signer(setup.server_pub)
    original = write(setup.dir, "rec-1", setup.recipient, key).path
    other = write(setup.dir, "rec-2", setup.recipient, key).path  # same server, same key
    pristine = original.read_bytes()
    _, recs = records(original)
    _, other_recs = records(other)

    def check(data: bytes, expected: str) -> None:
        original.write_bytes(data)
        result = open_recording(original, setup.private, signer)
        assert not result.complete and expected in (result.problem or ""), result.problem
        assert setup.cli("verify", original) == 1
        capsys.readouterr()

    (s1, l1), (s2, l2) = recs[1], recs[2]
    o1, ol1 = other_recs[1]
    # a signed chunk from another recording of the same server, at the same index
    check(
        pristine[:s1] + other.read_bytes()[o1 : o1 + ol1] + pristine[s1 + l1 :],
        "chunk 1 fails authentication",
    )
    # two chunks swapped, each with its own signature
    check(
        pristine[:s1] + pristine[s2 : s2 + l2] + pristine[s1 : s1 + l1] + pristine[s2 + l2 :],
        "chunk 1 fails authentication",
    )
    # a chunk dropped
    check(pristine[:s1] + pristine[s1 + l1 :], "chunk 1 fails authentication")
    # cut at a record boundary: earlier chunks stay authentic, the file is not complete
    last, _ = recs[-1]
    check(pristine[:last], "truncated: no final chunk")
    result = open_recording(original, setup.private, signer)
    assert result.chunks == CHUNKS[:-1] and result.signed
    # cut inside the last signature
    check(pristine[:-10], "truncated: chunk 3 is incomplete")
    # a signature byte flipped
    flipped = bytearray(pristine)
    flipped[s1 + l1 - 1] ^= 0x01
    check(bytes(flipped), "chunk 1 fails authentication")


def test_chunks_written_before_a_crash_are_signed(setup: Setup) -> None:
    writer = EncryptedWriter(
        setup.dir, "crash", [setup.recipient], {}, signing_key=setup.signing_key
    )
    writer.write_chunk(CHUNKS[0])
    writer.write_chunk(CHUNKS[1])  # then the process dies: no final chunk
    result = open_recording(writer.path, setup.private, load_signer(setup.server_pub))
    assert result.signed and result.chunks == CHUNKS[:2] and not result.complete
    assert result.digest == writer.digest
