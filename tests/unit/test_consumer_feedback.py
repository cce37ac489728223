"""Unit tests for sfu/consumer.py: NACKs, sender reports and padding.

See tests/unit/consumer_support.py for the rig.
"""

from __future__ import annotations

import struct

import pytest

from sfu.rtcp import SenderReport, parse_rtcp
from sfu.rtp import parse_rtp, seq_delta
from tests.unit.consumer_support import (
    AST_EXT,
    LAYER_SSRCS,
    MID_EXT,
    OUT_RTX_PT,
    OUT_RTX_SSRC,
    OUT_SSRC,
    desc_of,
    make_rig,
)

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
