"""Unit tests for sfu/vp8.py: the VP8 payload descriptor (RFC 7741) and keyframe sizes.

Keyframe detection alone (sfu.rtp.vp8_is_keyframe_start) is in test_rtp_keyframes.py.
"""

from __future__ import annotations

import fractions
import struct

import av
import numpy as np
import pytest

from sfu.vp8 import keyframe_size, parse_descriptor, picture_id_modulus, rewrite

KEY_TAG = b"\x10\x02\x00"  # frame tag, P=0: a key picture
INTER_TAG = b"\x31\x02\x00"  # P=1
START_CODE = b"\x9d\x01\x2a"


def descriptor(
    *,
    start: bool = True,
    partition: int = 0,
    picture_id: int | None = None,
    bits: int = 15,
    tl0: int | None = None,
    tid: int | None = None,
    sync: bool = False,
    keyidx: int | None = None,
    non_reference: bool = False,
) -> bytes:
    """An RFC 7741 payload descriptor with the given optional fields."""
    x = 0
    tail = b""
    if picture_id is not None:
        x |= 0x80
        if bits == 15:
            tail += struct.pack("!H", 0x8000 | picture_id)
        else:
            tail += bytes([picture_id & 0x7F])
    if tl0 is not None:
        x |= 0x40
        tail += bytes([tl0])
    if tid is not None:
        x |= 0x20
    if keyidx is not None:
        x |= 0x10
    if tid is not None or keyidx is not None:
        tail += bytes([((tid or 0) << 6) | (0x20 if sync else 0) | (keyidx or 0)])
    b0 = (0x80 if x else 0) | (0x20 if non_reference else 0) | (0x10 if start else 0) | partition
    return bytes([b0]) + (bytes([x]) + tail if x else b"")


def keyframe_header(width: int, height: int) -> bytes:
    """The first ten bytes of a VP8 key picture (RFC 6386, 9.1)."""
    return KEY_TAG + START_CODE + struct.pack("<HH", width, height)


