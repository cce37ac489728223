"""Unit tests for sfu/rtcp.py: build/parse round trips, cross-checked against aiortc."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtp import (
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    unpack_remb_fci,
)

from sfu.rtcp import (
    PSFB,
    RTPFB,
    Bye,
    KeyframeRequest,
    Nack,
    ReceiverReport,
    Remb,
    ReportBlock,
    RtcpError,
    SenderReport,
    build_nack,
    build_pli,
    build_remb,
    build_rr,
    build_sdes_cname,
    build_sr,
    ntp_middle,
    parse_rtcp,
)
from sfu.twcc import TransportFeedback, build_transport_feedback


def header(count: int, pt: int, body: bytes, *, padding: bool = False) -> bytes:
    assert len(body) % 4 == 0
    return struct.pack("!BBH", 0x80 | (0x20 if padding else 0) | count, pt, len(body) // 4) + body


def block(**kw: int) -> ReportBlock:
    values = {
        "ssrc": 0x01020304,
        "fraction_lost": 0,
        "packets_lost": 0,
        "highest_seq": 0,
        "jitter": 0,
        "lsr": 0,
        "dlsr": 0,
    }
    values.update(kw)
    return ReportBlock(**values)


def nack_fci(data: bytes) -> list[tuple[int, int]]:
    """The (PID, BLP) pairs of a single built NACK packet."""
    fci = data[12:]
    return [struct.unpack_from("!HH", fci, i) for i in range(0, len(fci), 4)]


# --------------------------------------------------------------------------
# Sender and receiver reports
# --------------------------------------------------------------------------


def test_sr_without_report_blocks_round_trip() -> None:
    sr = SenderReport(
        ssrc=0xDEADBEEF,
        ntp=0xE8A1B2C3_D4E5F607,
        rtp_timestamp=0x12345678,
        packet_count=1000,
        octet_count=123456,
    )
    data = build_sr(sr)
    assert len(data) == 28
    assert data[0] == 0x80
    assert data[1] == 200
    assert parse_rtcp(data) == [sr]


def test_sr_with_report_blocks_round_trip() -> None:
    reports = [
        block(
            ssrc=1,
            fraction_lost=25,
            packets_lost=300,
            highest_seq=0x0001FFFF,
            jitter=42,
            lsr=0xAABBCCDD,
            dlsr=65536,
        ),
        block(ssrc=2, fraction_lost=255, packets_lost=0x7FFFFF, highest_seq=7),
        block(ssrc=3, packets_lost=-5),
    ]
    sr = SenderReport(0x1111, 1 << 63, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, reports)
    data = build_sr(sr)
    assert data[0] & 0x1F == 3
    assert len(data) == 28 + 24 * 3
    assert parse_rtcp(data) == [sr]


@pytest.mark.parametrize("lost", [-1, -5, -(1 << 23)])
def test_report_block_negative_cumulative_loss_round_trip(lost: int) -> None:
    rr = ReceiverReport(9, [block(packets_lost=lost)])
    (parsed,) = parse_rtcp(build_rr(rr))
    assert isinstance(parsed, ReceiverReport)
    assert parsed.reports[0].packets_lost == lost


def test_report_block_negative_loss_is_24_bit_twos_complement() -> None:
    data = build_rr(ReceiverReport(9, [block(fraction_lost=0x12, packets_lost=-2)]))
    lost_word = struct.unpack_from("!I", data, 8 + 4)[0]
    assert lost_word == 0x12FFFFFE


def test_sr_parsed_by_aiortc() -> None:
    reports = [block(ssrc=77, fraction_lost=10, packets_lost=-3, highest_seq=5000, jitter=9)]
    sr = SenderReport(0xABCD, 0x0102030405060708, 90000, 12, 3456, reports)
    (packet,) = RtcpPacket.parse(build_sr(sr))
    assert isinstance(packet, RtcpSrPacket)
    assert packet.ssrc == 0xABCD
    assert packet.sender_info.ntp_timestamp == 0x0102030405060708
    assert packet.sender_info.rtp_timestamp == 90000
    assert packet.sender_info.packet_count == 12
    assert packet.sender_info.octet_count == 3456
    (info,) = packet.reports
    assert info.ssrc == 77
    assert info.fraction_lost == 10
    assert info.packets_lost == -3
    assert info.highest_sequence == 5000
    assert info.jitter == 9


def test_sr_built_by_aiortc_parses() -> None:
    theirs = RtcpSrPacket(
        ssrc=5,
        sender_info=RtcpSenderInfo(
            ntp_timestamp=0xAAAA_BBBB_CCCC_DDDD,
            rtp_timestamp=1,
            packet_count=2,
            octet_count=3,
        ),
        reports=[RtcpReceiverInfo(6, 7, -8, 9, 10, 11, 12)],
    )
    (ours,) = parse_rtcp(bytes(theirs))
    assert ours == SenderReport(
        5, 0xAAAA_BBBB_CCCC_DDDD, 1, 2, 3, [ReportBlock(6, 7, -8, 9, 10, 11, 12)]
    )


def test_rr_round_trip() -> None:
    rr = ReceiverReport(
        0x5555,
        [block(ssrc=i, fraction_lost=i, packets_lost=i * 10, highest_seq=i) for i in range(1, 4)],
    )
    data = build_rr(rr)
    assert data[1] == 201
    assert len(data) == 8 + 24 * 3
    assert parse_rtcp(data) == [rr]


def test_rr_without_blocks_round_trip() -> None:
    rr = ReceiverReport(0x5555)
    data = build_rr(rr)
    assert len(data) == 8
    assert parse_rtcp(data) == [rr]


def test_rr_parsed_by_aiortc() -> None:
    rr = ReceiverReport(0x42, [block(ssrc=1, fraction_lost=128, packets_lost=-1, lsr=5, dlsr=6)])
    (packet,) = RtcpPacket.parse(build_rr(rr))
    assert isinstance(packet, RtcpRrPacket)
    assert packet.ssrc == 0x42
    assert packet.reports[0].fraction_lost == 128
    assert packet.reports[0].packets_lost == -1
    assert packet.reports[0].lsr == 5
    assert packet.reports[0].dlsr == 6


def test_ntp_middle() -> None:
    assert ntp_middle(0x1122334455667788) == 0x33445566
    assert ntp_middle(0) == 0


# --------------------------------------------------------------------------
# NACK
# --------------------------------------------------------------------------


def test_nack_single_seq() -> None:
    data = build_nack(1, 2, [100])
    assert data[0] & 0x1F == 1
    assert data[1] == RTPFB
    assert nack_fci(data) == [(100, 0)]
    assert parse_rtcp(data) == [Nack(1, 2, [100])]


def test_nack_packs_following_seqs_into_blp() -> None:
    data = build_nack(1, 2, [100, 101, 103, 116])
    assert nack_fci(data) == [(100, 0b1000_0000_0000_0101)]
    assert parse_rtcp(data) == [Nack(1, 2, [100, 101, 103, 116])]


def test_nack_seq_17_after_pid_needs_a_new_entry() -> None:
    data = build_nack(1, 2, [100, 117])
    assert nack_fci(data) == [(100, 0), (117, 0)]


def test_nack_unsorted_and_duplicate_input() -> None:
    data = build_nack(1, 2, [105, 100, 105, 101])
    assert nack_fci(data) == [(100, 0b10001)]
    assert parse_rtcp(data)[0] == Nack(1, 2, [100, 101, 105])


def test_nack_long_list_needs_several_fci_entries() -> None:
    lost = list(range(1000, 1041))  # 41 consecutive: 3 entries of 17, 17, 7
    data = build_nack(0xA, 0xB, lost)
    entries = nack_fci(data)
    assert entries == [(1000, 0xFFFF), (1017, 0xFFFF), (1034, 0x3F)]
    (parsed,) = parse_rtcp(data)
    assert isinstance(parsed, Nack)
    assert sorted(parsed.lost) == lost


def test_nack_sparse_list() -> None:
    lost = [10, 50, 60, 70, 90, 1000, 30000]
    (parsed,) = parse_rtcp(build_nack(1, 2, lost))
    assert isinstance(parsed, Nack)
    assert sorted(parsed.lost) == lost


@pytest.mark.parametrize(
    "lost",
    [
        [65534, 65535, 0, 1],
        [65535, 0],
        [65530, 65535, 3, 10],
        [65535],
        [0, 65535],
    ],
)
def test_nack_wrap_around_near_65535(lost: list[int]) -> None:
    data = build_nack(1, 2, lost)
    (parsed,) = parse_rtcp(data)
    assert isinstance(parsed, Nack)
    assert sorted(parsed.lost) == sorted(lost)
    assert len(parsed.lost) == len(lost)
    for pid, _ in nack_fci(data):
        assert 0 <= pid <= 0xFFFF


def test_nack_blp_wraps_past_65535() -> None:
    # A BLP bit past 65535 names sequence numbers 0, 1, ...
    data = header(1, RTPFB, struct.pack("!IIHH", 1, 2, 65535, 0b11))
    assert parse_rtcp(data) == [Nack(1, 2, [65535, 0, 1])]


def test_nack_parsed_by_aiortc() -> None:
    lost = [200, 201, 205, 216, 217, 300, 301, 302]
    (packet,) = RtcpPacket.parse(build_nack(0x1234, 0x5678, lost))
    assert isinstance(packet, RtcpRtpfbPacket)
    assert packet.fmt == 1
    assert packet.ssrc == 0x1234
    assert packet.media_ssrc == 0x5678
    assert sorted(packet.lost) == lost


def test_nack_wrap_around_parsed_by_aiortc() -> None:
    lost = [65533, 65535, 0, 2]
    (packet,) = RtcpPacket.parse(build_nack(1, 2, lost))
    assert isinstance(packet, RtcpRtpfbPacket)
    assert sorted(s & 0xFFFF for s in packet.lost) == sorted(lost)


def test_nack_built_by_aiortc_parses() -> None:
    theirs = RtcpRtpfbPacket(fmt=1, ssrc=3, media_ssrc=4, lost=[10, 11, 12, 40])
    assert parse_rtcp(bytes(theirs)) == [Nack(3, 4, [10, 11, 12, 40])]


def test_nack_empty_list_has_no_fci() -> None:
    data = build_nack(1, 2, [])
    assert len(data) == 12
    assert parse_rtcp(data) == [Nack(1, 2, [])]


def test_transport_cc_feedback_is_parsed() -> None:
    data = build_transport_feedback(1, 2, 65534, 7, 64_000, [64_250, None, 65_000])
    [feedback] = parse_rtcp(data + build_pli(1, 2))[:1]
    assert isinstance(feedback, TransportFeedback)
    assert (feedback.sender_ssrc, feedback.media_ssrc, feedback.feedback_count) == (1, 2, 7)
    assert feedback.packets == [(65534, 64_250), (65535, None), (0, 65_000)]


def test_malformed_transport_cc_feedback_is_skipped() -> None:
    fci = struct.pack("!HHIHH", 1, 3, 0x000001, 0x2003, 0x0400)  # two deltas of three
    data = header(15, RTPFB, struct.pack("!II", 1, 2) + fci)
    assert parse_rtcp(data) == []


def test_transport_cc_in_compound_does_not_hide_other_packets() -> None:
    twcc = header(15, RTPFB, struct.pack("!II", 1, 2) + b"\x00" * 8)
    data = twcc + build_pli(1, 2)
    assert parse_rtcp(data) == [KeyframeRequest(1, 2, fir=False)]


# --------------------------------------------------------------------------
# PLI, FIR, REMB
# --------------------------------------------------------------------------


def test_pli_round_trip() -> None:
    data = build_pli(0xAAAA, 0xBBBB)
    assert len(data) == 12
    assert data[0] == 0x81
    assert data[1] == PSFB
    assert parse_rtcp(data) == [KeyframeRequest(0xAAAA, 0xBBBB, fir=False)]


def test_pli_parsed_by_aiortc() -> None:
    (packet,) = RtcpPacket.parse(build_pli(7, 8))
    assert isinstance(packet, RtcpPsfbPacket)
    assert (packet.fmt, packet.ssrc, packet.media_ssrc, packet.fci) == (1, 7, 8, b"")


def test_fir_names_target_ssrc_from_fci() -> None:
    fci = struct.pack("!IB3x", 0xC0FFEE, 17)
    data = header(4, PSFB, struct.pack("!II", 0x1111, 0) + fci)
    assert parse_rtcp(data) == [KeyframeRequest(0x1111, 0xC0FFEE, fir=True)]


def test_fir_with_several_entries_uses_first_target() -> None:
    fci = struct.pack("!IB3x", 0xAA, 1) + struct.pack("!IB3x", 0xBB, 2)
    data = header(4, PSFB, struct.pack("!II", 0x1111, 0) + fci)
    assert parse_rtcp(data) == [KeyframeRequest(0x1111, 0xAA, fir=True)]


def test_fir_without_fci_falls_back_to_media_ssrc() -> None:
    data = header(4, PSFB, struct.pack("!II", 0x1111, 0x2222))
    assert parse_rtcp(data) == [KeyframeRequest(0x1111, 0x2222, fir=True)]


@pytest.mark.parametrize(
    "bitrate",
    [0, 1, 30_000, (1 << 18) - 1, 1 << 18, 1_500_000, 2_500_000, 123_456_789, 10**12],
)
def test_remb_round_trip(bitrate: int) -> None:
    data = build_remb(0x99, bitrate, [0x1, 0x2])
    (parsed,) = parse_rtcp(data)
    assert isinstance(parsed, Remb)
    assert parsed.sender_ssrc == 0x99
    assert parsed.ssrcs == [1, 2]
    # 18-bit mantissa: exact below 2**18, otherwise truncated by < 1 part in 2**17.
    assert parsed.bitrate <= bitrate
    assert bitrate - parsed.bitrate <= bitrate >> 17
    if bitrate < (1 << 18):
        assert parsed.bitrate == bitrate


def test_remb_uses_exponent_for_large_bitrates() -> None:
    data = build_remb(1, 5_000_000, [])
    fci = data[12:]
    assert fci[:4] == b"REMB"
    exponent = fci[5] >> 2
    mantissa = ((fci[5] & 3) << 16) | (fci[6] << 8) | fci[7]
    assert exponent == 5
    assert mantissa < (1 << 18)
    assert mantissa << exponent == 5_000_000 >> 5 << 5


def test_remb_negative_bitrate_is_zero() -> None:
    (parsed,) = parse_rtcp(build_remb(1, -100, []))
    assert isinstance(parsed, Remb)
    assert parsed.bitrate == 0


def test_remb_media_ssrc_is_zero_and_fmt_15() -> None:
    data = build_remb(1, 1000, [5])
    assert data[0] & 0x1F == 15
    assert data[1] == PSFB
    assert struct.unpack_from("!I", data, 8)[0] == 0


@pytest.mark.parametrize("bitrate", [64_000, 1_000_000, 123_456_789, 10**12])
def test_remb_parsed_by_aiortc(bitrate: int) -> None:
    ours = parse_rtcp(build_remb(0x77, bitrate, [0xA, 0xB, 0xC]))[0]
    assert isinstance(ours, Remb)
    (packet,) = RtcpPacket.parse(build_remb(0x77, bitrate, [0xA, 0xB, 0xC]))
    assert isinstance(packet, RtcpPsfbPacket)
    assert packet.fmt == 15
    assert packet.ssrc == 0x77
    their_bitrate, their_ssrcs = unpack_remb_fci(packet.fci)
    assert their_bitrate == ours.bitrate
    assert their_ssrcs == [0xA, 0xB, 0xC]


def test_remb_with_ssrc_count_beyond_fci_keeps_only_present_ssrcs() -> None:
    fci = b"REMB" + bytes([3, 0, 0x03, 0xE8]) + struct.pack("!I", 0x42)
    data = header(15, PSFB, struct.pack("!II", 1, 0) + fci)
    assert parse_rtcp(data) == [Remb(1, 1000, [0x42])]


def test_psfb_app_that_is_not_remb_is_ignored() -> None:
    data = header(15, PSFB, struct.pack("!II", 1, 0) + b"GOOG\x00\x00\x00\x00")
    assert parse_rtcp(data) == []


# --------------------------------------------------------------------------
# SDES, BYE, compound
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cname", ["", "a", "ab", "abc", "abcd", "{8d9e-1234}", "x" * 300])
def test_sdes_cname_parsed_by_aiortc(cname: str) -> None:
    data = build_sdes_cname(0x1234, cname)
    assert len(data) % 4 == 0
    (packet,) = RtcpPacket.parse(data)
    assert isinstance(packet, RtcpSdesPacket)
    (chunk,) = packet.chunks
    assert chunk.ssrc == 0x1234
    assert chunk.items == [(1, cname.encode()[:255])]


def test_sdes_is_skipped_by_parse_rtcp() -> None:
    assert parse_rtcp(build_sdes_cname(1, "cname")) == []


def test_bye_sources() -> None:
    data = header(2, 203, struct.pack("!II", 0xA, 0xB))
    assert parse_rtcp(data) == [Bye([0xA, 0xB])]


def test_bye_count_larger_than_body_is_clamped() -> None:
    data = header(3, 203, struct.pack("!I", 0xA))
    assert parse_rtcp(data) == [Bye([0xA])]


def test_compound_sr_sdes_pli() -> None:
    sr = SenderReport(0x10, 0x1_0000_0002, 3, 4, 5, [block(ssrc=0x20, packets_lost=-1)])
    data = build_sr(sr) + build_sdes_cname(0x10, "cname-xyz") + build_pli(0x10, 0x20)
    assert parse_rtcp(data) == [sr, KeyframeRequest(0x10, 0x20, fir=False)]
    theirs = RtcpPacket.parse(data)
    assert [type(p) for p in theirs] == [RtcpSrPacket, RtcpSdesPacket, RtcpPsfbPacket]


def test_compound_rr_sdes_nack_remb() -> None:
    rr = ReceiverReport(1, [block(ssrc=2)])
    data = (
        build_rr(rr)
        + build_sdes_cname(1, "c")
        + build_nack(1, 2, [5, 6])
        + build_remb(1, 800_000, [2])
    )
    records = parse_rtcp(data)
    assert records[0] == rr
    assert records[1] == Nack(1, 2, [5, 6])
    assert isinstance(records[2], Remb)
    assert records[2].ssrcs == [2]
    assert len(records) == 3


def test_unknown_packet_type_is_skipped() -> None:
    app = header(0, 204, b"name" + b"data")  # APP
    xr = header(0, 207, struct.pack("!I", 1))  # XR
    assert parse_rtcp(app + xr + build_pli(1, 2)) == [KeyframeRequest(1, 2, fir=False)]


def test_padding_is_removed_before_parsing() -> None:
    body = struct.pack("!II", 3, 4) + struct.pack("!HH", 50, 1) + b"\x00\x00\x00\x04"
    data = header(1, RTPFB, body, padding=True)
    assert parse_rtcp(data) == [Nack(3, 4, [50, 51])]


def test_empty_datagram_gives_no_records() -> None:
    assert parse_rtcp(b"") == []


# --------------------------------------------------------------------------
# invalid / truncated
# --------------------------------------------------------------------------


def test_wrong_version_raises() -> None:
    data = bytearray(build_pli(1, 2))
    data[0] = (data[0] & 0x3F) | 0x40  # version 1
    with pytest.raises(RtcpError):
        parse_rtcp(bytes(data))


def test_length_beyond_datagram_raises() -> None:
    with pytest.raises(RtcpError):
        parse_rtcp(build_pli(1, 2)[:-1])


def test_truncated_second_packet_in_compound_raises() -> None:
    with pytest.raises(RtcpError):
        parse_rtcp(build_rr(ReceiverReport(1)) + build_pli(1, 2)[:8])


def test_sr_shorter_than_sender_info_raises() -> None:
    with pytest.raises(RtcpError):
        parse_rtcp(header(0, 200, b"\x00" * 20))


def test_sr_with_missing_report_block_raises() -> None:
    sr = build_sr(SenderReport(1, 2, 3, 4, 5, [block()]))
    body = sr[4:28]  # sender info only, but count still says 1
    with pytest.raises(RtcpError):
        parse_rtcp(header(1, 200, body))


def test_rr_with_truncated_report_block_raises() -> None:
    with pytest.raises(RtcpError):
        parse_rtcp(header(1, 201, struct.pack("!I", 1) + b"\x00" * 20))


def test_rr_without_ssrc_raises() -> None:
    with pytest.raises(RtcpError):
        parse_rtcp(header(0, 201, b""))


@pytest.mark.parametrize(("pt", "fmt"), [(RTPFB, 1), (PSFB, 1), (PSFB, 4), (PSFB, 15)])
def test_feedback_without_ssrcs_raises(pt: int, fmt: int) -> None:
    with pytest.raises(RtcpError):
        parse_rtcp(header(fmt, pt, struct.pack("!I", 1)))


def test_rtcp_error_is_a_value_error() -> None:
    assert issubclass(RtcpError, ValueError)
