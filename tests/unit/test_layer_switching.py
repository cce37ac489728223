"""Unit tests for sfu/consumer.py layer switching, without a network.

A real Producer (three simulcast layers) and a Consumer bound to a sink
that keeps the bytes it is given; the publisher is simulated packet by
packet with VP8 payload descriptors (15-bit PictureID, TL0PICIDX, TID).
Everything is checked on the output bytes, parsed back.
"""

from __future__ import annotations

import itertools
import struct
import time
from dataclasses import dataclass, field

import pytest

from sfu.consumer import Consumer, ConsumerState, OutboundParams
from sfu.media import CodecInfo, MediaKind, Source
from sfu.producer import Producer
from sfu.rtcp import SenderReport, parse_rtcp
from sfu.rtp import RtpPacket, build_header, parse_rtp, seq_delta
from sfu.vp8 import Vp8Descriptor, parse_descriptor

VP8_PT = 96
RTX_PT = 97
LAYER_SSRCS = (0x1111, 0x2222, 0x3333)
SIZES = ((320, 180), (640, 360), (1280, 720))
OUT_SSRC = 0xAAAA0001
OUT_RTX_SSRC = 0xAAAA0002
OUT_PT = 100
OUT_RTX_PT = 101
MID_EXT = 3
AST_EXT = 5
TEMPORAL_PATTERN = (0, 2, 1, 2)  # libvpx with three temporal layers


class Sink:
    """A subscriber transport that keeps everything."""

    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []

    def send_rtp(self, data: bytes) -> bool:
        self.rtp.append(data)
        return True

    def send_rtcp(self, data: bytes) -> bool:
        self.rtcp.append(data)
        return True

    def take(self) -> list[RtpPacket]:
        packets = [parse_rtp(data) for data in self.rtp]
        self.rtp.clear()
        return packets


@dataclass
class Publisher:
    """One simulcast layer as a browser sends it: own SSRC, seq, timestamps, picture ids."""

    producer: Producer
    layer: int
    seq: int
    timestamp: int
    picture_id: int
    tl0: int
    sent: list[RtpPacket] = field(default_factory=list)

    def picture(
        self,
        tid: int = 0,
        *,
        keyframe: bool = False,
        sync: bool = False,
        packets: int = 1,
        deliver: bool = True,
    ) -> list[RtpPacket]:
        """The next picture (TID ``tid``) in ``packets`` packets, delivered to the Producer."""
        self.timestamp = (self.timestamp + 3000) & 0xFFFFFFFF
        self.picture_id = (self.picture_id + 1) & 0x7FFF
        if tid == 0:
            self.tl0 = (self.tl0 + 1) & 0xFF
        width, height = SIZES[self.layer]
        body = (
            b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width, height)
            if keyframe
            else b"\x31\x02\x00"
        )
        out = []
        for i in range(packets):
            start = i == 0
            descriptor = bytes(
                [
                    0x90 if start else 0x80,
                    0xE0,
                    0x80 | self.picture_id >> 8,
                    self.picture_id & 0xFF,
                    self.tl0,
                    tid << 6 | (0x20 if sync else 0),
                ]
            )
            payload = descriptor + (body if start else b"") + bytes([self.layer, i]) * 20
            out.append(self.packet(payload, marker=i == packets - 1))
        if deliver:
            for packet in out:
                self.deliver(packet)
        return out

    def packet(self, payload: bytes, *, marker: bool) -> RtpPacket:
        header = build_header(
            marker, VP8_PT, self.seq, self.timestamp, LAYER_SSRCS[self.layer], b""
        )
        self.seq = (self.seq + 1) & 0xFFFF
        return parse_rtp(header + payload)

    def deliver(self, packet: RtpPacket) -> None:
        # a fresh parse: the Producer annotates (and may rewrite) the packet object
        data = build_header(
            packet.marker, packet.payload_type, packet.seq, packet.timestamp, packet.ssrc, b""
        )
        copy = parse_rtp(data + packet.payload)
        self.sent.append(copy)
        self.producer.receive_rtp(copy, int(time.monotonic() * 1000), len(data + packet.payload))

    def pattern(self, pictures: int, start: int = 1) -> list[int]:
        """TIDs of the next ``pictures`` pictures after a keyframe (TEMPORAL_PATTERN)."""
        return [TEMPORAL_PATTERN[(start + i) % 4] for i in range(pictures)]


