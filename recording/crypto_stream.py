"""Encrypted recording files: authenticated chunks under a key the server cannot unwrap,
signed by the server so that nobody else can write one (format v2).

A recording is two files:

``<id>.rec``  the media, encrypted::

    magic    b"DCREC\\x00\\x01\\n"           8 bytes
    hlen     uint32 big-endian              4 bytes
    header   JSON (utf-8), hlen bytes: version, recording_id, cipher, nonce_prefix,
             recipient key ids, key_commitment, signer, metadata (room, participant...)
    hsig     Ed25519 signature of the header (v2)        64 bytes
    chunk*   uint32 big-endian length L, then L bytes of AES-256-GCM ciphertext+tag,
             then (v2) the 64-byte Ed25519 signature of the hash chain up to it

``<id>.keys`` the data key, wrapped once per recipient public key (JSON)

Chunk ``i`` is sealed with nonce = nonce_prefix (4 bytes) || i (uint64) and
associated data = SHA-256(header) || i (uint64) || final (1 byte). Reordered,
dropped or spliced chunks fail authentication; a file whose last chunk is
not marked final was truncated (or interrupted: the writer crashed), and
every complete chunk before that still decrypts.

AES-GCM alone proves only that whoever wrote a chunk knew the data key, and
anyone with a recipient *public* key can make a recording with a data key of
their own. So (v2) the server signs the header, which commits to the data
key (``key_commitment``), and a hash chain over every chunk (recording.signing):
only the holder of the server's signing key can write a recording that
``verify --signer`` accepts. Version 1 files (before signing) still decrypt
but are reported unsigned, never authentic.

Key wrapping (per recipient, X25519 + HKDF-SHA256 + AES-256-GCM): an
ephemeral X25519 key agrees with the recipient's public key; HKDF derives a
key-encryption key bound to the recording id and key id. The server holds
only public keys, so it cannot decrypt what it recorded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from recording.private_files import open_private
from recording.signing import (
    SIG_LEN,
    chain_next,
    chain_start,
    chunk_message,
    fingerprint,
    header_message,
    key_commitment,
    verifies,
)

MAGIC = b"DCREC\x00\x01\n"
VERSION = 2  # 1: unsigned (before the server signed recordings); still read, never "authentic"
READABLE_VERSIONS = (1, 2)
WRAP_ALG = "X25519-HKDF-SHA256-A256GCM"
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
MAX_CHUNK = 16 * 1024 * 1024


class RecordingFormatError(ValueError):
    """The file is not a valid recording, or it was tampered with."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


# -- recipient keys -------------------------------------------------------------


@dataclass(frozen=True)
class RecipientKey:
    """A public key a recording is wrapped for, with its key id."""

    kid: str
    public: X25519PublicKey

    @classmethod
    def from_pem(cls, kid: str, pem: bytes) -> RecipientKey:
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, X25519PublicKey):
            raise ValueError(f"key {kid}: an X25519 public key is required")
        return cls(kid, key)


