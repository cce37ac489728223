"""Pins every private aiortc/aioice API that sfu/aiortc_hooks/ relies on.

If aiortc or aioice is upgraded and any of these moves, this file fails
before the packet path silently breaks.
"""

from __future__ import annotations

import asyncio
import inspect
import time

import aioice
import aiortc
import pytest
from aioice.ice import Connection, StunProtocol
from aiortc import RTCPeerConnection, RTCSessionDescription, rtcrtpreceiver
from aiortc.codecs import vpx
from aiortc.jitterbuffer import JitterFrame
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcpeerconnection import RTCPeerConnection as PC
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCEncodedFrame, RTCRtpSender

from sfu import aiortc_hooks
from sfu.rtp import build_header, parse_rtp
from sfu.udp_mux import UdpMux
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader


def _source(obj: object) -> str:
    return inspect.getsource(obj)  # type: ignore[arg-type]


def test_versions_are_the_pinned_ones() -> None:
    assert aiortc.__version__ == aiortc_hooks.AIORTC_VERSION
    assert aioice.__version__ == aiortc_hooks.AIOICE_VERSION


def test_dtls_transport_dispatches_decrypted_packets_through_replaceable_methods() -> None:
    for name in ("_handle_rtp_data", "_handle_rtcp_data"):
        assert inspect.iscoroutinefunction(getattr(RTCDtlsTransport, name))
    assert list(inspect.signature(RTCDtlsTransport._handle_rtp_data).parameters) == [
        "self",
        "data",
        "arrival_time_ms",
    ]
    recv = _source(RTCDtlsTransport._recv_next)
    assert "await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)" in recv
    assert "await self._handle_rtcp_data(data)" in recv
    assert "self._rx_srtp.unprotect(data)" in recv
    send = _source(RTCDtlsTransport._send_rtp)
    assert "self._tx_srtp.protect(data)" in send and "self._tx_srtp.protect_rtcp(data)" in send


def test_peer_connection_starts_senders_and_receivers_through_instance_methods() -> None:
    connect = _source(PC._RTCPeerConnection__connect)  # type: ignore[attr-defined]
    assert "await transceiver.sender.send(self.__localRtp(transceiver))" in connect
    assert "await transceiver.receiver.receive(" in connect
    assert inspect.iscoroutinefunction(RTCRtpSender.send)
    assert inspect.iscoroutinefunction(RTCRtpReceiver.receive)
    assert "self._ssrc = random32()" in _source(RTCRtpSender.__init__)
    assert "self._rtx_ssrc = random32()" in _source(RTCRtpSender.__init__)


def test_aioice_gathering_goes_through_get_component_candidates() -> None:
    params = list(inspect.signature(Connection.get_component_candidates).parameters)
    assert params == ["self", "component", "addresses", "timeout"]
    gather = _source(Connection.gather_candidates)
    assert "self.get_component_candidates(component=component, addresses=addresses)" in gather
    assert "self._protocols" in _source(Connection.get_component_candidates)
    assert "_nominated" in _source(Connection.sendto)
    assert "self._transport_policy = transport_policy" in _source(Connection.__init__)
    assert list(inspect.signature(StunProtocol.__init__).parameters) == ["self", "receiver"]


def test_a_stun_protocol_runs_on_any_datagram_transport() -> None:
    """The one-port mode hands aioice's StunProtocol a transport of its own (sfu/udp_mux.py)."""
    assert "self.transport = " in _source(StunProtocol.connection_made)
    close = _source(StunProtocol.close)
    assert "self.transport.close()" in close and "await self.__closed" in close
    assert "self.__closed.set_result(True)" in _source(StunProtocol.connection_lost)
    assert "self.transport.sendto(" in _source(StunProtocol.send_stun)
    assert isinstance(Connection.local_username, property)
    assert isinstance(Connection.local_password, property)


def test_aioice_consent_is_a_replaceable_method_started_by_connect() -> None:
    assert "self._query_consent_task = asyncio.create_task(self.query_consent())" in _source(
        Connection.connect
    )
    consent = _source(Connection.query_consent)
    assert "self.build_request(pair, nominate=False)" in consent
    assert "pair.protocol.request(" in consent and "retransmissions=0" in consent
    assert "self._query_consent_task = None" in consent
    assert list(inspect.signature(StunProtocol.request).parameters) == [
        "self",
        "request",
        "addr",
        "integrity_key",
        "retransmissions",
    ]


