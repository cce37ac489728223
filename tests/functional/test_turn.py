"""TURN through a real coturn: relay-only participants, credentials, the lobby."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aioice import stun, turn

from sfu.media import Source
from sfu.participant import Role
from signaling.client import ConsultClient
from signaling.config import Secret, TurnConfig
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from signaling.turn import turn_password
from signaling.turn_config import render_coturn_config
from tests.conftest import RunningServer
from tests.helpers.coturn import TURNSERVER, Coturn, free_udp_port
from tests.helpers.tls import self_signed

SECRET = "s3cret-for-tests-only-1234567890"
OLD_SECRET = "previous-secret-still-accepted-0987"

pytestmark = pytest.mark.skipif(
    not Path(TURNSERVER).exists(), reason="coturn is not installed (scripts/test.sh installs it)"
)


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    server = Coturn(tmp_path, [SECRET, OLD_SECRET])
    await server.start()
    yield server
    server.stop()


@pytest.fixture
async def turn_server(server_factory: Callable[..., object], coturn: Coturn) -> RunningServer:
    server: RunningServer = await server_factory(  # type: ignore[operator]
        turn={"secrets": [SECRET, OLD_SECRET], "urls": [coturn.url], "ttl": 600}
    )
    return server


async def allocate(coturn: Coturn, username: str, password: str) -> int:
    """How many relay allocations coturn grants these credentials (0 = refused).

    Refusal is coturn's answer (401/403 error response); anything else (no
    answer, a socket error) is not a refusal and fails with coturn's log.
    """
    try:
        transport, _ = await turn.create_turn_endpoint(
            asyncio.DatagramProtocol,
            server_addr=("127.0.0.1", coturn.port),
            username=username,
            password=password,
        )
    except stun.TransactionFailed as refused:
        assert refused.response.error_code in (401, 403), refused.response
        return 0
    except (OSError, stun.TransactionTimeout) as error:
        raise AssertionError(
            f"coturn did not answer the allocation ({error!r}); last log lines:\n"
            f"{coturn.log_tail()}"
        ) from None
    transport.close()
    return 1


async def test_relay_only_participants_exchange_media_through_coturn(
    turn_server: RunningServer, coturn: Coturn
) -> None:
    room = "turn-1"
    doctor = turn_server.client(
        turn_server.token(room, "doctor", Role.SPECIALIST), ice_transport_policy="relay"
    )
    nurse = turn_server.client(
        turn_server.token(room, "nurse", Role.HEALTH_WORKER), ice_transport_policy="relay"
    )
    try:
        for client in (doctor, nurse):
            await client.connect()
            joined = await client.join()
            (turn,) = joined["ice_servers"]
            assert turn["urls"] == [coturn.url] and turn["ttl"] == 600
            expiry, participant = turn["username"].split(":")
            assert participant == client.participant_id
            assert 590 <= int(expiry) - time.time() <= 601
        await doctor.publish(
            [(ToneTrack(), Source.MICROPHONE), (CameraTrack(320, 240), Source.CAMERA)]
        )
        await nurse.publish(
            [(ToneTrack(), Source.MICROPHONE), (CameraTrack(256, 192), Source.CAMERA)]
        )
        readers = []
        for client, size in ((doctor, (256, 192)), (nurse, (320, 240))):
            video = await client.wait_for_track(lambda t: t.kind == "video")
            audio = await client.wait_for_track(lambda t: t.kind == "audio")
            readers.append((TrackReader(video.track), TrackReader(audio.track), size))
        for video, audio, size in readers:
            assert (await video.wait_frames(15, timeout=20)).sizes == {size}
            assert (await audio.wait_frames(25, timeout=20)).samples > 0
            await video.stop()
            await audio.stop()
        # only relay candidates were used: every connection of both clients went via coturn
        for client in (doctor, nurse):
            for pc in (client.publisher_pc, client.subscriber_pc):
                assert pc is not None
                gatherer = pc.getTransceivers()[0].receiver.transport.transport.iceGatherer
                local = gatherer.getLocalCandidates()
                assert local and all(c.type == "relay" for c in local)
        log = coturn.log_text()
        for client in (doctor, nurse):
            assert f":{client.participant_id}" in log  # coturn saw each participant's username
        assert "ALLOCATE" in log and "success" in log.lower()
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())


async def test_coturn_refuses_expired_and_wrong_secret_credentials(coturn: Coturn) -> None:
    now = int(time.time())
    good = f"{now + 300}:p1"
    assert await allocate(coturn, good, turn_password(Secret(SECRET), good)) == 1
    rotated = f"{now + 300}:p2"  # signed with the older secret, still configured: accepted
    assert await allocate(coturn, rotated, turn_password(Secret(OLD_SECRET), rotated)) == 1
    expired = f"{now - 60}:p3"
    assert await allocate(coturn, expired, turn_password(Secret(SECRET), expired)) == 0
    forged = f"{now + 300}:p4"
    assert await allocate(coturn, forged, turn_password(Secret("not-the-secret"), forged)) == 0


async def test_lobby_participant_gets_no_turn_credentials(
    turn_server: RunningServer, coturn: Coturn
) -> None:
    room = "turn-lobby"
    doctor = turn_server.client(turn_server.token(room, "doctor", Role.SPECIALIST))
    patient_token = turn_server.token(room, "patient", Role.PATIENT)
    patient = turn_server.client(patient_token)
    url = turn_server.server.make_url("/api/turn-credentials")
    try:
        await doctor.connect()
        await doctor.join()
        await patient.connect()
        joined = await patient.join()
        assert joined["state"] == "lobby" and joined["ice_servers"] == []
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {patient_token}"}
            async with http.get(url, headers=headers) as resp:
                assert resp.status == 403 and (await resp.json())["code"] == "not_admitted"
            lobby = await doctor.wait_event("lobby", where=lambda e: bool(e["waiting"]))
            await doctor.admit(lobby["waiting"][0]["id"])
            admitted = await patient.wait_event("admitted")
            (turn,) = admitted["ice_servers"]
            assert turn["username"].endswith(f":{patient.participant_id}")
            async with http.get(url, headers=headers) as resp:
                assert resp.status == 200
                (fresh,) = (await resp.json())["ice_servers"]
            # the credential works on the real coturn
            assert await allocate(coturn, fresh["username"], fresh["credential"]) == 1
            async with http.get(url) as resp:
                assert resp.status == 401
    finally:
        await asyncio.gather(doctor.leave(), patient.leave())


async def test_rendered_production_config_runs_in_coturn_and_refuses_loopback_peers(
    tmp_path: Path, server_factory: Callable[..., object]
) -> None:
    """The hardened config as rendered for production, loaded by the real coturn.

    Only where coturn listens is changed for the test (127.0.0.1, free ports, a
    self-signed certificate). The media server on 127.0.0.1 is a loopback peer,
    which the production rules deny: allocations work, relaying to it does not.
    """
    cert, key = self_signed(tmp_path)
    port, tls_port = free_udp_port(), free_udp_port()
    relay = 10000 + (port % 1000) * 20  # below the ephemeral range, as Coturn does
    rendered = render_coturn_config(
        TurnConfig(
            secrets=[Secret(SECRET)],
            urls=[f"turn:127.0.0.1:{port}?transport=udp"],
            listening_port=port,
            tls_listening_port=tls_port,
            relay_port_min=relay,
            relay_port_max=relay + 9,
            cert_file=str(cert),
            pkey_file=str(key),
        )
    )
    assert "allow-loopback-peers" not in rendered
    coturn = Coturn.with_config(tmp_path, rendered, port)
    await coturn.start()
    try:
        now = int(time.time())
        username = f"{now + 300}:p1"
        assert await allocate(coturn, username, turn_password(Secret(SECRET), username)) == 1
        server: RunningServer = await server_factory(  # type: ignore[operator]
            turn={"secrets": [SECRET], "urls": [coturn.url]}
        )
        client = server.client(
            server.token("denied", "doctor", Role.SPECIALIST), ice_transport_policy="relay"
        )
        await client.connect()
        await client.join()
        # signalling succeeds; the relay allocation succeeds; reaching the server does not
        await client.publish([(CameraTrack(), Source.CAMERA)])
        pc = client.publisher_pc
        assert pc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "403: Forbidden IP" not in coturn.log_text():
            await asyncio.sleep(0.2)
        refused = [
            line
            for line in coturn.log_text().splitlines()
            if "403: Forbidden IP" in line and f":{client.participant_id}>" in line
        ]
        assert refused, "coturn should refuse to relay to the loopback media server"
        assert pc.connectionState != "connected"
        await client.close()
    finally:
        coturn.stop()


async def test_media_server_itself_can_relay_through_turn(
    server_factory: Callable[..., object], coturn: Coturn
) -> None:
    """A server that cannot be reached directly: it offers only relay candidates.

    The clients are plain (host candidates, no TURN); every packet between
    them and the SFU goes through the SFU's own allocations on coturn.
    """
    username = f"{int(time.time()) + 3600}:media-server"
    server: RunningServer = await server_factory(  # type: ignore[operator]
        media={
            "ice_servers": [
                {
                    "urls": [coturn.url],
                    "username": username,
                    "credential": turn_password(Secret(SECRET), username),
                }
            ],
            "ice_transport_policy": "relay",
        }
    )
    doctor = server.client(server.token("nat", "doctor", Role.SPECIALIST))
    nurse = server.client(server.token("nat", "nurse", Role.HEALTH_WORKER))
    try:
        await doctor.connect()
        await doctor.join()
        await doctor.publish([(CameraTrack(320, 240), Source.CAMERA)])
        await nurse.connect()
        await nurse.join()
        reader = TrackReader((await nurse.wait_for_track(lambda t: t.kind == "video")).track)
        try:
            received = await reader.wait_frames(10, timeout=20)
        except TimeoutError:
            # (seen once in a full CI run, never alone: say where the path stopped)
            raise AssertionError(
                f"no 10 frames through the SFU's relay in 20 s ({reader.stats.frames} came); "
                f"connections: {_states(doctor=doctor, nurse=nurse)}\n"
                f"coturn log, last lines:\n{coturn.log_tail()}"
            ) from None
        assert received.sizes == {(320, 240)}
        await reader.stop()
        assert nurse.subscriber_pc is not None and doctor.publisher_pc is not None
        for pc in (nurse.subscriber_pc, doctor.publisher_pc):
            remote = pc.remoteDescription.sdp  # what the SFU offered/answered
            candidates = [line for line in remote.splitlines() if line.startswith("a=candidate:")]
            assert candidates and all(" typ relay" in c for c in candidates), candidates
        assert "<media-server>" in coturn.log_text() or ":media-server>" in coturn.log_text()
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())


def _states(**clients: ConsultClient) -> dict[str, str]:
    """Each client's peer connections' ICE and connection states."""
    states = {}
    for name, client in clients.items():
        for which, pc in (("publisher", client.publisher_pc), ("subscriber", client.subscriber_pc)):
            if pc is not None:
                states[f"{name} {which}"] = f"ice {pc.iceConnectionState}, {pc.connectionState}"
    return states
