"""Single-use join tokens (auth.single_use_tokens): a token's jti joins once.

A leave (or being denied) spends it; a dropped connection rejoins with the
same token *and* the resume secret its ``joined`` carried. In a cluster the
used jti are kept in Redis, so another node refuses them too.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sfu.participant import Role
from signaling.app import SESSIONS
from signaling.client import ClientError, ConsultClient
from signaling.config import Secret
from tests.conftest import RunningServer
from tests.functional.cluster_helpers import needs_redis, running_cluster
from tests.helpers.redis_server import RedisProcess
from tests.helpers.tokens import portal_jwt

PORTAL = "portal-a"
SECRET = Secret("portal-a-secret-0123456789abcdef0123")
PORTAL_AUTH = {"issuers": [{"id": PORTAL, "algorithm": "HS256", "secret": SECRET.reveal()}]}


def portal_token(room: str, identity: str, role: Role = Role.SPECIALIST, **claims: Any) -> str:
    """With no extra claims, a usual token (with a jti); with some, no jti unless given."""
    return portal_jwt(SECRET, PORTAL, room, identity, role, with_jti=not claims, **claims)


@pytest.fixture
async def portal(server_factory: Callable[..., Any]) -> RunningServer:
    server: RunningServer = await server_factory(auth=PORTAL_AUTH)
    return server


async def refused(server: RunningServer, token: str, resume: str | None = None) -> str:
    """The error code of a join with ``token`` (and ``resume``); fails if it is accepted."""
    client = server.client(token)
    client.resume = resume
    try:
        await client.connect()
        await client.join()
    except ClientError as exc:
        return exc.code
    finally:
        await client.close()
    raise AssertionError("the join was accepted")


async def test_a_used_token_is_refused_on_a_second_join_after_leave(
    portal: RunningServer,
) -> None:
    token = portal_token("ward-1", "dr-a")
    first = portal.client(token)
    await first.connect()
    joined = await first.join()
    assert joined["state"] == "active"
    await first.leave()
    assert await refused(portal, token) == "token_used"
    # not even with the resume secret the first join was given: a leave spends it
    assert await refused(portal, token, joined["resume"]) == "token_used"


async def test_a_token_without_jti_is_refused_when_single_use_is_required(
    portal: RunningServer,
) -> None:
    assert await refused(portal, portal_token("ward-1", "dr-a", note="no jti")) == "token_invalid"
    assert await refused(portal, portal_token("ward-1", "dr-a", jti="")) == "token_invalid"


async def test_a_dropped_connection_rejoins_with_its_resume_secret_and_only_it(
    portal: RunningServer,
) -> None:
    token = portal_token("ward-2", "dr-b")
    doctor = portal.client(token, reconnect=True)
    try:
        await doctor.connect()
        joined = await doctor.join()
        resume = joined["resume"]
        assert isinstance(resume, str) and len(resume) >= 32
        # someone who copied the token (not the resume secret, never in a URL) cannot join
        assert await refused(portal, token) == "token_used"
        # the network drops: the server sees the connection die, the client reconnects
        (session,) = [s for s in portal.app[SESSIONS] if s.participant is not None]
        session.ws.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
        await doctor.wait_until(lambda: doctor.reconnections == 1, timeout=15)
        assert doctor.state == "active"
        again = next(e for e in reversed(doctor.events) if e.get("type") == "joined")
        assert again["resume"] == resume  # the same secret keeps working for later drops
        assert len(portal.room("ward-2", PORTAL).participants) == 1
        await doctor.leave()
    finally:
        await doctor.close()
    assert await refused(portal, token, resume) == "token_used"


async def test_a_denied_patients_token_cannot_queue_in_the_lobby_again(
    portal: RunningServer,
) -> None:
    doctor = portal.client(portal_token("ward-3", "dr-c"))
    patient_token = portal_token("ward-3", "pat-1", Role.PATIENT)
    patient = portal.client(patient_token)
    try:
        await doctor.connect()
        await doctor.join()
        await patient.connect()
        assert (await patient.join())["state"] == "lobby"
        await doctor.deny(patient.participant_id or "")
        await patient.wait_until(lambda: patient.state == "denied")
    finally:
        await patient.close()
    try:
        assert await refused(portal, patient_token) == "token_used"
    finally:
        await doctor.leave()


async def test_a_refused_first_join_does_not_spend_the_token(portal: RunningServer) -> None:
    present = portal.client(portal_token("ward-4", "dr-d"))
    token = portal_token("ward-4", "dr-d")  # the same identity, a second token
    try:
        await present.connect()
        await present.join()
        assert await refused(portal, token) == "duplicate_identity"
    finally:
        await present.leave()
    later = portal.client(token)
    await later.connect()
    assert "resume" in await later.join()  # joins once the identity has left ...
    await later.leave()
    assert await refused(portal, token) == "token_used"  # ... and only once


async def test_the_development_issuer_stays_multi_use(server: RunningServer) -> None:
    token = server.token("dev-room", "alice", Role.SPECIALIST)
    for _ in range(3):
        client = server.client(token)
        await client.connect()
        joined = await client.join()
        assert joined["state"] == "active" and "resume" not in joined
        await client.leave()


async def test_single_use_can_be_turned_off(server_factory: Callable[..., Any]) -> None:
    server: RunningServer = await server_factory(auth={**PORTAL_AUTH, "single_use_tokens": False})
    token = portal_token("ward-5", "dr-e", note="no jti")
    for _ in range(2):
        client = server.client(token)
        await client.connect()
        await client.join()
        await client.leave()


# -- cluster: the used jti are shared through Redis -------------------------------------


@pytest.fixture
async def redis() -> AsyncIterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    yield server
    server.close()


@needs_redis
async def test_another_node_refuses_a_used_token_and_resumes_a_dropped_one(
    server_factory: Callable[..., Any], redis: RedisProcess
) -> None:
    def node(node_id: str) -> Any:
        cluster = {"redis_url": redis.url, "secret": "cluster-secret", "node_id": node_id}
        return server_factory(auth=PORTAL_AUTH, cluster=cluster)

    a: RunningServer = await node("a")
    left, dropped = portal_token("ward-6", "dr-f"), portal_token("ward-6", "dr-g")
    first = a.client(left)
    await first.connect()
    await first.join()
    await first.leave()
    second = a.client(dropped)
    await second.connect()
    resume = (await second.join())["resume"]
    await second.close()  # the connection ends without a leave ...
    # (closing an app just as its heartbeat wakes can hang on Python 3.11: let it run first)
    await asyncio.sleep(1.0)
    await a.server.close()  # ... and node a goes away

    b: RunningServer = await node("b")  # never saw either token: only Redis knows
    assert await refused(b, left) == "token_used"
    assert await refused(b, left, resume) == "token_used"
    assert await refused(b, dropped) == "token_used"
    rejoined = b.client(dropped)
    rejoined.resume = resume
    try:
        await rejoined.connect()
        assert (await rejoined.join())["state"] == "active"
    finally:
        await rejoined.leave()
    assert await refused(b, dropped, resume) == "token_used"


@needs_redis
async def test_in_a_cluster_a_redirect_uses_the_token_once_and_a_drain_moves_the_call(
    tmp_path: Path,
) -> None:
    """Node processes: the ticket of a redirect joins once, and clients that a
    draining node sends away rejoin on another node with their resume secret."""
    async with running_cluster(tmp_path, "a", "b", auth=PORTAL_AUTH) as cluster:
        doctor_token = portal_token("ward-7", "dr-h")
        doctor = ConsultClient(
            cluster.nodes["a"].ws_url,
            doctor_token,
            ice_addresses=["127.0.0.1"],
            reconnect=True,
            fallback_urls=[cluster.nodes["b"].ws_url],
        )
        try:
            await doctor.connect()
            await doctor.join()
            host = await cluster.room_node("a", "ward-7")
            other = "b" if host == "a" else "a"
            nurse_token = portal_token("ward-7", "nurse-1", Role.HEALTH_WORKER)
            nurse = ConsultClient(
                cluster.nodes[other].ws_url,
                nurse_token,
                ice_addresses=["127.0.0.1"],
                reconnect=True,
                fallback_urls=[cluster.nodes[host].ws_url],
            )
            try:
                await nurse.connect()
                await nurse.join()  # redirected to the host, joins there with the ticket
                redirect = next(e for e in nurse.events if e.get("code") == "redirect")
                assert cluster.node_of_url(nurse.url) == host
                # the token, and the ticket it was given, join no second time
                for via in (host, other):
                    copy = ConsultClient(cluster.nodes[via].ws_url, nurse_token)
                    try:
                        await copy.connect()
                        with pytest.raises(ClientError) as used:
                            await copy.join()
                        assert used.value.code == "token_used"
                        if via == host:
                            with pytest.raises(ClientError) as replayed:
                                await copy.request({"type": "join", "ticket": redirect["ticket"]})
                            assert replayed.value.code == "token_used"
                    finally:
                        await copy.close()
                status, _ = await cluster.admin(host, "POST", "/api/admin/drain")
                assert status == 200
                for client in (doctor, nurse):
                    await client.wait_until(
                        lambda c=client: c.reconnections == 1 and c.state == "active", 20
                    )
                    assert cluster.node_of_url(client.url) == other
            finally:
                await nurse.leave()
        finally:
            await doctor.leave()
