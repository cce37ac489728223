"""The benchmark baseline (decode once, re-encode per subscriber) works with ConsultClient."""

from __future__ import annotations

import asyncio

from benchmarks.server_process import ServerProcess
from sfu.media import Source
from sfu.participant import Role
from signaling.client import ConsultClient
from signaling.config import Secret
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from signaling.tokens import mint_token

# the baseline reads only the payload: any signature will do
SECRET = Secret("x" * 32)


async def test_baseline_relays_decodable_media_between_consult_clients() -> None:
    # ServerProcess runs `python -m <module> --config FILE serve`; the baseline reads
    # server.host/port from that file and treats `serve` as a no-op.
    server = ServerProcess(module="benchmarks.baseline_relay")
    await server.start()
    clients: list[ConsultClient] = []
    try:
        for identity, role in (("dr", Role.SPECIALIST), ("patient", Role.PATIENT)):
            token = mint_token(SECRET, room="baseline-1", identity=identity, role=role)
            client = ConsultClient(server.ws_url, token, ice_addresses=["127.0.0.1"])
            await client.connect()
            clients.append(client)
            joined = await client.join()
            assert joined["state"] == "active"
            assert joined["participant"]["identity"] == identity
        sender, receiver = clients
        published = await sender.publish(
            [(CameraTrack(320, 240), Source.CAMERA), (ToneTrack(), Source.MICROPHONE)]
        )
        assert len(published) == 2

        video = await receiver.wait_for_track(lambda t: t.kind == "video")
        audio = await receiver.wait_for_track(lambda t: t.kind == "audio")
        assert video.participant_id == sender.participant_id
        assert (video.source, audio.source) == ("camera", "microphone")
        readers = [TrackReader(video.track), TrackReader(audio.track)]
        frames = await readers[0].wait_frames(10, timeout=10)
        assert frames.sizes == {(320, 240)}
        sound = await readers[1].wait_frames(50, timeout=10)
        assert sound.samples >= 50 * 960
        assert sound.peak > 1000, "audio should carry the tone, not silence"
        for reader in readers:
            await reader.stop()

        metrics = await server.metrics()
        assert metrics["digiclinic_rtp_packets_out_total"] > 0
        assert metrics["digiclinic_rtp_packets_in_total"] > 0
        assert metrics["digiclinic_rtp_bytes_out_total"] > 0
        assert metrics["digiclinic_producers"] == 2
        assert metrics["digiclinic_consumers"] == 2
    finally:
        await asyncio.gather(*(c.leave() for c in clients))
        await asyncio.sleep(0.2)  # let the server handle the leaves
        log = server.stderr()
        server.stop()
    assert "Traceback" not in log, log
