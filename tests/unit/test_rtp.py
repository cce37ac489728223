"""Unit tests for sfu/rtp.py: RTP parsing and header building.

Codec keyframe detection (VP8, H.264) is in test_rtp_keyframes.py.
"""

from __future__ import annotations

import struct

import pytest

from sfu.rtp import (
    RtpError,
    RtpPacket,
    abs_send_time,
    build_header,
    extension_block,
    is_rtcp,
    parse_rtp,
    rtx_unwrap,
    seq_delta,
)


def fixed_header(
    *,
    padding: bool = False,
    extension: bool = False,
    csrc_count: int = 0,
    marker: bool = False,
    payload_type: int = 96,
    seq: int = 1000,
    timestamp: int = 123456,
    ssrc: int = 0x11223344,
    version: int = 2,
) -> bytes:
    b0 = (version << 6) | (0x20 if padding else 0) | (0x10 if extension else 0) | csrc_count
    b1 = (0x80 if marker else 0) | payload_type
    return struct.pack("!BBHII", b0, b1, seq, timestamp, ssrc)


def one_byte_ext(elements: list[tuple[int, bytes]], pad_to_words: int | None = None) -> bytes:
    body = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in elements)
    body += b"\x00" * (-len(body) % 4)
    if pad_to_words is not None:
        body += b"\x00" * (4 * pad_to_words - len(body))
    return struct.pack("!HH", 0xBEDE, len(body) // 4) + body


def two_byte_ext(elements: list[tuple[int, bytes]], appbits: int = 0) -> bytes:
    body = b"".join(bytes([i, len(v)]) + v for i, v in elements)
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!HH", 0x1000 | appbits, len(body) // 4) + body


# --------------------------------------------------------------------------
# parse_rtp: fixed header
# --------------------------------------------------------------------------


def test_parse_fixed_header_fields() -> None:
    data = fixed_header(marker=True, payload_type=111, seq=0xABCD, timestamp=0xDEADBEEF, ssrc=7)
    packet = parse_rtp(data + b"opus-frame")
    assert packet.marker is True
    assert packet.payload_type == 111
    assert packet.seq == 0xABCD
    assert packet.timestamp == 0xDEADBEEF
    assert packet.ssrc == 7
    assert packet.extensions == {}
    assert packet.payload == b"opus-frame"
    assert packet.keyframe is False


def test_parse_marker_clear_and_max_payload_type() -> None:
    packet = parse_rtp(fixed_header(marker=False, payload_type=127) + b"x")
    assert packet.marker is False
    assert packet.payload_type == 127


def test_parse_header_only_packet_has_empty_payload() -> None:
    packet = parse_rtp(fixed_header())
    assert packet.payload == b""


def test_parse_skips_csrc_list() -> None:
    csrcs = struct.pack("!III", 1, 2, 3)
    packet = parse_rtp(fixed_header(csrc_count=3) + csrcs + b"payload")
    assert packet.payload == b"payload"
    assert packet.ssrc == 0x11223344


def test_parse_csrc_list_followed_by_extension() -> None:
    data = fixed_header(csrc_count=2, extension=True) + struct.pack("!II", 9, 10)
    data += one_byte_ext([(3, b"\x01\x02")]) + b"media"
    packet = parse_rtp(data)
    assert packet.extensions == {3: b"\x01\x02"}
    assert packet.payload == b"media"


@pytest.mark.parametrize("size", [0, 1, 11])
def test_parse_shorter_than_fixed_header_raises(size: int) -> None:
    with pytest.raises(RtpError):
        parse_rtp(fixed_header()[:size])


@pytest.mark.parametrize("version", [0, 1, 3])
def test_parse_wrong_version_raises(version: int) -> None:
    with pytest.raises(RtpError):
        parse_rtp(fixed_header(version=version) + b"payload")


def test_rtp_error_is_a_value_error() -> None:
    assert issubclass(RtpError, ValueError)


def test_parse_truncated_csrc_list_raises() -> None:
    # CC=15 announces 60 bytes of CSRCs but the datagram is only the 12-byte header.
    with pytest.raises(RtpError):
        parse_rtp(fixed_header(csrc_count=15))


def test_parse_truncated_csrc_list_with_extension_bit_raises() -> None:
    with pytest.raises(RtpError):
        parse_rtp(fixed_header(csrc_count=4, extension=True) + b"\x00" * 8)


# --------------------------------------------------------------------------
# parse_rtp: header extensions
# --------------------------------------------------------------------------


def test_parse_one_byte_extensions() -> None:
    ext = one_byte_ext([(1, b"0"), (3, b"\x12\x34\x56"), (14, bytes(range(16)))])
    packet = parse_rtp(fixed_header(extension=True) + ext + b"payload")
    assert packet.extensions == {1: b"0", 3: b"\x12\x34\x56", 14: bytes(range(16))}
    assert packet.payload == b"payload"


def test_parse_one_byte_extension_skips_padding_bytes_between_elements() -> None:
    body = b"\x10A" + b"\x00\x00" + b"\x21BC" + b"\x00"  # id1 'A', pad, pad, id2 'BC', pad
    assert len(body) % 4 == 0
    data = fixed_header(extension=True) + struct.pack("!HH", 0xBEDE, len(body) // 4) + body
    packet = parse_rtp(data + b"p")
    assert packet.extensions == {1: b"A", 2: b"BC"}
    assert packet.payload == b"p"


def test_parse_one_byte_extension_id_15_stops_parsing() -> None:
    body = b"\x10A" + b"\xf0" + b"\x20B"  # id 1, then reserved id 15, then id 2
    data = fixed_header(extension=True) + struct.pack("!HH", 0xBEDE, 2) + body + b"\x00" * 3
    packet = parse_rtp(data + b"payload")
    assert packet.extensions == {1: b"A"}
    assert packet.payload == b"payload"


def test_parse_two_byte_extensions_including_empty_and_long_values() -> None:
    long_value = bytes(range(40))
    ext = two_byte_ext([(1, b""), (200, long_value), (5, b"mid")])
    packet = parse_rtp(fixed_header(extension=True) + ext + b"payload")
    assert packet.extensions == {1: b"", 200: long_value, 5: b"mid"}
    assert packet.payload == b"payload"


def test_parse_two_byte_extension_accepts_appbits_in_profile() -> None:
    ext = two_byte_ext([(7, b"abc")], appbits=0x5)
    packet = parse_rtp(fixed_header(extension=True) + ext + b"payload")
    assert packet.extensions == {7: b"abc"}


def test_parse_two_byte_extension_skips_padding() -> None:
    body = b"\x00\x00" + b"\x04\x02hi" + b"\x00\x00"
    data = fixed_header(extension=True) + struct.pack("!HH", 0x1000, len(body) // 4) + body
    packet = parse_rtp(data + b"x")
    assert packet.extensions == {4: b"hi"}
    assert packet.payload == b"x"


def test_parse_unknown_extension_profile_is_skipped() -> None:
    body = b"\x12\x34\x56\x78"
    data = fixed_header(extension=True) + struct.pack("!HH", 0xABAC, 1) + body
    packet = parse_rtp(data + b"payload")
    assert packet.extensions == {}
    assert packet.payload == b"payload"


def test_parse_empty_extension_block() -> None:
    data = fixed_header(extension=True) + struct.pack("!HH", 0xBEDE, 0)
    packet = parse_rtp(data + b"payload")
    assert packet.extensions == {}
    assert packet.payload == b"payload"


def test_parse_extension_header_missing_raises() -> None:
    with pytest.raises(RtpError):
        parse_rtp(fixed_header(extension=True) + b"\xbe\xde")


def test_parse_extension_longer_than_packet_raises() -> None:
    data = fixed_header(extension=True) + struct.pack("!HH", 0xBEDE, 3) + b"\x10A\x00\x00"
    with pytest.raises(RtpError):
        parse_rtp(data)


def test_parse_extension_element_overrunning_its_block_is_not_read_from_payload() -> None:
    # One-word block holding an element that claims 16 bytes of value.
    data = fixed_header(extension=True) + struct.pack("!HH", 0xBEDE, 1) + b"\x1f\xaa\xbb\xcc"
    data += b"PAYLOADPAYLOADPAYLOAD"
    try:
        packet = parse_rtp(data)
    except RtpError:
        return
    assert b"PAYLOAD" not in packet.extensions.get(1, b"")


# --------------------------------------------------------------------------
# parse_rtp: padding
# --------------------------------------------------------------------------


def test_parse_strips_padding() -> None:
    packet = parse_rtp(fixed_header(padding=True) + b"media" + b"\x00\x00\x03")
    assert packet.payload == b"media"


def test_parse_padding_with_extension() -> None:
    data = fixed_header(padding=True, extension=True) + one_byte_ext([(2, b"\x7f")])
    packet = parse_rtp(data + b"abcd" + b"\x00" * 3 + b"\x04")
    assert packet.extensions == {2: b"\x7f"}
    assert packet.payload == b"abcd"


def test_parse_padding_only_packet_has_empty_payload() -> None:
    packet = parse_rtp(fixed_header(padding=True) + b"\x00" * 7 + b"\x08")
    assert packet.payload == b""


def test_parse_padding_without_payload_raises() -> None:
    with pytest.raises(RtpError):
        parse_rtp(fixed_header(padding=True))


def test_parse_padding_longer_than_packet_raises() -> None:
    with pytest.raises(RtpError):
        parse_rtp(fixed_header(padding=True) + b"ab\x10")


def test_parse_padding_may_not_eat_into_extension() -> None:
    data = fixed_header(padding=True, extension=True) + one_byte_ext([(1, b"abc")]) + b"\x05"
    with pytest.raises(RtpError):
        parse_rtp(data)


def test_parse_zero_padding_count_is_rejected() -> None:
    data = fixed_header(padding=True) + b"abc\x00"
    try:
        packet = parse_rtp(data)
    except RtpError:
        return
    assert packet.payload == b"abc"


# --------------------------------------------------------------------------
# extension_block / build_header
# --------------------------------------------------------------------------


def test_extension_block_empty_is_empty_bytes() -> None:
    assert extension_block([]) == b""


def test_extension_block_uses_one_byte_form_when_possible() -> None:
    block = extension_block([(1, b"a"), (14, b"x" * 16)])
    profile, words = struct.unpack_from("!HH", block)
    assert profile == 0xBEDE
    assert len(block) == 4 + 4 * words
    assert (len(block) - 4) % 4 == 0


@pytest.mark.parametrize(
    "elements",
    [
        [(15, b"a")],  # id beyond one-byte range
        [(3, b"x" * 17)],  # value too long for one-byte form
        [(3, b"")],  # empty value
        [(1, b"a"), (100, b"bb")],
    ],
)
def test_extension_block_falls_back_to_two_byte_form(elements: list[tuple[int, bytes]]) -> None:
    block = extension_block(elements)
    profile, words = struct.unpack_from("!HH", block)
    assert profile == 0x1000
    assert len(block) == 4 + 4 * words


@pytest.mark.parametrize(
    "elements",
    [
        [(1, b"0")],
        [(2, b"\x00\x01\x02")],
        [(1, b"mid"), (3, b"\x12\x34\x56"), (14, bytes(range(16)))],
        [(1, b"ab"), (2, b"cd"), (3, b"ef"), (4, b"gh")],
        [(15, b"a"), (1, b"bb")],
        [(1, b""), (2, b"x" * 200)],
        [(255, b"z" * 255)],
    ],
)
def test_extension_block_round_trips_through_parse_rtp(
    elements: list[tuple[int, bytes]],
) -> None:
    header = build_header(True, 100, 4242, 90000, 0xCAFEBABE, extension_block(elements))
    packet = parse_rtp(header + b"the payload")
    assert packet.extensions == dict(elements)
    assert packet.payload == b"the payload"
    assert packet.marker is True
    assert packet.payload_type == 100
    assert packet.seq == 4242
    assert packet.timestamp == 90000
    assert packet.ssrc == 0xCAFEBABE


def test_build_header_without_extension_is_12_bytes() -> None:
    header = build_header(False, 96, 65535, 0xFFFFFFFF, 1, b"")
    assert len(header) == 12
    assert header[0] == 0x80
    assert header[1] == 96
    packet = parse_rtp(header + b"p")
    assert packet.seq == 65535
    assert packet.timestamp == 0xFFFFFFFF
    assert packet.marker is False


def test_build_header_with_extension_sets_x_bit() -> None:
    ext = extension_block([(1, b"a")])
    header = build_header(True, 96, 1, 2, 3, ext)
    assert header[0] == 0x90
    assert header[1] == 0x80 | 96
    assert header[12:] == ext


def test_build_header_is_not_rtcp() -> None:
    for pt in (0, 63, 96, 127):
        assert not is_rtcp(build_header(False, pt, 1, 2, 3, b""))


def test_is_rtcp_recognises_rtcp_packet_types() -> None:
    assert is_rtcp(b"\x80\xc8")  # SR (200)
    assert is_rtcp(b"\x81\xcd")  # RTPFB (205)
    assert not is_rtcp(b"\x80")
    assert not is_rtcp(b"")


# --------------------------------------------------------------------------
# abs_send_time
# --------------------------------------------------------------------------


def test_abs_send_time_is_6_18_fixed_point() -> None:
    assert abs_send_time(0.0) == b"\x00\x00\x00"
    assert abs_send_time(1.0) == (1 << 18).to_bytes(3, "big")
    assert abs_send_time(1.5) == bytes([0x06, 0x00, 0x00])
    assert abs_send_time(0.25) == (1 << 16).to_bytes(3, "big")


def test_abs_send_time_wraps_every_64_seconds() -> None:
    assert abs_send_time(64.0) == b"\x00\x00\x00"
    assert abs_send_time(65.5) == abs_send_time(1.5)
    assert len(abs_send_time(1e9 + 0.123)) == 3


def test_abs_send_time_just_below_wrap() -> None:
    assert abs_send_time(64.0 - 1 / (1 << 18)) == b"\xff\xff\xff"


# --------------------------------------------------------------------------
# rtx_unwrap
# --------------------------------------------------------------------------


def test_rtx_unwrap_restores_original_packet() -> None:
    rtx = parse_rtp(
        fixed_header(payload_type=97, seq=7, ssrc=0xBBBB) + struct.pack("!H", 4321) + b"orig"
    )
    assert rtx_unwrap(rtx, media_ssrc=0xAAAA, media_pt=96) is True
    assert rtx.seq == 4321
    assert rtx.payload == b"orig"
    assert rtx.ssrc == 0xAAAA
    assert rtx.payload_type == 96


def test_rtx_unwrap_padding_only_returns_false_and_leaves_packet() -> None:
    # Padding-only RTX (bandwidth probing): the payload is empty after padding removal.
    rtx = parse_rtp(
        fixed_header(padding=True, payload_type=97, seq=7, ssrc=0xBBBB) + b"\x00" * 223 + b"\xe0"
    )
    assert rtx.payload == b""
    assert rtx_unwrap(rtx, media_ssrc=0xAAAA, media_pt=96) is False
    assert rtx.seq == 7
    assert rtx.ssrc == 0xBBBB
    assert rtx.payload_type == 97


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x01\x02"])
def test_rtx_unwrap_too_short_returns_false(payload: bytes) -> None:
    packet = RtpPacket(False, 97, 5, 0, 0xBBBB, {}, payload)
    assert rtx_unwrap(packet, 0xAAAA, 96) is False
    assert packet.seq == 5


# --------------------------------------------------------------------------
# seq_delta
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (10, 5, 5),
        (5, 10, -5),
        (7, 7, 0),
        (0, 65535, 1),
        (65535, 0, -1),
        (2, 65530, 8),
        (65530, 2, -8),
        (0x7FFF, 0, 0x7FFF),
        (0x8000, 0, -0x8000),
        (0, 0x8000, -0x8000),
    ],
)
def test_seq_delta(a: int, b: int, expected: int) -> None:
    assert seq_delta(a, b) == expected