async def test_consent_survives_a_slow_link_and_expires_without_answers() -> None:
    """Answers after 1.5 s keep consent (aioice alone gave up after 0.5 s); none for 30 s end it."""

    class Pair:
        remote_addr = ("10.0.0.1", 9)

        def __init__(self) -> None:
            self.protocol = self
            self.answer = True

        async def request(self, *args: object, retransmissions: int = 0, **kw: object) -> None:
            assert retransmissions == aiortc_hooks.CONSENT_RETRANSMISSIONS
            await asyncio.sleep(0)
            if not self.answer:
                raise aioice.stun.TransactionTimeout()

    class FakeConnection:
        remote_password = "pw"

        def __init__(self) -> None:
            self.pair = Pair()
            self._nominated = {1: self.pair}
            self._query_consent_task = None
            self.closed = False

        def build_request(self, pair: object, nominate: bool) -> object:
            return object()

        async def close(self) -> None:
            self.closed = True

    clock = [1000.0]

    async def fast_sleep(seconds: float) -> None:
        clock[0] += seconds
        await asyncio.sleep(0)

    connection = FakeConnection()
    aiortc_hooks.tolerate_slow_consent(connection, clock=lambda: clock[0], sleep=fast_sleep)
    task = asyncio.get_running_loop().create_task(connection.query_consent())  # type: ignore[attr-defined]
    for _ in range(40):
        await asyncio.sleep(0)
    assert not connection.closed and clock[0] - 1000.0 > 60  # answered: keeps going
    connection.pair.answer = False
    for _ in range(60):
        await asyncio.sleep(0)
        if task.done():
            break
    assert connection.closed and task.done()
    assert clock[0] - 1000.0 - 60 >= 30  # at least 30 s without an answer


def test_remote_bitrate_estimator_signature() -> None:
    params = list(inspect.signature(RemoteBitrateEstimator.add).parameters)
    assert params == ["self", "arrival_time_ms", "abs_send_time", "payload_size", "ssrc"]


@pytest.mark.parametrize("one_port", [False, True], ids=["port_range", "one_port"])
async def test_hooks_carry_srtp_packets_between_two_real_peers(one_port: bool) -> None:
    """End to end over loopback: SrtpEgress out of one peer, take_over_transport into the other.

    ``one_port``: the receiving peer's ICE runs on a shared socket (sfu/udp_mux.py).
    """
    mux = UdpMux(0, 1 << 20) if one_port else None
    if mux is not None:
        await mux.open(["127.0.0.1"])
    sender_pc, receiver_pc = RTCPeerConnection(), RTCPeerConnection()
    received: list[bytes] = []
    got_one = asyncio.Event()
    connected = asyncio.Event()
    try:
        transceiver = sender_pc.addTransceiver("video", direction="sendonly")
        aiortc_hooks.disable_stock_sender(transceiver, connected.set)
        aiortc_hooks.configure_host_candidates(sender_pc, ["127.0.0.1"], port_range=(43000, 43100))
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        assert all(
            host == "127.0.0.1" and 43000 <= port <= 43100
            for host, port in aiortc_hooks.local_candidate_addresses(sender_pc)
        )
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        remote = receiver_pc.getTransceivers()[0]
        aiortc_hooks.disable_stock_receiver(remote)

        def on_rtp(data: bytes, arrival_ms: int) -> None:
            received.append(data)
            got_one.set()

        aiortc_hooks.take_over_transport(
            aiortc_hooks.dtls_transport(remote), on_rtp, lambda d: None
        )
        aiortc_hooks.configure_host_candidates(receiver_pc, ["127.0.0.1"], mux=mux)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        if mux is not None:
            ports = {port for _, port in aiortc_hooks.local_candidate_addresses(receiver_pc)}
            assert ports == {mux.ports()["127.0.0.1"]}
        arrivals: dict[bytes, int] = {}
        aiortc_hooks.stamp_arrivals(receiver_pc, arrivals)
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        await asyncio.wait_for(connected.wait(), 10)

        egress = aiortc_hooks.SrtpEgress(aiortc_hooks.dtls_transport(transceiver))
        assert egress.ready
        ssrc, rtx_ssrc = aiortc_hooks.sender_ssrcs(transceiver)
        assert ssrc != rtx_ssrc
        codecs = aiortc_hooks.negotiated_codecs(transceiver)
        assert codecs and codecs[0].mimeType == "video/VP8"
        pt = codecs[0].payloadType
        packet = build_header(True, pt, 1234, 5678, ssrc, b"") + b"payload"
        for _ in range(20):
            assert egress.send_rtp(packet)
            try:
                await asyncio.wait_for(got_one.wait(), 0.2)
                break
            except TimeoutError:
                continue
        assert received, "no packet came through the hooks"
        parsed = parse_rtp(received[0])
        assert (parsed.ssrc, parsed.seq, parsed.timestamp, parsed.payload) == (
            ssrc,
            1234,
            5678,
            b"payload",
        )
        # the arrival was noted as the datagram came off the socket, keyed as decrypted
        key = received[0][2:4] + received[0][8:12]
        assert key in arrivals and arrivals[key] <= time.monotonic_ns() // 1000
        if mux is not None:
            assert mux.counters.datagrams > 0 and mux.counters.unknown == 0
    finally:
        await sender_pc.close()
        await receiver_pc.close()
        if mux is not None:
            assert not mux._by_ufrag  # the connection's closing let go of the shared socket
            mux.close()


