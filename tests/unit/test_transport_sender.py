"""TransportSender: paced egress stamped with transport-wide sequence numbers."""

from __future__ import annotations

import time

from sfu.media import PacketClass
from sfu.rtp import build_header, parse_rtp
from sfu.transport_sender import AUDIO_FEEDBACK_GAP, WIRE_OVERHEAD, TransportSender
from sfu.twcc import TransportFeedback, read_seq

TWCC_EXT = 5
AST_EXT = 3


class Wire:
    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []

    def send_rtp(self, data: bytes, cls: object = None) -> bool:
        self.rtp.append(data)
        return True

    def send_rtcp(self, data: bytes) -> bool:
        self.rtcp.append(data)
        return True


def packet(seq: int, size: int = 100, ast: bool = False) -> bytes:
    """A packet as a Consumer builds it: the transport-cc slot first, then abs-send-time."""
    body = bytes(((TWCC_EXT << 4) | 1, 0, 0))
    if ast:
        body += bytes(((AST_EXT << 4) | 2, 0, 0, 0))
    body += bytes(-len(body) % 4)
    ext = b"\xbe\xde" + (len(body) // 4).to_bytes(2, "big") + body
    return build_header(False, 96, seq, 1000, 0x1234, ext) + bytes(size)


def test_every_packet_gets_the_next_transport_wide_sequence_number_in_send_order() -> None:
    wire = Wire()
    sender = TransportSender(wire)
    sender.configure(TWCC_EXT, None)
    stamped: list[int] = []
    sender.on_stamped = stamped.append
    for seq in range(5):
        assert sender.send_rtp(packet(seq), PacketClass.VIDEO)
    numbers = [read_seq(data, 17) for data in wire.rtp]
    assert numbers == [(numbers[0] + i) & 0xFFFF for i in range(5)]
    assert [parse_rtp(d).seq for d in wire.rtp] == list(range(5))  # the rest untouched
    assert stamped == sorted(stamped) and len(stamped) == 5
    # the feedback resolves against what was recorded, wire overhead included
    feedback = TransportFeedback(1, 2, numbers[0], 0, 0, [(numbers[0], 1000), (numbers[1], None)])
    results = sender.history.resolve(feedback, 0.0)
    assert [r.arrival_time for r in results] == [0.001, None]
    assert results[0].size == len(wire.rtp[0]) + WIRE_OVERHEAD
    assert results[0].kind == PacketClass.VIDEO


def test_on_a_thin_link_one_audio_packet_in_a_gap_is_numbered_and_stands_for_the_rest() -> None:
    wire = Wire()
    sender = TransportSender(wire)
    sender.configure(TWCC_EXT, None)
    sender.sparse_audio_feedback = True
    for seq in range(4):
        assert sender.send_rtp(packet(seq, size=60), PacketClass.AUDIO)
    assert sender.send_rtp(packet(4), PacketClass.PADDING)  # probes are always numbered
    assert [parse_rtp(d).seq for d in wire.rtp] == list(range(5))
    first, *blank, probe = wire.rtp
    assert first[16] == (TWCC_EXT << 4) | 1 and probe[16] == (TWCC_EXT << 4) | 1
    # the others carry padding where the number was: no element, the same length
    assert all(d[16:19] == bytes(3) and len(d) == len(first) for d in blank)
    assert parse_rtp(blank[0]).extensions.get(TWCC_EXT) is None
    time.sleep(AUDIO_FEEDBACK_GAP)
    sender.send_rtp(packet(5, size=60), PacketClass.AUDIO)
    numbers = [read_seq(d, 17) for d in (first, probe, wire.rtp[-1])]
    assert numbers == [(numbers[0] + i) & 0xFFFF for i in range(3)]
    # the next numbered audio packet counts the three left unnumbered before it
    feedback = TransportFeedback(1, 2, numbers[0], 0, 0, [(n, 1000) for n in numbers])
    sizes = [r.size for r in sender.history.resolve(feedback, 0.0)]
    one = len(first) + WIRE_OVERHEAD
    assert sizes == [one, len(probe) + WIRE_OVERHEAD, 4 * one]
    # a link with room again: every packet is numbered
    sender.sparse_audio_feedback = False
    sender.send_rtp(packet(6, size=60), PacketClass.AUDIO)
    assert read_seq(wire.rtp[-1], 17) == (numbers[-1] + 1) & 0xFFFF


def test_without_transport_cc_packets_are_left_alone() -> None:
    wire = Wire()
    sender = TransportSender(wire)
    sender.configure(None, None)
    data = packet(1)
    sender.send_rtp(data, PacketClass.AUDIO)
    assert wire.rtp == [data]


def test_a_packet_that_waited_in_the_pacer_gets_a_fresh_abs_send_time() -> None:
    wire = Wire()
    sender = TransportSender(wire)
    sender.configure(TWCC_EXT, AST_EXT)
    sender.pacer.rate_bps = 8_000  # 1 kB/s: the second packet waits
    sender.send_rtp(packet(1, 500, ast=True), PacketClass.VIDEO)
    sender.send_rtp(packet(2, 500, ast=True), PacketClass.VIDEO)
    assert len(wire.rtp) == 1
    sender.pacer.process(now=time.monotonic() + 1.0)
    assert len(wire.rtp) == 2
    assert wire.rtp[1][20:23] != b"\x00\x00\x00"  # abs-send-time written as it left
    assert wire.rtp[0][20:23] == b"\x00\x00\x00"  # the first left at once, as built


def test_payload_share_is_rtp_bits_per_wire_bit() -> None:
    wire = Wire()
    sender = TransportSender(wire)
    sender.configure(TWCC_EXT, None)  # (only a transport-feedback estimate needs it)
    assert sender.payload_share() is None
    for seq in range(10):
        sender.send_rtp(packet(seq, 100), PacketClass.AUDIO)
    size = len(packet(0, 100))
    share = sender.payload_share()
    assert share is not None and abs(share - size / (size + WIRE_OVERHEAD)) < 1e-9
    assert sender.payload_share() is None  # nothing sent since


def test_nothing_to_pace_goes_straight_to_srtp() -> None:
    """Unpaced and without transport-cc (an aiortc peer on a wide link): no pacer on the path."""
    wire = Wire()
    sender = TransportSender(wire)
    sender.configure(None, AST_EXT)
    assert sender.send_rtp == wire.send_rtp
    sender.set_rate(250_000)
    assert sender.send_rtp == sender.pacer.send_rtp
    sender.set_rate(0)
    assert sender.send_rtp == wire.send_rtp


def test_rtcp_is_never_paced() -> None:
    wire = Wire()
    sender = TransportSender(wire)
    sender.set_rate(1_000)
    sender.send_rtp(packet(1, 1000), PacketClass.VIDEO)
    sender.send_rtp(packet(2, 1000), PacketClass.VIDEO)
    assert sender.send_rtcp(b"rtcp")
    assert wire.rtcp == [b"rtcp"]
    sender.close()
