"""Unit tests for sfu/rtp.py: codec keyframe detection (VP8, H.264).

RTP parsing and header building are in test_rtp.py.
"""

from __future__ import annotations

import struct

import pytest

from sfu.rtp import h264_is_keyframe_start, is_keyframe_start, vp8_is_keyframe_start

# --------------------------------------------------------------------------
# VP8 (RFC 7741)
# --------------------------------------------------------------------------

VP8_KEY = b"\x10\x02\x00\x9d\x01\x2a"  # frame tag with P=0 (keyframe), start code follows
VP8_INTER = b"\x31\x02\x00"  # P=1


def vp8_descriptor(
    *,
    start: bool = True,
    pid: int = 0,
    picture_id: int | None = None,
    long_picture_id: bool = False,
    tl0picidx: int | None = None,
    tid: bool = False,
    keyidx: bool = False,
    force_x: bool = False,
) -> bytes:
    ext = 0
    tail = b""
    if picture_id is not None:
        ext |= 0x80
        if long_picture_id:
            tail += struct.pack("!H", 0x8000 | picture_id)
        else:
            tail += bytes([picture_id & 0x7F])
    if tl0picidx is not None:
        ext |= 0x40
        tail += bytes([tl0picidx])
    if tid:
        ext |= 0x20
    if keyidx:
        ext |= 0x10
    if tid or keyidx:
        tail += b"\x40"  # TID=1, Y=0, KEYIDX=0
    x = ext != 0 or force_x
    b0 = (0x80 if x else 0) | (0x10 if start else 0) | pid
    return bytes([b0]) + (bytes([ext]) + tail if x else b"")


def test_vp8_keyframe_without_extension() -> None:
    assert vp8_is_keyframe_start(vp8_descriptor() + VP8_KEY)


def test_vp8_interframe_without_extension() -> None:
    assert not vp8_is_keyframe_start(vp8_descriptor() + VP8_INTER)


def test_vp8_x_bit_with_empty_extension_byte() -> None:
    assert vp8_is_keyframe_start(vp8_descriptor(force_x=True) + VP8_KEY)
    assert not vp8_is_keyframe_start(vp8_descriptor(force_x=True) + VP8_INTER)


@pytest.mark.parametrize("picture_id", [0, 1, 0x7F])
def test_vp8_keyframe_with_7_bit_picture_id(picture_id: int) -> None:
    assert vp8_is_keyframe_start(vp8_descriptor(picture_id=picture_id) + VP8_KEY)
    assert not vp8_is_keyframe_start(vp8_descriptor(picture_id=picture_id) + VP8_INTER)


@pytest.mark.parametrize("picture_id", [0, 0x80, 0x1234, 0x7FFF])
def test_vp8_keyframe_with_15_bit_picture_id(picture_id: int) -> None:
    # A 15-bit id whose low byte has bit 0 set would be misread as P=1 if the
    # second picture-id byte were taken for the frame tag.
    desc = vp8_descriptor(picture_id=picture_id, long_picture_id=True)
    assert vp8_is_keyframe_start(desc + VP8_KEY)
    assert not vp8_is_keyframe_start(desc + VP8_INTER)


def test_vp8_15_bit_picture_id_low_byte_odd_is_not_mistaken_for_frame_tag() -> None:
    desc = vp8_descriptor(picture_id=0x0101, long_picture_id=True)
    assert vp8_is_keyframe_start(desc + VP8_KEY)


def test_vp8_keyframe_with_tl0picidx() -> None:
    desc = vp8_descriptor(picture_id=5, tl0picidx=0x01)  # odd TL0PICIDX byte
    assert vp8_is_keyframe_start(desc + VP8_KEY)
    assert not vp8_is_keyframe_start(desc + VP8_INTER)


@pytest.mark.parametrize(("tid", "keyidx"), [(True, False), (False, True), (True, True)])
def test_vp8_keyframe_with_tid_keyidx_byte(tid: bool, keyidx: bool) -> None:
    desc = vp8_descriptor(
        picture_id=0x2345, long_picture_id=True, tl0picidx=3, tid=tid, keyidx=keyidx
    )
    assert vp8_is_keyframe_start(desc + VP8_KEY)
    assert not vp8_is_keyframe_start(desc + VP8_INTER)


def test_vp8_tid_byte_with_odd_value_is_skipped() -> None:
    # TID/Y/KEYIDX byte 0x01 would read as P=1 if not skipped.
    desc = bytes([0x90, 0x20, 0x01])
    assert vp8_is_keyframe_start(desc + VP8_KEY)


