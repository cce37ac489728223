"""Fixtures of the functional tests: a server that records (and stores captures)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from recording.audit import generate_signing_key
from recording.crypto_stream import generate_keypair
from tests.conftest import RunningServer


@dataclass
class Keys:
    private: X25519PrivateKey
    audit_public: Ed25519PublicKey
    directory: Path


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    private_pem, public_pem = generate_keypair()
    audit_private, audit_public = generate_signing_key()
    (tmp_path / "h.pub").write_bytes(public_pem)
    (tmp_path / "audit.key").write_bytes(audit_private)
    private = serialization.load_pem_private_key(private_pem, None)
    audit = serialization.load_pem_public_key(audit_public)
    assert isinstance(private, X25519PrivateKey) and isinstance(audit, Ed25519PublicKey)
    return Keys(private, audit, tmp_path / "recordings")


@pytest.fixture
async def rec_server(server_factory: Callable[..., object], keys: Keys) -> RunningServer:
    base = keys.directory.parent
    server: RunningServer = await server_factory(  # type: ignore[operator]
        recording={
            "enabled": True,
            "directory": str(keys.directory),
            "recipients": [{"kid": "h1", "public_key_file": str(base / "h.pub")}],
            "audit_log": str(keys.directory / "audit.log"),
            "audit_signing_key_file": str(base / "audit.key"),
        }
    )
    return server