@dataclass
class Rig:
    producer: Producer
    consumer: Consumer
    sink: Sink
    requests: list[int]
    layers: list[Publisher]


def make_rig(*, nack: bool = True, rtx: bool = True, extensions: bool = False) -> Rig:
    requests: list[int] = []
    codec = CodecInfo("video/VP8", 90_000, VP8_PT, rtx_payload_type=RTX_PT, nack=True)
    producer = Producer(
        "p1",
        "alice",
        MediaKind.VIDEO,
        Source.CAMERA,
        codec,
        "0",
        requests.append,
        keyframe_interval=0.0,
        rids=["q", "h", "f"],
    )
    for ssrc, layer in zip(LAYER_SSRCS, producer.layers, strict=True):
        producer.bind_ssrc(ssrc, layer)
    consumer = Consumer("c1", producer, "bob")
    producer.add_consumer(consumer)
    sink = Sink()
    consumer.bind(
        OutboundParams(
            mid="1",
            ssrc=OUT_SSRC,
            rtx_ssrc=OUT_RTX_SSRC if rtx else None,
            payload_type=OUT_PT,
            rtx_payload_type=OUT_RTX_PT if rtx else None,
            mid_ext=MID_EXT if extensions else None,
            abs_send_time_ext=AST_EXT if extensions else None,
            audio_level_ext=None,
            nack=nack,
            cname="bob",
        ),
        sink,
    )
    # independent numbering per layer, far apart, near their wraps
    layers = [
        Publisher(producer, 0, 65_500, 0xFFFF_0000, 32_700, 250),
        Publisher(producer, 1, 20_000, 1_000_000, 5_000, 17),
        Publisher(producer, 2, 40_000, 3_000_000_000, 12_345, 99),
    ]
    return Rig(producer, consumer, sink, requests, layers)


def state(consumer: Consumer) -> ConsumerState:
    """Not narrowed by mypy across calls that change it."""
    return consumer.state


def desc_of(packet: RtpPacket) -> Vp8Descriptor:
    desc = parse_descriptor(packet.payload)
    assert desc is not None
    return desc


def assert_contiguous(packets: list[RtpPacket]) -> None:
    seqs = [p.seq for p in packets]
    assert all(seq_delta(b, a) == 1 for a, b in itertools.pairwise(seqs)), seqs
    stamps = [p.timestamp for p in packets]
    assert all((b - a) & 0xFFFFFFFF < 0x8000_0000 for a, b in itertools.pairwise(stamps))
    assert {p.ssrc for p in packets} == {OUT_SSRC}
    assert {p.payload_type for p in packets} == {OUT_PT}


def picture_starts(packets: list[RtpPacket]) -> list[Vp8Descriptor]:
    return [d for d in map(desc_of, packets) if d.start]


def assert_pictures_continue(packets: list[RtpPacket]) -> None:
    """PictureIDs +1 per picture; TL0PICIDX +1 per TL0 picture, same otherwise."""
    starts = picture_starts(packets)
    for before, after in itertools.pairwise(starts):
        assert before.picture_id is not None and after.picture_id is not None
        assert after.picture_id == (before.picture_id + 1) & 0x7FFF, (before, after)
        assert before.tl0 is not None and after.tl0 is not None
        expected_tl0 = (before.tl0 + 1) & 0xFF if after.tid == 0 else before.tl0
        assert after.tl0 == expected_tl0, (before, after)


# --------------------------------------------------------------------------
# starting
# --------------------------------------------------------------------------


async def test_bind_asks_the_target_layer_for_a_keyframe() -> None:
    rig = make_rig()
    assert state(rig.consumer) is ConsumerState.WAITING_KEYFRAME
    assert rig.requests == [LAYER_SSRCS[0]]


async def test_starts_only_at_a_keyframe_of_the_target_layer() -> None:
    rig = make_rig()
    q, h, f = rig.layers
    q.picture(0)
    q.picture(2)
    h.picture(0, keyframe=True)
    f.picture(0, keyframe=True)
    assert rig.sink.rtp == []
    assert state(rig.consumer) is ConsumerState.WAITING_KEYFRAME
    key = q.picture(0, keyframe=True, packets=3)
    out = rig.sink.take()
    assert len(out) == 3
    assert state(rig.consumer) is ConsumerState.FORWARDING
    assert rig.consumer.current_layer == 0
    first = desc_of(out[0])
    assert first.keyframe
    # the first picture keeps the publisher's numbering
    assert first.picture_id == q.picture_id and first.tl0 == q.tl0
    assert [p.payload for p in out] == [p.payload for p in key]
    assert [p.marker for p in out] == [False, False, True]
    assert_contiguous(out)