def test_receiver_is_never_started_once_disabled() -> None:
    async def run() -> None:
        pc = RTCPeerConnection()
        offerer = RTCPeerConnection()
        offerer.addTransceiver("audio", direction="sendonly")
        await offerer.setLocalDescription(await offerer.createOffer())
        await pc.setRemoteDescription(RTCSessionDescription(offerer.localDescription.sdp, "offer"))
        transceiver = pc.getTransceivers()[0]
        aiortc_hooks.disable_stock_receiver(transceiver)
        await transceiver.receiver.receive(None)
        # the stock receive() would have started a decoder thread and an RTCP task
        assert transceiver.receiver._RTCRtpReceiver__started is False  # type: ignore[attr-defined]
        await pc.close()
        await offerer.close()

    asyncio.run(run())


# -- encoded frames (sfu/aiortc_hooks/frames.py) ---------------------------------------


def test_the_sender_gets_each_encoded_frame_from_a_replaceable_method() -> None:
    assert inspect.iscoroutinefunction(RTCRtpSender._next_encoded_frame)
    params = list(inspect.signature(RTCRtpSender._next_encoded_frame).parameters)
    assert params == ["self", "codec"]
    run = _source(RTCRtpSender._run_rtp)
    assert "enc_frame = await self._next_encoded_frame(codec)" in run
    assert "for i, payload in enumerate(enc_frame.payloads):" in run
    assert "packet.payload = payload" in run
    assert list(inspect.signature(RTCEncodedFrame.__init__).parameters) == [
        "self",
        "payloads",
        "timestamp",
        "audio_level",
    ]
    # VP8: the encoder packetizes (descriptor + bitstream); the hook undoes and redoes that
    assert "payloads = self._packetize(data_to_send, self.picture_id)" in _source(
        vpx.Vp8Encoder.encode
    )
    assert list(inspect.signature(vpx.Vp8Encoder._packetize).parameters) == [
        "buffer",
        "picture_id",
    ]
    payloads = vpx.Vp8Encoder._packetize(bytes(range(256)) * 12, 1234)
    assert len(payloads) == 3
    frame, picture_id = aiortc_hooks.vp8_frame(payloads)
    assert (frame, picture_id) == (bytes(range(256)) * 12, 1234)
    assert aiortc_hooks.vp8_payloads(frame, picture_id) == payloads


def test_the_receiver_feeds_its_decoder_through_a_replaceable_queue() -> None:
    assert "self.__decoder_queue: queue.Queue = queue.Queue()" in _source(RTCRtpReceiver.__init__)
    receive = _source(RTCRtpReceiver.receive)
    assert "self.__decoder_queue," in receive and "if not self.__started:" in receive
    assert "self.__decoder_queue.put((codec, encoded_frame))" in _source(
        RTCRtpReceiver._handle_rtp_packet
    )
    assert "self.__decoder_queue.put(None)" in _source(
        RTCRtpReceiver._RTCRtpReceiver__stop_decoder  # type: ignore[attr-defined]
    )
    worker = _source(rtcrtpreceiver.decoder_worker)
    assert "task = input_q.get()" in worker and "codec, encoded_frame = task" in worker
    assert "decoder.decode(encoded_frame)" in worker
    assert list(inspect.signature(JitterFrame.__init__).parameters) == [
        "self",
        "data",
        "timestamp",
    ]


