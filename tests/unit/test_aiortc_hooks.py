"""Pins every private aiortc/aioice API that sfu/aiortc_hooks.py relies on.

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
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcpeerconnection import RTCPeerConnection as PC
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender

from sfu import aiortc_hooks
from sfu.rtp import build_header, parse_rtp
from sfu.udp_mux import UdpMux


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
