from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

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
