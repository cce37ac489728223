"""A Consumer on a rig, without a network, for the consumer unit tests.

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

from sfu.consumer import Consumer, ConsumerState, OutboundParams
from sfu.media import CodecInfo, MediaKind, PacketClass, Source
from sfu.producer import Producer
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

    def send_rtp(self, data: bytes, cls: PacketClass = PacketClass.VIDEO) -> bool:
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