async def test_first_packets_are_not_numbered_by_the_layer() -> None:
    rig = make_rig()
    rig.layers[0].picture(0, keyframe=True)
    (out,) = rig.sink.take()
    assert out.ssrc == OUT_SSRC and out.payload_type == OUT_PT
    assert out.seq < 0x8000  # below 2^15: SRTP ROC safety


# --------------------------------------------------------------------------
# switching spatial layers
# --------------------------------------------------------------------------


async def test_switch_up_at_a_keyframe_of_the_new_layer() -> None:
    rig = make_rig()
    q, h, _ = rig.layers
    q.picture(0, keyframe=True, packets=2)
    for _ in range(3):
        q.picture(0, packets=2)
    rig.requests.clear()
    rig.consumer.set_target(1, 3)
    assert rig.requests == [LAYER_SSRCS[1]]
    # until layer 1 has a keyframe, layer 0 goes on and layer 1 is not sent
    h.picture(0, packets=2)
    q.picture(0, packets=2)
    assert rig.consumer.current_layer == 0
    h.picture(0, keyframe=True, packets=3)
    assert rig.consumer.current_layer == 1
    assert rig.consumer.layer_switches == 1
    q.picture(0, packets=2)  # the old layer is no longer sent
    for _ in range(3):
        h.picture(0, packets=2)
    out = rig.sink.take()
    assert len(out) == 2 * 5 + 3 + 2 * 3
    assert_contiguous(out)
    assert_pictures_continue(out)
    layers_out = [p.payload[-2] for p in out]  # the filler names the layer
    assert layers_out == [0] * 10 + [1] * 9
    keyframes = [d.keyframe for d in picture_starts(out)]
    assert keyframes == [True, False, False, False, False, True, False, False, False]


async def test_switch_down_and_up_again_keeps_everything_continuous() -> None:
    rig = make_rig()
    q, h, f = rig.layers
    f.picture(0, keyframe=True)
    rig.consumer.set_target(2, 3)
    f.picture(0, keyframe=True, packets=2)
    for tid in f.pattern(6):
        f.picture(tid, packets=2)
    rig.consumer.set_target(0, 3)
    for tid in f.pattern(3, start=7):
        f.picture(tid)
    q.picture(0, keyframe=True)
    for tid in q.pattern(5):
        q.picture(tid)
    rig.consumer.set_target(1, 3)
    h.picture(0, keyframe=True, packets=4)
    for tid in h.pattern(5):
        h.picture(tid, packets=2)
    out = rig.sink.take()
    assert rig.consumer.layer_switches == 2
    assert_contiguous(out)
    assert_pictures_continue(out)
    assert [p.payload[-2] for p in out].count(0) == 6


async def test_timestamps_keep_moving_forward_across_a_switch() -> None:
    rig = make_rig()
    q, h, _ = rig.layers
    q.picture(0, keyframe=True)
    q.picture(0)
    rig.consumer.set_target(1, 3)
    h.picture(0, keyframe=True)
    h.picture(0)
    out = rig.sink.take()
    stamps = [p.timestamp for p in out]
    assert (stamps[1] - stamps[0]) & 0xFFFFFFFF == 3000
    assert 0 < (stamps[2] - stamps[1]) & 0xFFFFFFFF < 90_000  # a real, short gap
    assert (stamps[3] - stamps[2]) & 0xFFFFFFFF == 3000


async def test_keyframe_of_another_layer_than_the_target_does_not_switch() -> None:
    rig = make_rig()
    q, h, f = rig.layers
    q.picture(0, keyframe=True)
    rig.consumer.set_target(1, 3)
    f.picture(0, keyframe=True)
    assert rig.consumer.current_layer == 0
    rig.consumer.set_target(0, 3)  # changed its mind before layer 1 had a keyframe
    h.picture(0, keyframe=True)
    assert rig.consumer.current_layer == 0
    assert rig.consumer.layer_switches == 0


