"""Rooms belong to the hospital that issued the token; another hospital joins only when invited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from recording.audit import generate_signing_key, verify_file
from recording.crypto_stream import generate_keypair
from sfu.participant import Role
from signaling.client import ClientError, ConsultClient
from signaling.config import Secret
from tests.conftest import RunningServer
from tests.helpers.tokens import portal_jwt

A, B = "hospital-a", "centre-b"
SECRETS = {
    A: Secret("hospital-a-secret-0123456789abcdef"),
    B: Secret("centre-b-secret-0123456789abcdef"),
}


def token(issuer: str, room: str, identity: str, role: Role, **claims: Any) -> str:
    # (configured issuers' tokens are single-use: each carries a fresh jti)
    return portal_jwt(SECRETS[issuer], issuer, room, identity, role, with_jti=True, **claims)


def invitation(room: str, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": A,
        "aud": "digiclinic",
        "room": room,
        "guest_iss": B,
        "iat": now,
        "exp": now + 3600,
    }
    return jwt.encode({**body, **claims}, SECRETS[A].reveal(), algorithm="HS256")


@pytest.fixture
async def two_hospitals(server_factory: Callable[..., object], tmp_path: Path) -> RunningServer:
    _, public_pem = generate_keypair()
    audit_key, _ = generate_signing_key()
    (tmp_path / "h.pub").write_bytes(public_pem)
    (tmp_path / "audit.key").write_bytes(audit_key)
    server: RunningServer = await server_factory(  # type: ignore[operator]
        auth={
            "issuers": [
                {"id": issuer, "algorithm": "HS256", "secret": secret.reveal()}
                for issuer, secret in SECRETS.items()
            ]
        },
        turn={"secrets": ["turn-secret-0123456789abcdef"], "urls": ["turn:127.0.0.1:3478"]},
        recording={
            "enabled": True,
            "directory": str(tmp_path / "recordings"),
            "recipients": [{"kid": "h1", "public_key_file": str(tmp_path / "h.pub")}],
            "audit_log": str(tmp_path / "audit.log"),
            "audit_signing_key_file": str(tmp_path / "audit.key"),
        },
    )
    return server


async def joined(server: RunningServer, jwt_token: str) -> tuple[ConsultClient, dict[str, Any]]:
    client = server.client(jwt_token)
    await client.connect()
    return client, await client.join()


async def test_another_hospitals_token_for_the_same_room_name_gets_its_own_room(
    two_hospitals: RunningServer,
) -> None:
    server = two_hospitals
    nurse, _ = await joined(server, token(A, "ward-3", "nurse-1", Role.HEALTH_WORKER))
    intruder, reply = await joined(server, token(B, "ward-3", "dr-x", Role.SPECIALIST))
    try:
        # B's "ward-3" is B's room: empty, nothing of A's in it, no credentials for A's
        assert reply["state"] == "active" and reply["participants"] == []
        assert server.room("ward-3", A).participants.keys() == {nurse.participant_id}
        assert server.room("ward-3", B).participants.keys() == {intruder.participant_id}
        await asyncio.sleep(0.3)
        assert not any(e["type"] == "participant_joined" for e in nurse.events)
        assert not any(e["type"] == "participant_joined" for e in intruder.events)
        # the HTTP API follows: B's admit token sees only B's room of that name
        url = server.server.make_url("/api/rooms/ward-3")
        async with aiohttp.ClientSession() as http:
            auth = {"Authorization": f"Bearer {token(B, 'ward-3', 'dr-x', Role.SPECIALIST)}"}
            async with http.get(url, headers=auth) as resp:
                assert resp.status == 200
                assert (await resp.json())["participants"] == 1  # B's own, not A's two
            turn = server.server.make_url("/api/turn-credentials")
            nurse_b = {
                "Authorization": f"Bearer {token(B, 'ward-3', 'nurse-1', Role.HEALTH_WORKER)}"
            }
            async with http.get(turn, headers=nurse_b) as resp:
                # A's nurse-1 is in A's room: B's token with the same sub is nobody there
                assert resp.status == 404
    finally:
        await asyncio.gather(nurse.leave(), intruder.leave())


async def test_an_invited_specialist_joins_the_hosts_room_under_its_own_issuer_and_is_audited(
    two_hospitals: RunningServer, tmp_path: Path
) -> None:
    server = two_hospitals
    nurse, _ = await joined(server, token(A, "ward-3", "nurse-1", Role.HEALTH_WORKER))
    invited = token(B, "ward-3", "dr-okafor", Role.SPECIALIST, invitation=invitation("ward-3"))
    guest, reply = await joined(server, invited)
    try:
        assert reply["state"] == "active" and reply["room"] == "ward-3"
        assert reply["participant"]["identity"] == f"{B}/dr-okafor"
        assert [p["id"] for p in reply["participants"]] == [nurse.participant_id]
        assert reply["ice_servers"]  # admitted, so TURN credentials
        await nurse.wait_event("participant_joined")
        assert server.room("ward-3", A).participants.keys() == {
            nurse.participant_id,
            guest.participant_id,
        }
        log = tmp_path / "audit.log"
        entries = [e for e in log.read_text().splitlines() if '"guest_joined"' in e]
        assert len(entries) == 1 and guest.participant_id in entries[0] and B in entries[0]
        assert verify_file(log, _audit_public(tmp_path)).ok
    finally:
        await asyncio.gather(nurse.leave(), guest.leave())


@pytest.mark.parametrize(
    ("why", "claims", "code"),
    [
        ("for another room", {"invitation": invitation("ward-9")}, "wrong_room"),
        (
            "for another participant",
            {"invitation": invitation("ward-3", sub="dr-y")},
            "token_invalid",
        ),
        (
            "for another hospital's guests",
            {"invitation": invitation("ward-3", guest_iss="x")},
            "token_invalid",
        ),
        ("not for a patient", {"invitation": invitation("ward-3")}, "forbidden"),
        ("signed by the guest itself", {"invitation": "SELF"}, "token_invalid"),
        (
            "expired",
            {"invitation": invitation("ward-3", exp=int(time.time()) - 100)},
            "token_expired",
        ),
        ("not a JWT", {"invitation": "garbage"}, "token_invalid"),
    ],
)
async def test_a_bad_invitation_is_refused_with_a_code_and_nobody_is_disturbed(
    two_hospitals: RunningServer, why: str, claims: dict[str, Any], code: str
) -> None:
    server = two_hospitals
    nurse, _ = await joined(server, token(A, "ward-3", "nurse-1", Role.HEALTH_WORKER))
    role = Role.PATIENT if "patient" in why else Role.SPECIALIST
    if claims["invitation"] == "SELF":
        now = int(time.time())
        self_signed = {
            "iss": B,
            "aud": "digiclinic",
            "room": "ward-3",
            "guest_iss": B,
            "iat": now,
            "exp": now + 60,
        }
        claims = {"invitation": jwt.encode(self_signed, SECRETS[B].reveal(), algorithm="HS256")}
    client = server.client(token(B, "ward-3", "dr-okafor", role, **claims))
    try:
        await client.connect()
        with pytest.raises(ClientError) as refused:
            await client.join()
        assert refused.value.code == code, why
        assert server.room("ward-3", A).participants.keys() == {nurse.participant_id}
        assert (await nurse.request({"type": "ping"}))["type"] == "pong"
    finally:
        await nurse.leave()
        await client.close()


def _audit_public(tmp_path: Path) -> Ed25519PublicKey:
    private = serialization.load_pem_private_key((tmp_path / "audit.key").read_bytes(), None)
    assert isinstance(private, Ed25519PrivateKey)
    return private.public_key()
