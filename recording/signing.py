"""The media server's Ed25519 signatures over recordings (format v2) and its key files.

The key is the one that signs the audit log (``recording.audit_signing_key_file``).
Every signed message starts with its own context string, so a signature made
for one purpose never verifies for another: audit entries are signed as bare
canonical JSON (they start with ``{``), recording headers, recording chunks
and audit checkpoints each with a different ``digiclinic ... \\x00`` prefix.

Chain: ``c_0 = SHA-256(CHAIN_CONTEXT || header bytes)`` and, for chunk ``i``
with sealed bytes ``s_i`` and final flag ``f``,
``c_{i+1} = SHA-256(c_i || i (uint64) || f (1 byte) || s_i)``. Chunk ``i``
carries ``Ed25519(CHUNK_CONTEXT || i (uint64) || f || c_{i+1})``, so each
signature commits to the header and to every chunk before it: dropping,
reordering or substituting a chunk breaks every signature from there on,
and only the chunk signed with ``f = 1`` ends a complete recording.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEADER_CONTEXT = b"digiclinic recording v2 header\x00"
CHUNK_CONTEXT = b"digiclinic recording v2 chunk\x00"
CHAIN_CONTEXT = b"digiclinic recording v2 chain\x00"
COMMIT_CONTEXT = b"digiclinic recording v2 key commitment\x00"
SIG_LEN = 64
_U64 = struct.Struct("!Q")


def fingerprint(public: Ed25519PublicKey) -> str:
    """Short, stable name of a signing key: ``ed25519:`` + 32 hex of SHA-256(raw key)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


def chain_start(header_bytes: bytes) -> bytes:
    return hashlib.sha256(CHAIN_CONTEXT + header_bytes).digest()


def chain_next(chain: bytes, index: int, final: bool, sealed: bytes) -> bytes:
    flag = b"\x01" if final else b"\x00"
    return hashlib.sha256(chain + _U64.pack(index) + flag + sealed).digest()


def header_message(header_bytes: bytes) -> bytes:
    return HEADER_CONTEXT + header_bytes


def chunk_message(index: int, final: bool, chain_after: bytes) -> bytes:
    return CHUNK_CONTEXT + _U64.pack(index) + (b"\x01" if final else b"\x00") + chain_after


def key_commitment(data_key: bytes, recording_id: str) -> str:
    """Binds the data key to the signed header without revealing it (HMAC-SHA256, hex)."""
    return hmac.new(data_key, COMMIT_CONTEXT + recording_id.encode(), hashlib.sha256).hexdigest()


def verifies(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_signer(path: Path) -> Ed25519PublicKey:
    """The server's public signing key (PEM), as the hospital keeps it."""
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key (the server's signing key)")
    return key
