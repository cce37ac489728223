"""One UDP port for all media of the server (media.udp_mode: one_port, sfu/udp_mux.py).

Its SRTP leaves through the batched egress (sfu/udp_batch.py).

Real aiortc peers through a real server: every connection's host candidate
is the one port, media flows both ways on it, and garbage or forged checks
sent to it leave the call alone.
"""

from __future__ import annotations

import asyncio
import re
import socket

from aiohttp import ClientSession
from aioice import stun

from sfu.media import Source
from sfu.participant import Role
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from tests.conftest import RunningServer

CANDIDATE = re.compile(r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host")


def host_ports(sdp: str) -> set[int]:
    return {int(port) for _, port in CANDIDATE.findall(sdp)}


async def test_every_connection_of_a_consult_uses_the_one_port(server: RunningServer) -> None:
    mux = server.rooms.media.udp_mux
    assert mux is not None
    port = mux.ports()["127.0.0.1"]
    server_sdps: list[str] = []

    def keep(sdp: str) -> str:
        server_sdps.append(sdp)
        return sdp

    doctor = server.client(
        server.token("oneport", "doctor", Role.SPECIALIST),
        publisher_answer_filter=keep,
        subscriber_offer_filter=keep,
    )
    nurse = server.client(
        server.token("oneport", "nurse", Role.HEALTH_WORKER),
        publisher_answer_filter=keep,
        subscriber_offer_filter=keep,
    )
    # a second viewer: each of the doctor's packets then has two copies to batch
    student = server.client(server.token("oneport", "student", Role.HEALTH_WORKER))
    try:
        await doctor.connect()
        await doctor.join()
        await doctor.publish(
            [(ToneTrack(), Source.MICROPHONE), (CameraTrack(320, 240), Source.CAMERA)]
        )
        await nurse.connect()
        await nurse.join()
        await nurse.publish(
            [(ToneTrack(), Source.MICROPHONE), (CameraTrack(320, 240), Source.CAMERA)]
        )
        await student.connect()
        await student.join()
        to_nurse = TrackReader((await nurse.wait_for_track(lambda t: t.kind == "video")).track)
        to_doctor = TrackReader((await doctor.wait_for_track(lambda t: t.kind == "video")).track)
        await asyncio.gather(to_nurse.wait_frames(15), to_doctor.wait_frames(15))
        await asyncio.sleep(1)  # the student receives both cameras by now
        # two publishers and two subscribers: four connections, one port
        assert len(server_sdps) >= 4
        assert set().union(*(host_ports(sdp) for sdp in server_sdps)) == {port}
        # the media left through the batched egress (sendmmsg), none of it dropped
        (batch,) = mux.batch_counters()
        assert batch.datagrams > 100 and batch.dropped == 0
        assert batch.batches < batch.datagrams  # several copies per system call
        before = mux.counters.datagrams

        # garbage, forged checks and a stranger's media at the port change nothing
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        forged = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        ufrag = re.search(r"a=ice-ufrag:(\S+)", server_sdps[0])
        assert ufrag is not None
        forged.attributes["USERNAME"] = f"{ufrag.group(1)}:intruder"
        forged.add_message_integrity(b"not the password")
        for _ in range(50):
            stranger.sendto(bytes(forged), ("127.0.0.1", port))
            stranger.sendto(b"\x80\x60" + bytes(200), ("127.0.0.1", port))
            stranger.sendto(b"\xff" * 3, ("127.0.0.1", port))
        stranger.close()
        frames = to_nurse.stats.frames, to_doctor.stats.frames
        await asyncio.sleep(2)
        assert to_nurse.stats.frames > frames[0] + 15
        assert to_doctor.stats.frames > frames[1] + 15
        assert mux.counters.bad_checks >= 50
        assert mux.counters.unknown >= 150
        assert mux.counters.datagrams > before + 150
        async with (
            ClientSession() as http,
            http.get(server.server.make_url("/metrics")) as response,
        ):
            metrics = await response.text()
        assert 'digiclinic_media_udp_datagrams_total{fate="bad_check"}' in metrics
        await asyncio.gather(to_nurse.stop(), to_doctor.stop())
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave(), student.leave())
    # their addresses are forgotten with their connections
    for _ in range(50):
        if not mux._by_addr:
            break
        await asyncio.sleep(0.1)
    assert not mux._by_addr and not mux._by_ufrag