async def test_frame_hooks_transform_what_aiortc_sends_and_decodes() -> None:
    """Two real aiortc peers: every sent frame is scrambled, every received one unscrambled.

    The receiver decodes the sender's 320x240 video and its audio only if both
    hooks saw whole frames (VP8 without its payload descriptors) and put them back.
    """

    def scramble(data: bytes) -> bytes:
        return data[:3] + bytes(b ^ 0x5A for b in data[3:]) + b"DC"

    sent: dict[str, list[bytes]] = {"VP8": [], "opus": []}
    received: dict[str, int] = {"VP8": 0, "opus": 0}

    def on_send(codec: str, frame: bytes) -> bytes:
        sent[codec].append(frame)
        return scramble(frame)

    def on_receive(codec: str, frame: bytes) -> bytes | None:
        if not frame.endswith(b"DC"):
            return None
        received[codec] += 1
        return scramble(frame[:-2])[:-2]

    sender_pc, receiver_pc = RTCPeerConnection(), RTCPeerConnection()
    readers: list[TrackReader] = []
    try:
        for track in (CameraTrack(320, 240, 20), ToneTrack()):
            transceiver = sender_pc.addTransceiver(track, direction="sendonly")
            aiortc_hooks.transform_sent_frames(transceiver.sender, on_send)
            aiortc_hooks.transform_sent_frames(transceiver.sender, on_send)  # idempotent
        aiortc_hooks.configure_host_candidates(sender_pc, ["127.0.0.1"])
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        for transceiver in receiver_pc.getTransceivers():
            assert aiortc_hooks.transform_received_frames(transceiver.receiver, on_receive)
        aiortc_hooks.configure_host_candidates(receiver_pc, ["127.0.0.1"])
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        tracks = {t.receiver.track.kind: t.receiver.track for t in receiver_pc.getTransceivers()}
        video, audio = TrackReader(tracks["video"]), TrackReader(tracks["audio"])
        readers += [video, audio]
        got = await video.wait_frames(20, timeout=15)
        heard = await audio.wait_frames(20, timeout=15)
        assert got.sizes == {(320, 240)}
        assert heard.samples >= 20 * 960
        # what the hook saw were whole VP8 frames: the first a key frame of 320x240
        first = sent["VP8"][0]
        assert not first[0] & 0x01 and first[3:6] == b"\x9d\x01\x2a"
        assert int.from_bytes(first[6:8], "little") & 0x3FFF == 320
        assert received["VP8"] >= 20 and received["opus"] >= 20
        # once started, a receiver cannot be hooked any more (the decoder took its queue)
        late = receiver_pc.getTransceivers()[0].receiver
        setattr(late, "_digiclinic_frame_transform", False)  # noqa: B010
        assert not aiortc_hooks.transform_received_frames(late, on_receive)
    finally:
        for reader in readers:
            await reader.stop()
        await sender_pc.close()
        await receiver_pc.close()


async def test_a_hooked_receiver_queue_transforms_drops_and_survives_errors() -> None:
    offerer, pc = RTCPeerConnection(), RTCPeerConnection()
    try:
        offerer.addTransceiver("video", direction="sendonly")
        await offerer.setLocalDescription(await offerer.createOffer())
        await pc.setRemoteDescription(offerer.localDescription)
        receiver = pc.getTransceivers()[0].receiver

        def transform(codec: str, frame: bytes) -> bytes | None:
            if frame == b"boom":
                raise RuntimeError("a bug in a transform")
            return None if frame == b"drop" else frame.upper()

        assert aiortc_hooks.transform_received_frames(receiver, transform)
        hooked = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
        codec = aiortc_hooks.negotiated_codecs(pc.getTransceivers()[0])[0]
        for data in (b"abc", b"drop", b"boom", b"def"):
            hooked.put((codec, JitterFrame(data, 0)))
        hooked.put(None)  # how the receiver stops its decoder thread
        out = [hooked.get_nowait() for _ in range(hooked.qsize())]
        assert [item[1].data for item in out[:-1]] == [b"ABC", b"DEF"] and out[-1] is None
    finally:
        await pc.close()
        await offerer.close()