def pem_pair(private: X25519PrivateKey | Ed25519PrivateKey) -> tuple[bytes, bytes]:
    """(private PKCS#8 PEM, public SubjectPublicKeyInfo PEM) of a private key."""
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def generate_keypair() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a new X25519 recipient key."""
    return pem_pair(X25519PrivateKey.generate())


def _kek(shared: bytes, epk: bytes, recipient: bytes, recording_id: str, kid: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=epk + recipient,
        info=f"digiclinic recording key wrap v1|{recording_id}|{kid}".encode(),
    ).derive(shared)


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def wrap_key(data_key: bytes, recipient: RecipientKey, recording_id: str) -> dict[str, str]:
    ephemeral = X25519PrivateKey.generate()
    epk = _raw(ephemeral.public_key())
    kek = _kek(
        ephemeral.exchange(recipient.public),
        epk,
        _raw(recipient.public),
        recording_id,
        recipient.kid,
    )
    wrapped = AESGCM(kek).encrypt(
        b"\x00" * 12, data_key, f"{recording_id}|{recipient.kid}".encode()
    )
    return {"kid": recipient.kid, "alg": WRAP_ALG, "epk": _b64(epk), "wrapped": _b64(wrapped)}


def unwrap_key(entry: dict[str, str], private: X25519PrivateKey, recording_id: str) -> bytes:
    if entry.get("alg") != WRAP_ALG:
        raise RecordingFormatError(f"unsupported key wrapping {entry.get('alg')!r}")
    epk = _unb64(entry["epk"])
    recipient = _raw(private.public_key())
    kek = _kek(
        private.exchange(X25519PublicKey.from_public_bytes(epk)),
        epk,
        recipient,
        recording_id,
        entry["kid"],
    )
    try:
        return AESGCM(kek).decrypt(
            b"\x00" * 12, _unb64(entry["wrapped"]), f"{recording_id}|{entry['kid']}".encode()
        )
    except InvalidTag:
        raise RecordingFormatError(
            f"key {entry['kid']}: this private key does not open this recording"
        ) from None


# -- writing ----------------------------------------------------------------------


def _aad(header_hash: bytes, index: int, final: bool) -> bytes:
    return header_hash + _U64.pack(index) + (b"\x01" if final else b"\x00")


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + _U64.pack(index)


class EncryptedWriter:
    """Appends encrypted, server-signed chunks to a recording file; a fresh data key each."""

    def __init__(
        self,
        directory: Path,
        recording_id: str,
        recipients: list[RecipientKey],
        metadata: dict[str, Any],
        *,
        signing_key: Ed25519PrivateKey,
    ) -> None:
        if not recipients:
            raise ValueError("a recording needs at least one recipient public key")
        self.recording_id = recording_id
        self.path = directory / f"{recording_id}.rec"
        self.keys_path = directory / f"{recording_id}.keys"
        data_key = AESGCM.generate_key(bit_length=256)
        self._aead = AESGCM(data_key)
        self._prefix = os.urandom(4)
        self._signing_key = signing_key
        header = {
            "version": VERSION,
            "recording_id": recording_id,
            "cipher": "AES-256-GCM",
            "nonce_prefix": _b64(self._prefix),
            "recipients": [r.kid for r in recipients],
            "key_commitment": key_commitment(data_key, recording_id),
            "signer": fingerprint(signing_key.public_key()),
            "metadata": metadata,
        }
        header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        self._header_hash = hashlib.sha256(header_bytes).digest()
        self._chain = chain_start(header_bytes)
        keys = {
            "recording_id": recording_id,
            "keys": [wrap_key(data_key, r, recording_id) for r in recipients],
        }
        del data_key  # only the AESGCM object keeps it, until close()
        _write_new(self.keys_path, json.dumps(keys, indent=1).encode())
        # 0600 like every recording file (recording.private_files), never there before
        fd = open_private(self.path, os.O_WRONLY | os.O_EXCL)
        self._file: BinaryIO = os.fdopen(fd, "wb")  # closed in close()
        header_sig = signing_key.sign(header_message(header_bytes))
        self._file.write(MAGIC + _U32.pack(len(header_bytes)) + header_bytes + header_sig)
        self._flush()
        self.index = 0
        self.closed = False

    @property
    def digest(self) -> str:
        """Hex of the hash chain over the header and every chunk written so far."""
        return self._chain.hex()

    def write_chunk(self, data: bytes, final: bool = False) -> None:
        if self.closed:
            raise ValueError("recording already closed")
        sealed = self._aead.encrypt(
            _nonce(self._prefix, self.index), data, _aad(self._header_hash, self.index, final)
        )
        chain = chain_next(self._chain, self.index, final, sealed)
        signature = self._signing_key.sign(chunk_message(self.index, final, chain))
        self._file.write(_U32.pack(len(sealed)) + sealed + signature)
        self._flush()
        self._chain = chain
        self.index += 1

    def _flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self, final_data: bytes = b"") -> None:
        """Seal the final chunk (marks the recording complete)."""
        if self.closed:
            return
        self.write_chunk(final_data, final=True)
        self._file.close()
        self.closed = True
        self._aead = None  # type: ignore[assignment]


def _write_new(path: Path, data: bytes) -> None:
    fd = open_private(path, os.O_WRONLY | os.O_EXCL)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


# -- reading ----------------------------------------------------------------------


@dataclass
class ReadResult:
    header: dict[str, Any]
    chunks: list[bytes] = field(default_factory=list)
    complete: bool = False  # the final chunk was present and authentic
    problem: str | None = None  # why reading stopped early
    signed: bool = False  # v2: header and chunks read are signed by the given server key
    digest: str | None = None  # v2: hex hash chain over the header and the authentic chunks


def _read_header_bytes(file: BinaryIO) -> tuple[dict[str, Any], bytes]:
    magic = file.read(len(MAGIC))
    if magic != MAGIC:
        raise RecordingFormatError("not a digiclinic recording (bad magic)")
    raw_len = file.read(4)
    if len(raw_len) != 4:
        raise RecordingFormatError("truncated header")
    (length,) = _U32.unpack(raw_len)
    header_bytes = file.read(length)
    if len(header_bytes) != length or length > 1_000_000:
        raise RecordingFormatError("truncated header")
    try:
        header: dict[str, Any] = json.loads(header_bytes)
    except ValueError:
        raise RecordingFormatError("header is not valid JSON") from None
    if not isinstance(header, dict) or header.get("version") not in READABLE_VERSIONS:
        version = header.get("version") if isinstance(header, dict) else None
        raise RecordingFormatError(f"unsupported version {version!r}")
    return header, header_bytes


def read_header(file: BinaryIO) -> tuple[dict[str, Any], bytes]:
    """(header, SHA-256 of its bytes); nothing is verified (no key needed)."""
    header, header_bytes = _read_header_bytes(file)
    return header, hashlib.sha256(header_bytes).digest()


def _check_header_signature(
    file: BinaryIO, header: dict[str, Any], header_bytes: bytes, signer: Ed25519PublicKey
) -> None:
    expected = fingerprint(signer)
    if header.get("signer") != expected:
        raise RecordingFormatError(
            f"signed by {header.get('signer')!r}, not by the given server key {expected}: "
            "another server's key, or a forged recording"
        )
    signature = file.read(SIG_LEN)
    if len(signature) != SIG_LEN or not verifies(signer, signature, header_message(header_bytes)):
        raise RecordingFormatError(
            "the header's signature does not verify with the given server key "
            "(forged or modified header)"
        )


def _sealed_chunks(file: BinaryIO, sig_len: int) -> Iterator[tuple[bytes, bytes] | None]:
    """(sealed chunk, signature) records; None once for a partial record (truncated file)."""
    while True:
        raw_len = file.read(4)
        if not raw_len:
            return
        if len(raw_len) < 4:
            yield None
            return
        (length,) = _U32.unpack(raw_len)
        if length > MAX_CHUNK + 16:
            yield None
            return
        body = file.read(length)
        signature = file.read(sig_len)
        if len(body) < length or len(signature) < sig_len:
            yield None
            return
        yield body, signature


def _data_key(header: dict[str, Any], private: X25519PrivateKey, keys_path: Path) -> bytes:
    recording_id = header["recording_id"]
    try:
        keys = json.loads(keys_path.read_text())
    except FileNotFoundError:
        raise RecordingFormatError(
            "no wrapped keys: the recording was deleted (crypto-shredded)"
        ) from None
    if keys.get("recording_id") != recording_id:
        raise RecordingFormatError("the key file belongs to another recording")
    errors = []
    for entry in keys["keys"]:
        try:
            data_key = unwrap_key(entry, private, recording_id)
        except RecordingFormatError as exc:
            errors.append(str(exc))
            continue
        if header["version"] >= 2 and key_commitment(data_key, recording_id) != header.get(
            "key_commitment"
        ):
            raise RecordingFormatError(
                "the wrapped data key is not the one the signed header commits to "
                "(the .keys file was replaced)"
            )
        return data_key
    raise RecordingFormatError("; ".join(errors) or "no key for this private key")


def open_recording(
    path: Path,
    private: X25519PrivateKey,
    signer: Ed25519PublicKey,
    keys_path: Path | None = None,
) -> ReadResult:
    """Check the server's signatures (v2), decrypt every authentic chunk; stop at the first
    problem and say which. A v1 file is read with ``signed`` False: nothing proves who wrote it.
    A header not signed by ``signer`` raises: no chunk of such a file is trusted."""
    keys_path = keys_path or path.with_suffix(".keys")
    with open(path, "rb") as file:
        header, header_bytes = _read_header_bytes(file)
        signed = header["version"] >= 2
        if signed:
            _check_header_signature(file, header, header_bytes, signer)
        aead = AESGCM(_data_key(header, private, keys_path))
        header_hash = hashlib.sha256(header_bytes).digest()
        prefix = _unb64(header["nonce_prefix"])
        result = ReadResult(header, signed=signed)
        chain = chain_start(header_bytes)
        records = _sealed_chunks(file, SIG_LEN if signed else 0)
        for index, record in enumerate(records):
            if record is None:
                result.problem = f"truncated: chunk {index} is incomplete"
                break
            if result.complete:
                result.problem = f"data after the final chunk (chunk {index})"
                break
            sealed, signature = record
            finals: tuple[bool, ...] = (False, True)
            if signed:
                finals = tuple(
                    final
                    for final in finals
                    if verifies(
                        signer,
                        signature,
                        chunk_message(index, final, chain_next(chain, index, final, sealed)),
                    )
                )
                if not finals:
                    result.problem = (
                        f"chunk {index} fails authentication: its signature does not verify "
                        "(modified, dropped, reordered, substituted, or not written by this server)"
                    )
                    break
            for final in finals:
                try:
                    plain = aead.decrypt(
                        _nonce(prefix, index), sealed, _aad(header_hash, index, final)
                    )
                except InvalidTag:
                    continue
                result.chunks.append(plain)
                result.complete = final
                chain = chain_next(chain, index, final, sealed)
                break
            else:
                result.problem = (
                    f"chunk {index} fails authentication (modified, reordered, "
                    "or from another recording)"
                )
                break
        if not result.complete and result.problem is None:
            result.problem = (
                f"truncated: no final chunk after {len(result.chunks)} chunks "
                "(interrupted or cut short)"
            )
        if signed:
            result.digest = chain.hex()
        return result


def shred(path: Path) -> None:
    """Crypto-shred: destroy the wrapped keys first (overwrite, sync, unlink), then the media."""
    keys_path = path.with_suffix(".keys")
    if keys_path.exists():
        size = keys_path.stat().st_size
        with open(keys_path, "r+b") as out:
            out.write(os.urandom(size))
            out.flush()
            os.fsync(out.fileno())
        keys_path.unlink()
    path.unlink(missing_ok=True)