async def test_a_keyframe_request_goes_to_the_layer_being_forwarded_or_awaited() -> None:
    rig = make_rig()
    rig.requests.clear()
    rig.consumer.set_target(2, 3)  # waiting: ask the new target at once
    assert rig.requests == [LAYER_SSRCS[2]]
    rig.consumer.handle_keyframe_request()
    assert rig.requests[-1] == LAYER_SSRCS[2]
    rig.layers[2].picture(0, keyframe=True)
    rig.consumer.handle_keyframe_request()
    assert rig.requests[-1] == LAYER_SSRCS[2]
    rig.consumer.set_target(0, 3)
    assert rig.requests[-1] == LAYER_SSRCS[0]
    rig.consumer.set_target(0, 1)  # same layer: no new request
    assert len(rig.requests) == 4


# --------------------------------------------------------------------------
# temporal layers
# --------------------------------------------------------------------------


@pytest.mark.parametrize("temporal", [0, 1])
async def test_dropping_temporal_layers_closes_the_holes(temporal: int) -> None:
    rig = make_rig()
    q = rig.layers[0]
    rig.consumer.set_target(0, temporal)
    q.picture(0, keyframe=True, packets=2)
    tids = q.pattern(16)
    for tid in tids:
        q.picture(tid, packets=2)
    out = rig.sink.take()
    starts = picture_starts(out)
    assert [d.tid for d in starts] == [0] + [t for t in tids if t <= temporal]
    assert len(out) == 2 * len(starts)
    assert_contiguous(out)
    assert_pictures_continue(out)


async def test_lowering_temporal_applies_at_the_next_picture() -> None:
    rig = make_rig()
    q = rig.layers[0]
    q.picture(0, keyframe=True)
    for tid in q.pattern(4):
        q.picture(tid, packets=2)
    rig.consumer.set_target(0, 0)
    for tid in q.pattern(8, start=5):
        q.picture(tid, packets=2)
    out = rig.sink.take()
    assert [d.tid for d in picture_starts(out)] == [0, 2, 1, 2, 0, 0, 0]
    assert_contiguous(out)
    assert_pictures_continue(out)


async def test_raising_temporal_waits_for_a_tl0_picture() -> None:
    rig = make_rig()
    q = rig.layers[0]
    rig.consumer.set_target(0, 0)
    q.picture(0, keyframe=True)
    q.picture(2)
    rig.consumer.set_target(0, 2)
    q.picture(1)  # no sync: depends on a picture that was not sent
    q.picture(2)
    assert rig.consumer.temporal == 0
    q.picture(0)
    assert rig.consumer.temporal == 2
    q.picture(2)
    q.picture(1)
    out = rig.sink.take()
    assert [d.tid for d in picture_starts(out)] == [0, 0, 2, 1]
    assert_contiguous(out)
    assert_pictures_continue(out)


async def test_raising_temporal_at_a_layer_sync_picture() -> None:
    rig = make_rig()
    q = rig.layers[0]
    rig.consumer.set_target(0, 0)
    q.picture(0, keyframe=True)
    q.picture(2)
    rig.consumer.set_target(0, 1)
    q.picture(1, sync=True, packets=2)  # depends on TL0 only: can be sent
    q.picture(2)
    q.picture(0)
    q.picture(2)
    q.picture(1)
    out = rig.sink.take()
    assert rig.consumer.temporal == 1
    assert [d.tid for d in picture_starts(out)] == [0, 1, 0, 1]
    assert_contiguous(out)
    assert_pictures_continue(out)


async def test_temporal_drops_then_a_switch_continue_the_numbering() -> None:
    rig = make_rig()
    q, h, _ = rig.layers
    rig.consumer.set_target(0, 0)
    q.picture(0, keyframe=True)
    for tid in q.pattern(7):
        q.picture(tid, packets=2)  # ends with a dropped TID 2 picture
    rig.consumer.set_target(1, 1)
    h.picture(0, keyframe=True, packets=2)
    for tid in h.pattern(8):
        h.picture(tid)
    out = rig.sink.take()
    assert [d.tid for d in picture_starts(out)] == [0, 0, 0, 1, 0, 1, 0]  # two from q, five from h
    assert_contiguous(out)
    assert_pictures_continue(out)


