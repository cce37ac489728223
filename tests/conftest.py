from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from recording.audit import generate_signing_key
from recording.crypto_stream import generate_keypair
from sfu.participant import Role
from sfu.room import Room
from sfu.room_manager import RoomManager
from signaling.app import ROOMS, create_app
from signaling.client import ConsultClient
from signaling.config import Config, load_config
from signaling.tokens import DEV_ISSUER, dev_secret, mint_token

logging.getLogger("aioice").setLevel(logging.WARNING)
logging.getLogger("aiortc").setLevel(logging.WARNING)


@dataclass
class RunningServer:
    app: web.Application
    server: TestServer
    config: Config

    @property
    def ws_url(self) -> str:
        return str(self.server.make_url("/ws")).replace("http", "ws", 1)

    @property
    def rooms(self) -> RoomManager:
        return self.app[ROOMS]

    def room(self, name: str, issuer: str = DEV_ISSUER) -> Room:
        """The room ``name`` of ``issuer``'s hospital (rooms are keyed "<issuer>/<name>")."""
        return self.rooms.rooms[f"{issuer}/{name}"]

    def token(self, room: str, identity: str, role: Role = Role.PATIENT, **kw: object) -> str:
        return mint_token(
            dev_secret(self.config.auth),
            room=room,
            identity=identity,
            role=role,
            **kw,  # type: ignore[arg-type]
        )

    def client(self, token: str, **kw: object) -> ConsultClient:
        return ConsultClient(self.ws_url, token, ice_addresses=["127.0.0.1"], **kw)  # type: ignore[arg-type]


def make_config(tmp_path: Path, **sections: dict[str, object]) -> Config:
    base: dict[str, dict[str, object]] = {
        "auth": {"dev_secret_file": str(tmp_path / "dev-secret")},
        # one UDP port for all media (the default mode), one the OS chooses per server
        "media": {"ice_addresses": ["127.0.0.1"], "udp_port": 0},
        "rooms": {"empty_timeout": 1.0},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return load_config(None, environ={}, overrides=base)


@pytest.fixture
def server_factory(tmp_path: Path, aiohttp_server: Callable[..., object]) -> Callable[..., object]:
    async def start(**sections: dict[str, object]) -> RunningServer:
        config = make_config(tmp_path, **sections)
        app = create_app(config)
        server = await aiohttp_server(app, host="127.0.0.1")  # type: ignore[operator]
        return RunningServer(app, server, config)

    return start


@pytest.fixture
async def server(server_factory: Callable[..., object]) -> AsyncIterator[RunningServer]:
    yield await server_factory()  # type: ignore[operator,misc]


# -- a server that records (and stores captures): the hospital's keys ---------------------


@dataclass
class Keys:
    private: X25519PrivateKey
    audit_public: Ed25519PublicKey
    directory: Path

    def files(self, where: Path) -> tuple[Path, Path]:
        """The hospital's private key and the server's public signing key, as PEM files
        (what ``digiclinic-recording`` takes: ``--key``, ``--signer``)."""
        key_file, signer_file = where / "hospital.key", where / "server.pub"
        key_file.write_bytes(
            self.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        signer_file.write_bytes(
            self.audit_public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return key_file, signer_file


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
    return await recording_server(server_factory, keys)


async def recording_server(server_factory: Callable[..., object], keys: Keys) -> RunningServer:
    """A server that records and stores captures for ``keys``' hospital."""
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
