"""A room's end-to-end encryption mode (e2ee/mode.py, docs/e2ee.md), through the real server.

The mode comes from the issuer's configuration or the token's ``e2ee`` claim
(for an invited guest: the host hospital's); a page says at join whether it
encrypts. Refusals carry a code, and whoever is in the room is unaffected.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import jwt
import pytest

from sfu.participant import Role
from signaling.config import ConfigError, Secret
from tests.conftest import RunningServer, make_config
from tests.helpers.tokens import portal_jwt

A, B = "hospital-a", "centre-b"
SECRETS = {
    A: Secret("hospital-a-secret-0123456789abcdef"),
    B: Secret("centre-b-secret-0123456789abcdef"),
}


def token(
    issuer: str, room: str, identity: str, role: Role = Role.SPECIALIST, **claims: Any
) -> str:
    return portal_jwt(SECRETS[issuer], issuer, room, identity, role, with_jti=True, **claims)


def invitation(room: str) -> str:
    now = int(time.time())
    body = {
        "iss": A,
        "aud": "digiclinic",
        "room": room,
        "guest_iss": B,
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(body, SECRETS[A].reveal(), algorithm="HS256")


@pytest.fixture
async def hospitals(server_factory: Callable[..., object]) -> RunningServer:
    """Hospital A's rooms are end-to-end encrypted unless a token says otherwise; B's are not."""
    server: RunningServer = await server_factory(  # type: ignore[operator]
        auth={
            "issuers": [
                {"id": A, "algorithm": "HS256", "secret": SECRETS[A].reveal(), "e2ee": "required"},
                {"id": B, "algorithm": "HS256", "secret": SECRETS[B].reveal()},
            ]
        }
    )
    return server


@asynccontextmanager
async def joining(
    server: RunningServer, jwt_token: str, **fields: Any
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]]:
    """A bare WebSocket that sends ``join`` (with ``fields``, e.g. e2ee=True): the reply."""
    async with aiohttp.ClientSession() as session, session.ws_connect(server.ws_url) as ws:
        await ws.send_json({"type": "join", "id": 1, "token": jwt_token, **fields})
        while True:
            reply: dict[str, Any] = json.loads((await ws.receive(timeout=5)).data)
            if reply.get("ref") == 1:
                break
        yield ws, reply


async def test_a_required_room_refuses_a_page_that_does_not_encrypt(
    hospitals: RunningServer,
) -> None:
    async with joining(hospitals, token(A, "ward-3", "dr"), e2ee=True) as (ws, first):
        assert first["type"] == "joined" and first["e2ee"] == "required", first
        async with joining(hospitals, token(A, "ward-3", "hw", Role.HEALTH_WORKER)) as (_, refused):
            assert refused["type"] == "error" and refused["code"] == "e2ee_required", refused
            assert "key" in refused["message"]
        # the one inside is unaffected: it still answers
        await ws.send_json({"type": "ping", "id": 2})
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "pong"
        async with joining(hospitals, token(A, "ward-3", "hw2", Role.HEALTH_WORKER), e2ee=True) as (
            _,
            second,
        ):
            assert second["type"] == "joined", second
            assert [p["e2ee"] for p in second["participants"]] == [True]


async def test_a_token_disagreeing_with_the_room_is_refused(hospitals: RunningServer) -> None:
    async with joining(hospitals, token(A, "ward-4", "dr"), e2ee=True) as (_, first):
        assert first["e2ee"] == "required"
        off = token(A, "ward-4", "hw", Role.HEALTH_WORKER, e2ee="off")
        async with joining(hospitals, off, e2ee=True) as (_, refused):
            assert refused["code"] == "e2ee_mismatch", refused


async def test_the_claim_sets_the_mode_and_a_bad_one_is_refused(hospitals: RunningServer) -> None:
    async with joining(hospitals, token(B, "ward-1", "dr", e2ee="optional")) as (_, joined):
        assert joined["e2ee"] == "optional", joined  # B's default is off; the claim says optional
        async with joining(
            hospitals, token(B, "ward-1", "hw", Role.HEALTH_WORKER, e2ee="optional"), e2ee=True
        ) as (_, second):
            # an optional room lets a page without the key in: the roster says who encrypts
            assert [p["e2ee"] for p in second["participants"]] == [False]
    async with joining(hospitals, token(B, "ward-2", "dr", e2ee="sometimes")) as (_, bad):
        assert bad["code"] == "token_invalid", bad
    async with joining(hospitals, token(B, "ward-5", "dr")) as (_, plain):
        assert plain["e2ee"] == "off"
        # a page that could encrypt does not in a room that is off: its roster entry says so
        async with joining(hospitals, token(B, "ward-5", "hw", Role.HEALTH_WORKER), e2ee=True) as (
            _,
            second,
        ):
            assert second["e2ee"] == "off"


async def test_an_invited_guest_gets_the_host_hospitals_mode(hospitals: RunningServer) -> None:
    async with joining(hospitals, token(A, "ward-7", "dr"), e2ee=True) as (_, host):
        assert host["e2ee"] == "required"
        guest = token(B, "ward-7", "dr-abroad", invitation=invitation("ward-7"))
        async with joining(hospitals, guest) as (_, refused):
            assert refused["code"] == "e2ee_required", refused
        guest = token(B, "ward-7", "dr-abroad-2", invitation=invitation("ward-7"))
        async with joining(hospitals, guest, e2ee=True) as (_, joined):
            assert joined["type"] == "joined" and joined["e2ee"] == "required", joined


def test_an_unknown_issuer_mode_is_a_config_error(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="e2ee must be off, optional or required"):
        make_config(
            tmp_path,
            auth={
                "issuers": [{"id": "x", "algorithm": "HS256", "secret": "s" * 32, "e2ee": "yes"}]
            },
        ).validate()