def test_vp8_not_start_of_partition() -> None:
    assert not vp8_is_keyframe_start(vp8_descriptor(start=False) + VP8_KEY)
    desc = vp8_descriptor(start=False, picture_id=9, long_picture_id=True)
    assert not vp8_is_keyframe_start(desc + VP8_KEY)


@pytest.mark.parametrize("pid", [1, 2, 7])
def test_vp8_start_of_later_partition_is_not_keyframe_start(pid: int) -> None:
    assert not vp8_is_keyframe_start(vp8_descriptor(pid=pid) + VP8_KEY)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x10",  # descriptor, no frame tag
        b"\x90\x80",  # X and I set but picture id missing
        b"\x90\x80\x05",  # picture id, no frame tag
        b"\x90\x80\x85",  # 15-bit id truncated
        b"\x90\xc0\x05\x01",  # picture id and TL0PICIDX, no frame tag
    ],
)
def test_vp8_truncated_payload_is_not_keyframe(payload: bytes) -> None:
    assert not vp8_is_keyframe_start(payload)


def test_is_keyframe_start_dispatches_on_codec_name() -> None:
    assert is_keyframe_start("VP8", vp8_descriptor() + VP8_KEY)
    assert not is_keyframe_start("VP8", vp8_descriptor() + VP8_INTER)
    assert is_keyframe_start("H264", b"\x65\x88")
    assert not is_keyframe_start("opus", b"\x65\x88")
    assert not is_keyframe_start("VP9", vp8_descriptor() + VP8_KEY)


# --------------------------------------------------------------------------
# H.264 (RFC 6184)
# --------------------------------------------------------------------------

SPS = b"\x67\x42\xc0\x1f\xda"
PPS = b"\x68\xce\x3c\x80"
IDR = b"\x65\x88\x84\x00"
SLICE = b"\x41\x9a\x02\x00"
SEI = b"\x06\x05\x01"


def stap_a(*nalus: bytes) -> bytes:
    return b"\x78" + b"".join(struct.pack("!H", len(n)) + n for n in nalus)


def fu_a(nal: bytes, *, start: bool, end: bool = False) -> bytes:
    indicator = (nal[0] & 0xE0) | 28
    header = (0x80 if start else 0) | (0x40 if end else 0) | (nal[0] & 0x1F)
    return bytes([indicator, header]) + nal[1:]


@pytest.mark.parametrize("nal", [IDR, SPS])
def test_h264_single_key_nal(nal: bytes) -> None:
    assert h264_is_keyframe_start(nal)


@pytest.mark.parametrize("nal", [SLICE, PPS, SEI])
def test_h264_single_non_key_nal(nal: bytes) -> None:
    assert not h264_is_keyframe_start(nal)


def test_h264_nal_type_ignores_nri_and_forbidden_bits() -> None:
    assert h264_is_keyframe_start(b"\x05\x00")  # NRI=0, type 5
    assert not h264_is_keyframe_start(b"\xe1\x00")  # F=1, NRI=3, type 1


def test_h264_stap_a_with_sps_is_keyframe_start() -> None:
    assert h264_is_keyframe_start(stap_a(SPS, PPS, IDR))


def test_h264_stap_a_with_key_nal_not_first() -> None:
    assert h264_is_keyframe_start(stap_a(SEI, PPS, SPS))


def test_h264_stap_a_without_key_nal() -> None:
    assert not h264_is_keyframe_start(stap_a(SEI, PPS, SLICE))


def test_h264_stap_a_truncated_or_empty() -> None:
    assert not h264_is_keyframe_start(b"\x78")
    assert not h264_is_keyframe_start(b"\x78\x00\x05")
    # length field pointing beyond the packet ends the scan
    assert not h264_is_keyframe_start(b"\x78\x00\x40" + SEI)


def test_h264_fu_a_start_of_idr() -> None:
    assert h264_is_keyframe_start(fu_a(IDR, start=True))


def test_h264_fu_a_non_start_fragment_of_idr() -> None:
    assert not h264_is_keyframe_start(fu_a(IDR, start=False))
    assert not h264_is_keyframe_start(fu_a(IDR, start=False, end=True))


def test_h264_fu_a_start_of_non_idr_slice() -> None:
    assert not h264_is_keyframe_start(fu_a(SLICE, start=True))


def test_h264_fu_a_without_fu_header() -> None:
    assert not h264_is_keyframe_start(b"\x7c")


def test_h264_empty_payload() -> None:
    assert not h264_is_keyframe_start(b"")