async def test_reordered_packet_after_a_dropped_picture_gets_its_number() -> None:
    rig = make_rig()
    q = rig.layers[0]
    rig.consumer.set_target(0, 1)
    q.picture(0, keyframe=True)
    late = q.picture(0, packets=3, deliver=False)
    q.deliver(late[0])
    q.deliver(late[2])  # late[1] is delayed
    q.picture(2, packets=2)  # dropped
    q.deliver(late[1])
    q.picture(1)
    key, first, third, second, last = rig.sink.take()
    assert [p.seq for p in (first, second, third, last)] == [
        (key.seq + i) & 0xFFFF for i in (1, 2, 3, 4)
    ]
    assert second.payload == late[1].payload
    assert_pictures_continue([key, first, second, third, last])


# --------------------------------------------------------------------------
# NACK, sender reports, padding
# --------------------------------------------------------------------------


async def test_nack_after_a_switch_retransmits_the_rewritten_packet_over_rtx() -> None:
    rig = make_rig()
    q, h, _ = rig.layers
    q.picture(0, keyframe=True, packets=2)
    q.picture(0)
    rig.consumer.set_target(1, 3)
    h.picture(0, keyframe=True, packets=2)
    h.picture(0, packets=2)
    out = rig.sink.take()
    before, after = out[1], out[4]
    assert desc_of(after).picture_id != h.picture_id  # it was rewritten
    rig.consumer.handle_nack([after.seq, before.seq, (after.seq + 100) & 0xFFFF])
    rtx = rig.sink.take()
    assert len(rtx) == 2
    assert rig.consumer.counters.retransmissions == 2
    for sent, original in zip(rtx, (after, before), strict=True):
        assert sent.ssrc == OUT_RTX_SSRC
        assert sent.payload_type == OUT_RTX_PT
        assert sent.timestamp == original.timestamp
        assert sent.marker == original.marker
        assert struct.unpack("!H", sent.payload[:2])[0] == original.seq
        assert sent.payload[2:] == original.payload
    assert seq_delta(rtx[1].seq, rtx[0].seq) == 1


async def test_nack_without_rtx_resends_on_the_media_stream() -> None:
    rig = make_rig(rtx=False)
    q = rig.layers[0]
    q.picture(0, keyframe=True, packets=3)
    out = rig.sink.take()
    rig.consumer.handle_nack([out[1].seq])
    (again,) = rig.sink.take()
    assert (again.ssrc, again.seq, again.payload) == (OUT_SSRC, out[1].seq, out[1].payload)


async def test_nack_of_a_dropped_temporal_layer_number_sends_nothing() -> None:
    rig = make_rig()
    q = rig.layers[0]
    rig.consumer.set_target(0, 0)
    q.picture(0, keyframe=True)
    q.picture(2)
    q.picture(0)
    out = rig.sink.take()
    assert len(out) == 2
    rig.consumer.handle_nack([(out[-1].seq + 1) & 0xFFFF])
    assert rig.sink.rtp == []


async def test_without_nack_there_is_no_retransmission_buffer() -> None:
    rig = make_rig(nack=False)
    rig.layers[0].picture(0, keyframe=True)
    (out,) = rig.sink.take()
    rig.consumer.handle_nack([out.seq])
    assert rig.sink.rtp == []
    assert rig.consumer.counters.nacks == 1


async def test_sender_report_only_for_the_layer_being_forwarded() -> None:
    rig = make_rig()
    q, h, _ = rig.layers
    q.picture(0, keyframe=True)
    rig.consumer.set_target(1, 3)
    h.picture(0, keyframe=True)
    h.picture(0)
    out = rig.sink.take()
    ntp = 0x0123456789ABCDEF
    rig.producer.receive_sender_report(SenderReport(LAYER_SSRCS[0], ntp, q.timestamp, 9, 999))
    assert rig.sink.rtcp == []
    rig.producer.receive_sender_report(SenderReport(LAYER_SSRCS[2], ntp, 1, 9, 999))
    assert rig.sink.rtcp == []
    rig.producer.receive_sender_report(SenderReport(LAYER_SSRCS[1], ntp, h.timestamp, 9, 999))
    (data,) = rig.sink.rtcp
    report = parse_rtcp(data)[0]
    assert isinstance(report, SenderReport)
    assert report.ssrc == OUT_SSRC
    assert report.ntp == ntp
    assert report.rtp_timestamp == out[-1].timestamp  # the layer's clock, translated
    assert report.packet_count == len(out)


async def test_no_sender_report_before_forwarding() -> None:
    rig = make_rig()
    rig.producer.receive_sender_report(SenderReport(LAYER_SSRCS[0], 1, 2, 3, 4))
    assert rig.sink.rtcp == []