@pytest.fixture(scope="module")
def encoded() -> tuple[bytes, bytes]:
    """A real libvpx key picture and the inter picture after it, 320x180."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = 320, 180
    codec.pix_fmt = "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    frames: list[bytes] = []
    for i in range(2):
        img = np.full((180, 320, 3), 40 * i, np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frames += [bytes(p) for p in codec.encode(frame)]
    frames += [bytes(p) for p in codec.encode(None)]
    assert len(frames) >= 2
    return frames[0], frames[1]


# --------------------------------------------------------------------------
# parse_descriptor
# --------------------------------------------------------------------------


def test_minimal_descriptor_of_a_key_picture() -> None:
    desc = parse_descriptor(descriptor() + KEY_TAG)
    assert desc is not None
    assert desc.start and desc.keyframe
    assert desc.picture_id is None and desc.picture_id_bits == 0
    assert desc.tl0 is None and desc.tid is None and not desc.layer_sync
    assert desc.header_size == 1


def test_seven_bit_picture_id() -> None:
    desc = parse_descriptor(descriptor(picture_id=0x55, bits=7) + INTER_TAG)
    assert desc is not None
    assert desc.picture_id == 0x55
    assert desc.picture_id_bits == 7
    assert desc.picture_id_pos == 2
    assert desc.header_size == 3
    assert not desc.keyframe


def test_fifteen_bit_picture_id() -> None:
    desc = parse_descriptor(descriptor(picture_id=0x1234) + KEY_TAG)
    assert desc is not None
    assert desc.picture_id == 0x1234
    assert desc.picture_id_bits == 15
    assert desc.picture_id_pos == 2
    assert desc.header_size == 4
    assert desc.keyframe


@pytest.mark.parametrize(("bits", "tl0_pos"), [(7, 3), (15, 4)])
def test_tl0picidx_follows_the_picture_id(bits: int, tl0_pos: int) -> None:
    desc = parse_descriptor(descriptor(picture_id=9, bits=bits, tl0=0xFE) + KEY_TAG)
    assert desc is not None
    assert desc.tl0 == 0xFE
    assert desc.tl0_pos == tl0_pos
    assert desc.header_size == tl0_pos + 1


def test_tl0picidx_without_picture_id() -> None:
    desc = parse_descriptor(descriptor(tl0=7) + KEY_TAG)
    assert desc is not None
    assert desc.picture_id is None
    assert (desc.tl0, desc.tl0_pos, desc.header_size) == (7, 2, 3)


@pytest.mark.parametrize("tid", [0, 1, 2, 3])
@pytest.mark.parametrize("sync", [False, True])
def test_tid_and_layer_sync(tid: int, sync: bool) -> None:
    payload = descriptor(picture_id=300, tl0=4, tid=tid, sync=sync, keyidx=5) + INTER_TAG
    desc = parse_descriptor(payload)
    assert desc is not None
    assert desc.tid == tid
    assert desc.layer_sync is sync
    assert desc.header_size == 6
    assert desc.picture_id == 300 and desc.tl0 == 4


def test_k_without_t_skips_the_byte_but_gives_no_tid() -> None:
    # The TID/Y/KEYIDX byte reads TID=3, Y=1 and an odd value: all must be ignored.
    payload = bytes([0x90, 0x10, 0xFF]) + KEY_TAG
    desc = parse_descriptor(payload)
    assert desc is not None
    assert desc.tid is None
    assert not desc.layer_sync
    assert desc.header_size == 3
    assert desc.keyframe  # read at the frame tag, not at the 0xFF byte


def test_continuation_packet_is_neither_start_nor_keyframe() -> None:
    desc = parse_descriptor(descriptor(start=False, picture_id=10) + KEY_TAG)
    assert desc is not None
    assert not desc.start and not desc.keyframe
    assert desc.picture_id == 10


@pytest.mark.parametrize("partition", [1, 2, 7])
def test_start_of_a_later_partition_is_not_a_picture_start(partition: int) -> None:
    desc = parse_descriptor(descriptor(partition=partition, picture_id=10) + KEY_TAG)
    assert desc is not None
    assert not desc.start and not desc.keyframe


def test_inter_picture_start_is_not_a_keyframe() -> None:
    desc = parse_descriptor(descriptor(picture_id=10, tl0=1, tid=0) + INTER_TAG)
    assert desc is not None
    assert desc.start and not desc.keyframe


def test_n_bit_does_not_change_the_reading() -> None:
    desc = parse_descriptor(descriptor(picture_id=77, non_reference=True) + KEY_TAG)
    assert desc is not None
    assert desc.start and desc.keyframe and desc.picture_id == 77


def test_descriptor_without_payload_is_not_a_keyframe() -> None:
    desc = parse_descriptor(descriptor(picture_id=1, tl0=2, tid=0))
    assert desc is not None
    assert desc.start and not desc.keyframe
    assert desc.header_size == 6


FULL = descriptor(picture_id=0x4321, tl0=3, tid=1, sync=True)  # 6 bytes


@pytest.mark.parametrize("length", range(len(FULL)))
def test_truncated_descriptor_is_none(length: int) -> None:
    assert parse_descriptor(FULL[:length]) is None


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x90",  # X set, X byte missing
        b"\x90\x80",  # I set, picture id missing
        b"\x90\x80\x85",  # 15-bit picture id, second byte missing
        b"\x90\x40",  # L set, TL0PICIDX missing
        b"\x90\x20",  # T set, TID byte missing
        b"\x90\x10",  # K set, KEYIDX byte missing
        b"\x90\xe0\x05\x01",  # I, L, T: the TID byte missing
    ],
)
def test_malformed_descriptors_are_none(payload: bytes) -> None:
    assert parse_descriptor(payload) is None


# --------------------------------------------------------------------------
# rewrite
# --------------------------------------------------------------------------


def changed_positions(a: bytes, b: bytes) -> list[int]:
    assert len(a) == len(b)
    return [i for i in range(len(a)) if a[i] != b[i]]


def test_rewrite_fifteen_bit_picture_id_and_tl0() -> None:
    payload = descriptor(picture_id=0x0102, tl0=0x10, tid=2, sync=True) + INTER_TAG + b"data"
    desc = parse_descriptor(payload)
    assert desc is not None
    out = rewrite(payload, desc, 0x7ABC, 0x20)
    again = parse_descriptor(out)
    assert again is not None
    assert again.picture_id == 0x7ABC and again.picture_id_bits == 15
    assert again.tl0 == 0x20
    assert (again.tid, again.layer_sync, again.header_size) == (2, True, desc.header_size)
    assert changed_positions(payload, out) == [2, 3, 4]
    assert out[2] & 0x80  # the M bit: still a 15-bit picture id
    assert out[desc.header_size :] == INTER_TAG + b"data"


@pytest.mark.parametrize(("value", "expected"), [(0x8000, 0), (0x8005, 5), (0xFFFF, 0x7FFF)])
def test_rewrite_fifteen_bit_picture_id_wraps(value: int, expected: int) -> None:
    payload = descriptor(picture_id=1) + KEY_TAG
    desc = parse_descriptor(payload)
    assert desc is not None
    again = parse_descriptor(rewrite(payload, desc, value, None))
    assert again is not None
    assert again.picture_id == expected
    assert again.picture_id_bits == 15
    assert again.keyframe


@pytest.mark.parametrize(("value", "expected"), [(127, 127), (128, 0), (130, 2), (255, 127)])
def test_rewrite_seven_bit_picture_id_wraps_and_keeps_its_width(value: int, expected: int) -> None:
    payload = descriptor(picture_id=5, bits=7, tl0=9) + KEY_TAG
    desc = parse_descriptor(payload)
    assert desc is not None
    out = rewrite(payload, desc, value, None)
    assert len(out) == len(payload)
    assert not out[2] & 0x80  # never turns into a 15-bit field
    again = parse_descriptor(out)
    assert again is not None
    assert again.picture_id == expected and again.picture_id_bits == 7
    assert again.tl0 == 9
    assert changed_positions(payload, out) == ([2] if expected != 5 else [])


@pytest.mark.parametrize(("value", "expected"), [(255, 255), (256, 0), (257, 1)])
def test_rewrite_tl0_wraps_at_256(value: int, expected: int) -> None:
    payload = descriptor(picture_id=3, tl0=1, tid=0) + INTER_TAG
    desc = parse_descriptor(payload)
    assert desc is not None
    out = rewrite(payload, desc, None, value)
    again = parse_descriptor(out)
    assert again is not None
    assert again.tl0 == expected
    assert again.picture_id == 3
    assert changed_positions(payload, out) == ([desc.tl0_pos] if expected != 1 else [])


def test_rewrite_with_nothing_to_change_is_identical() -> None:
    payload = descriptor(picture_id=3, tl0=1, tid=0) + INTER_TAG
    desc = parse_descriptor(payload)
    assert desc is not None
    assert rewrite(payload, desc, None, None) == payload


def test_rewrite_ignores_fields_the_packet_does_not_carry() -> None:
    payload = descriptor(tid=1) + INTER_TAG  # no picture id, no TL0PICIDX
    desc = parse_descriptor(payload)
    assert desc is not None
    assert rewrite(payload, desc, 1234, 56) == payload


def test_picture_id_modulus() -> None:
    for payload, modulus in [
        (descriptor(picture_id=1, bits=7), 128),
        (descriptor(picture_id=1, bits=15), 32768),
        (descriptor(tl0=1), 1),
    ]:
        desc = parse_descriptor(payload + KEY_TAG)
        assert desc is not None
        assert picture_id_modulus(desc) == modulus


# --------------------------------------------------------------------------
# keyframe_size
# --------------------------------------------------------------------------


def test_keyframe_size_of_a_real_libvpx_key_picture(encoded: tuple[bytes, bytes]) -> None:
    key, _ = encoded
    payload = descriptor(picture_id=0x1FF, tl0=0, tid=0, sync=True) + key
    desc = parse_descriptor(payload)
    assert desc is not None and desc.keyframe
    assert keyframe_size(payload, desc) == (320, 180)


def test_keyframe_size_with_a_minimal_descriptor(encoded: tuple[bytes, bytes]) -> None:
    key, _ = encoded
    payload = descriptor() + key
    desc = parse_descriptor(payload)
    assert desc is not None
    assert keyframe_size(payload, desc) == (320, 180)


def test_no_size_from_a_real_inter_picture(encoded: tuple[bytes, bytes]) -> None:
    _, inter = encoded
    payload = descriptor(picture_id=2) + inter
    desc = parse_descriptor(payload)
    assert desc is not None and not desc.keyframe
    assert keyframe_size(payload, desc) is None


def test_keyframe_size_ignores_the_scaling_bits() -> None:
    payload = descriptor(picture_id=1) + KEY_TAG + START_CODE + struct.pack("<HH", 0xC500, 0x42D0)
    desc = parse_descriptor(payload)
    assert desc is not None
    assert keyframe_size(payload, desc) == (0x0500, 0x02D0)


def test_keyframe_size_of_a_continuation_packet_is_none() -> None:
    payload = descriptor(start=False, picture_id=1) + keyframe_header(640, 360)
    desc = parse_descriptor(payload)
    assert desc is not None
    assert keyframe_size(payload, desc) is None


def test_keyframe_size_needs_the_start_code() -> None:
    payload = descriptor(picture_id=1) + KEY_TAG + b"\x9d\x01\x2b" + struct.pack("<HH", 320, 180)
    desc = parse_descriptor(payload)
    assert desc is not None and desc.keyframe
    assert keyframe_size(payload, desc) is None


@pytest.mark.parametrize("cut", [1, 2, 4, 6])
def test_keyframe_size_of_a_truncated_header_is_none(cut: int) -> None:
    payload = (descriptor(picture_id=1) + keyframe_header(640, 360))[:-cut]
    desc = parse_descriptor(payload)
    assert desc is not None and desc.keyframe
    assert keyframe_size(payload, desc) is None
