"""The SFU forwards at the packet level: no codec is ever created in the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from benchmarks.server_process import ServerProcess
from sfu.media import Source
from sfu.participant import Role
from signaling.client import ConsultClient
from signaling.config import Secret
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from signaling.tokens import mint_token


@pytest.fixture
async def guarded() -> AsyncIterator[ServerProcess]:
    server = ServerProcess(module="tests.helpers.guarded_server")
    await server.start()
    yield server
    server.stop()


def token(server: ServerProcess, identity: str, role: Role) -> str:
    secret = Secret(server.secret_file.read_text().strip())
    return mint_token(secret, room="nodecode", identity=identity, role=role)


async def test_media_flows_and_no_codec_is_created_in_the_server(guarded: ServerProcess) -> None:
    threads_idle = guarded.sample().threads
    clients = [
        ConsultClient(guarded.ws_url, token(guarded, name, role), ice_addresses=["127.0.0.1"])
        for name, role in (
            ("a", Role.SPECIALIST),
            ("b", Role.HEALTH_WORKER),
            ("c", Role.INTERPRETER),
        )
    ]
    try:
        for client in clients:
            await client.connect()
            await client.join()
            await client.publish([(ToneTrack(), Source.MICROPHONE), (CameraTrack(), Source.CAMERA)])
        readers = []
        for client in clients:
            for other in clients:
                if other is client:
                    continue
                for kind in ("audio", "video"):
                    track = await client.wait_for_track(
                        lambda t, k=kind, p=other.participant_id: (
                            t.kind == k and t.participant_id == p
                        )
                    )
                    readers.append(TrackReader(track.track))
        for reader in readers:
            await reader.wait_frames(10, timeout=20)
        metrics = await guarded.metrics()
        busy = guarded.sample()
        for reader in readers:
            await reader.stop()
    finally:
        await asyncio.gather(*(c.leave() for c in clients))
    stderr = guarded.stderr()
    assert "codec factories trapped" in stderr
    assert "CODEC-CREATED" not in stderr, stderr
    # 12 decoded streams on the client side, none on the server side: no decoder threads either
    assert busy.threads <= threads_idle + 2, (threads_idle, busy.threads)
    assert metrics["digiclinic_producers"] == 6 and metrics["digiclinic_consumers"] == 12
    assert metrics["digiclinic_rtp_packets_out_total"] > metrics["digiclinic_rtp_packets_in_total"]