@pytest.mark.parametrize("extensions", [False, True])
async def test_padding_packets(extensions: bool) -> None:
    rig = make_rig(extensions=extensions)
    rig.layers[0].picture(0, keyframe=True)
    rig.sink.take()
    assert rig.consumer.can_pad
    assert rig.consumer.send_padding(3, 200) == 3
    packets = list(rig.sink.rtp)
    parsed = rig.sink.take()
    first_seq = parsed[0].seq
    for i, (data, packet) in enumerate(zip(packets, parsed, strict=True)):
        assert data[0] & 0x20  # P
        assert data[-1] == 200
        assert packet.payload == b""
        assert packet.ssrc == OUT_RTX_SSRC
        assert packet.payload_type == OUT_RTX_PT
        assert not packet.marker
        assert packet.seq == (first_seq + i) & 0xFFFF
        if extensions:
            assert packet.extensions[MID_EXT] == b"1"
            assert len(packet.extensions[AST_EXT]) == 3
        else:
            assert packet.extensions == {}


@pytest.mark.parametrize(("asked", "size"), [(0, 1), (1, 1), (255, 255), (1000, 255)])
async def test_padding_size_is_what_one_packet_can_carry(asked: int, size: int) -> None:
    rig = make_rig()
    assert rig.consumer.send_padding(1, asked) == 1
    (data,) = rig.sink.rtp
    assert data[-1] == size
    assert len(data) == 12 + size
    assert parse_rtp(data).payload == b""


async def test_padding_shares_the_rtx_sequence_with_retransmissions() -> None:
    rig = make_rig()
    rig.layers[0].picture(0, keyframe=True)
    (out,) = rig.sink.take()
    rig.consumer.send_padding(1, 10)
    rig.consumer.handle_nack([out.seq])
    rig.consumer.send_padding(1, 10)
    seqs = [p.seq for p in rig.sink.take()]
    assert seqs == [seqs[0], (seqs[0] + 1) & 0xFFFF, (seqs[0] + 2) & 0xFFFF]


async def test_no_padding_without_rtx() -> None:
    rig = make_rig(rtx=False)
    assert not rig.consumer.can_pad
    assert rig.consumer.send_padding(5, 100) == 0
    assert rig.sink.rtp == []


# --------------------------------------------------------------------------
# pause and resume
# --------------------------------------------------------------------------


async def test_resume_restarts_at_a_keyframe_and_continues_the_numbering() -> None:
    rig = make_rig()
    q = rig.layers[0]
    q.picture(0, keyframe=True)
    q.picture(0)
    rig.consumer.pause("bandwidth")
    q.picture(0)
    assert state(rig.consumer) is ConsumerState.PAUSED
    rig.requests.clear()
    rig.consumer.resume("bandwidth")
    assert state(rig.consumer) is ConsumerState.WAITING_KEYFRAME
    assert rig.requests == [LAYER_SSRCS[0]]
    q.picture(0)
    q.picture(0, keyframe=True)
    q.picture(0)
    out = rig.sink.take()
    assert len(out) == 4
    assert_contiguous(out)
    assert_pictures_continue(out)


# --------------------------------------------------------------------------
# long runs
# --------------------------------------------------------------------------


async def test_tl0picidx_stays_continuous_long_after_a_switch() -> None:
    rig = make_rig()
    q, h, _ = rig.layers
    q.picture(0, keyframe=True)
    rig.consumer.set_target(1, 3)
    h.picture(0, keyframe=True)
    for _ in range(200):
        h.picture(0)
    out = rig.sink.take()
    assert len(out) == 202
    assert_pictures_continue(out)


async def test_forwards_more_than_32768_packets_without_a_drop() -> None:
    rig = make_rig(nack=False)
    q = rig.layers[0]
    q.picture(0, keyframe=True)
    rig.sink.take()
    # the rest of that picture, packet after packet (straight to the Consumer: fast)
    descriptor = bytes([0x80, 0xE0, 0x80 | q.picture_id >> 8, q.picture_id & 0xFF, q.tl0, 0])
    packet = q.packet(descriptor + b"rest", marker=False)
    packet.vp8 = parse_descriptor(packet.payload)
    for i in range(0x8000 + 10):
        packet.seq = (q.seq + i) & 0xFFFF
        rig.consumer.forward(packet, b"\x00\x00\x00")
    assert len(rig.sink.rtp) == 0x8000 + 10
