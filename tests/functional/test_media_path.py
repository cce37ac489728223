"""Codecs, upstream repair and RTCP on the packet path, with real aiortc peers."""

from __future__ import annotations

import asyncio

from sfu.media import Source
from sfu.participant import Role
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from tests.conftest import RunningServer
from tests.helpers.udp_relay import UdpImpairmentRelay


async def test_h264_is_forwarded_when_negotiated(server: RunningServer) -> None:
    doctor = server.client(server.token("h264", "doctor", Role.SPECIALIST))
    nurse = server.client(server.token("h264", "nurse", Role.HEALTH_WORKER))
    try:
        await doctor.connect()
        await doctor.join()
        await doctor.publish([(CameraTrack(320, 240, 15), Source.CAMERA)], video_codec="video/H264")
        await nurse.connect()
        await nurse.join()
        video = await nurse.wait_for_track(lambda t: t.kind == "video")
        reader = TrackReader(video.track)
        stats = await reader.wait_frames(20)
        assert stats.sizes == {(320, 240)}
        producer = next(server.room("h264").producers())
        assert producer.codec.name == "H264"
        assert producer.counters.keyframes >= 1  # H.264 keyframe detection found the IDR
        consumer = next(iter(producer.consumers))
        assert consumer.counters.packets > 0
        await reader.stop()
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())


async def test_uplink_loss_is_nacked_upstream_and_repaired(server: RunningServer) -> None:
    relay = UdpImpairmentRelay(up_loss=0.05, seed=11)
    await relay.start()
    doctor = server.client(
        server.token("uplink", "doctor", Role.SPECIALIST),
        publisher_offer_filter=relay.rewrite_client_sdp,
        publisher_answer_filter=relay.rewrite_server_sdp,
    )
    nurse = server.client(server.token("uplink", "nurse", Role.HEALTH_WORKER))
    try:
        await doctor.connect()
        await doctor.join()
        await doctor.publish([(CameraTrack(320, 240, 20), Source.CAMERA)])
        await nurse.connect()
        await nurse.join()
        reader = TrackReader((await nurse.wait_for_track(lambda t: t.kind == "video")).track)
        await reader.wait_frames(10)
        before = reader.stats.frames
        await asyncio.sleep(5)
        frames = reader.stats.frames - before
        producer = next(server.room("uplink").producers())
        assert producer.stream is not None
        assert relay.counters.up_dropped > 10, relay.counters
        assert producer.counters.nacks > 0, "the SFU should NACK the publisher"
        assert producer.stream.recovered > 0, "retransmissions from the publisher should fill gaps"
        assert frames >= 5 * 20 * 0.8, frames
        assert reader.stats.sizes == {(320, 240)}
        await reader.stop()
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())
        relay.close()


async def test_rtcp_reports_reach_both_ends(server: RunningServer) -> None:
    """Receiver reports and REMB go upstream; translated sender reports go downstream."""
    doctor = server.client(server.token("rtcp", "doctor", Role.SPECIALIST))
    nurse = server.client(server.token("rtcp", "nurse", Role.HEALTH_WORKER))
    try:
        await doctor.connect()
        await doctor.join()
        await doctor.publish([(ToneTrack(), Source.MICROPHONE), (CameraTrack(), Source.CAMERA)])
        await nurse.connect()
        await nurse.join()
        readers = [
            TrackReader((await nurse.wait_for_track(lambda t, k=k: t.kind == k)).track)
            for k in ("audio", "video")
        ]
        await asyncio.sleep(6)  # aiortc sends SRs and RRs every 1-2 s with jitter

        assert doctor.publisher_pc is not None and nurse.subscriber_pc is not None
        upstream = [
            s
            for s in (await doctor.publisher_pc.getStats()).values()
            if s.type == "remote-inbound-rtp"
        ]
        # the publisher got our receiver reports for both tracks, with an RTT from LSR/DLSR
        assert {s.kind for s in upstream} == {"audio", "video"}
        assert all(s.packetsLost == 0 for s in upstream)
        assert any(getattr(s, "roundTripTime", None) is not None for s in upstream)

        downstream = [
            s
            for s in (await nurse.subscriber_pc.getStats()).values()
            if s.type == "remote-outbound-rtp"
        ]
        room = server.room("rtcp")
        nurse_side = next(p for p in room.participants.values() if p.identity == "nurse")
        consumer_ssrcs = {c.params.ssrc for c in nurse_side.consumers.values() if c.params}
        # the subscriber got sender reports carrying the SFU's SSRCs, not the publisher's
        assert {s.ssrc for s in downstream} == consumer_ssrcs
        assert all(s.packetsSent > 0 for s in downstream)
        consumers = list(nurse_side.consumers.values())
        assert any(c.rtt_ms is not None for c in consumers), "RTT from the subscriber's RRs"

        doctor_side = next(p for p in room.participants.values() if p.identity == "doctor")
        assert doctor_side.publisher is not None
        assert doctor_side.publisher.rembs_sent > 0
        assert doctor_side.publisher.uplink_estimate > 100_000
        for reader in readers:
            await reader.stop()
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())
