"""The end-to-end encrypted frame format v1 (e2ee/frames.py, docs/e2ee.md).

``VECTORS`` are fixed: key bytes(range(32)) under key id 7, IV bytes(range(100, 112)).
The expected bytes were computed once with e2ee/frames.py and are pinned here:
a change to the format (the HKDF salt or info, the clear header, the trailer,
the associated data) fails this file. The browser reproduces the same bytes
with web-client/client/e2ee-frames.js (tests/browser/test_e2ee_vectors.py).
"""

from __future__ import annotations

import base64
import os

import pytest

from e2ee.frames import (
    KEY_BYTES,
    OVERHEAD,
    ConsultKey,
    FrameError,
    FrameKind,
    Purpose,
    clear_bytes,
    decrypt_frame,
    derive,
    encode_key,
    encrypt_frame,
    frame_key_id,
    parse_key,
)

VECTOR_RAW = bytes(range(32))
VECTOR_KEY_ID = 7
VECTOR_IV = bytes(range(100, 112))
VECTOR_KEY_TEXT = "7.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"

# (name, kind, frame hex, encrypted frame hex)
VECTORS = [
    (
        # a VP8 key frame: frame tag 50 2a 00 (key frame bit 0), start code 9d 01 2a,
        # width 0x140 = 320 and height 0xf0 = 240, then 20 bytes of "bitstream"
        "vp8-key",
        FrameKind.VP8,
        "502a009d012a4001f000000102030405060708090a0b0c0d0e0f10111213",
        "502a009d012a4001f000e39e2f34b8a66bbb1556614821eb913ecc94e751226d"
        "f3806fe4c0de4faa2b9aea9c19746465666768696a6b6c6d6e6f07",
    ),
    (
        "vp8-delta",  # frame tag 31 05 00: a delta frame (bit 0 set)
        FrameKind.VP8,
        "310500c8c9cacbcccdcecfd0d1d2d3d4d5d6d7",
        "3105002b56e7fc706ea373cd8eb990f93349e64bd18e6c63a9564682b006a965"
        "ad5d806465666768696a6b6c6d6e6f07",
    ),
    (
        "opus",  # TOC 0x78 (config 15: hybrid, fullband, 20 ms; one frame), 12 bytes after it
        FrameKind.OPUS,
        "7828292a2b2c2d2e2f30313233",
        "78cbb6071c908e43932d6e59707258cbf904d88ca2d7af34464f723cc36465666768696a6b6c6d6e6f07",
    ),
]
DERIVED = {
    Purpose.FRAME: "277391afe4ae3577ce3a1f1dab0ed1a75883af8935515989e0c4798fbfd3989b",
    Purpose.CAPTURE: "7401ef772b71a23488f28315383b3966937733b00ab5fba53252c7e0801352d1",
}


def vector_key() -> ConsultKey:
    return ConsultKey.from_raw(VECTOR_KEY_ID, VECTOR_RAW)


def random_key(key_id: int = 1) -> ConsultKey:
    return ConsultKey.from_raw(key_id, os.urandom(KEY_BYTES))


def vp8_key_frame(size: int = 500) -> bytes:
    return bytes([0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]) + os.urandom(size)


def vp8_delta_frame(size: int = 300) -> bytes:
    return bytes([0x31, 0x05, 0x00]) + os.urandom(size)


def opus_frame(size: int = 80) -> bytes:
    return bytes([0x78]) + os.urandom(size)


# -- fixed test vectors --------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind", "plain", "sealed"), VECTORS, ids=[v[0] for v in VECTORS])
def test_vectors_encrypt_to_the_pinned_bytes(
    name: str, kind: FrameKind, plain: str, sealed: str
) -> None:
    out = encrypt_frame(vector_key(), kind, bytes.fromhex(plain), VECTOR_IV)
    assert out.hex() == sealed
    assert len(out) == len(bytes.fromhex(plain)) + OVERHEAD
    assert decrypt_frame({VECTOR_KEY_ID: vector_key()}, kind, bytes.fromhex(sealed)).hex() == plain


def test_vector_layout_clear_header_then_ciphertext_tag_iv_key_id() -> None:
    _, _, plain_hex, sealed_hex = VECTORS[0]
    plain, sealed = bytes.fromhex(plain_hex), bytes.fromhex(sealed_hex)
    assert sealed[:10] == plain[:10]  # a key frame's 10 bytes in clear
    assert sealed[10:30] != plain[10:]  # the rest is not
    assert sealed[-13:-1] == VECTOR_IV and sealed[-1] == VECTOR_KEY_ID
    assert frame_key_id(sealed) == VECTOR_KEY_ID


def test_vector_key_derivation_and_text_form() -> None:
    for purpose, expected in DERIVED.items():
        assert derive(VECTOR_RAW, purpose).hex() == expected
    assert encode_key(VECTOR_KEY_ID, VECTOR_RAW) == VECTOR_KEY_TEXT
    assert parse_key(VECTOR_KEY_TEXT) == (VECTOR_KEY_ID, VECTOR_RAW)


# -- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "frame", "clear"),
    [
        (FrameKind.VP8, vp8_key_frame(), 10),
        (FrameKind.VP8, vp8_delta_frame(), 3),
        (FrameKind.OPUS, opus_frame(), 1),
        (FrameKind.VP8, vp8_key_frame(5000), 10),
    ],
    ids=["vp8-key", "vp8-delta", "opus", "vp8-key-large"],
)
def test_round_trip_keeps_the_clear_header(kind: FrameKind, frame: bytes, clear: int) -> None:
    key = random_key(3)
    assert clear_bytes(kind, frame) == clear
    sealed = encrypt_frame(key, kind, frame)
    assert len(sealed) == len(frame) + OVERHEAD
    assert sealed[:clear] == frame[:clear]
    assert frame[clear:] not in sealed
    assert decrypt_frame({3: key}, kind, sealed) == frame
    # a random IV each time: the same frame never encrypts to the same bytes
    assert encrypt_frame(key, kind, frame) != sealed


@pytest.mark.parametrize(
    ("kind", "frame"),
    [
        (FrameKind.VP8, b""),
        (FrameKind.VP8, bytes([0x50, 0x2A, 0x00, 0x9D])),  # a key frame shorter than 10
        (FrameKind.VP8, bytes([0x31, 0x05])),  # a delta frame shorter than 3
        (FrameKind.VP8, bytes([0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01])),
        (FrameKind.OPUS, b""),
        (FrameKind.OPUS, b"\x78"),  # only the TOC (e.g. DTX)
    ],
    ids=["vp8-empty", "vp8-key-4", "vp8-delta-2", "vp8-key-10", "opus-empty", "opus-toc"],
)
def test_frames_shorter_than_the_clear_header_round_trip(kind: FrameKind, frame: bytes) -> None:
    key = random_key()
    sealed = encrypt_frame(key, kind, frame)
    assert len(sealed) == len(frame) + OVERHEAD
    assert sealed[: len(frame)] == frame  # all of it is header: in clear, authenticated
    assert decrypt_frame({1: key}, kind, sealed) == frame


def test_a_wrong_key_fails() -> None:
    sealed = encrypt_frame(random_key(1), FrameKind.VP8, vp8_delta_frame())
    with pytest.raises(FrameError, match="authentication failed"):
        decrypt_frame({1: random_key(1)}, FrameKind.VP8, sealed)


@pytest.mark.parametrize(
    ("kind", "frame", "at"),
    [
        (FrameKind.VP8, vp8_key_frame(), 7),  # the width the SFU reads
        (FrameKind.VP8, vp8_key_frame(), 0),  # the key-frame bit's byte
        (FrameKind.VP8, vp8_delta_frame(), 1),  # the first partition's size
        (FrameKind.OPUS, opus_frame(), 0),  # the TOC
    ],
    ids=["vp8-key-width", "vp8-key-tag", "vp8-delta-tag", "opus-toc"],
)
def test_the_clear_header_is_authenticated(kind: FrameKind, frame: bytes, at: int) -> None:
    key = random_key()
    sealed = bytearray(encrypt_frame(key, kind, frame))
    sealed[at] ^= 0x04
    with pytest.raises(FrameError):
        decrypt_frame({1: key}, kind, bytes(sealed))


def test_altered_ciphertext_iv_or_key_id_fails() -> None:
    key = random_key(1)
    sealed = encrypt_frame(key, FrameKind.VP8, vp8_delta_frame())
    for at in (5, len(sealed) - 20, len(sealed) - 5):  # ciphertext, tag, IV
        altered = bytearray(sealed)
        altered[at] ^= 0x01
        with pytest.raises(FrameError, match="authentication failed"):
            decrypt_frame({1: key}, FrameKind.VP8, bytes(altered))
    # the key id is associated data too: naming another (known) key fails
    other = bytearray(sealed)
    other[-1] = 2
    with pytest.raises(FrameError, match="authentication failed"):
        decrypt_frame({1: key, 2: key}, FrameKind.VP8, bytes(other))


def test_an_unknown_key_id_fails_and_says_so() -> None:
    sealed = encrypt_frame(random_key(9), FrameKind.OPUS, opus_frame())
    assert frame_key_id(sealed) == 9
    with pytest.raises(FrameError, match="no key 9"):
        decrypt_frame({1: random_key(1)}, FrameKind.OPUS, sealed)


def test_too_short_to_be_encrypted() -> None:
    assert frame_key_id(b"\x00" * (OVERHEAD - 1)) is None
    with pytest.raises(FrameError, match="too short"):
        decrypt_frame({0: random_key(0)}, FrameKind.VP8, b"\x00" * (OVERHEAD - 1))


def test_the_right_key_among_several_by_id() -> None:
    old, new = random_key(1), random_key(2)
    frame = vp8_delta_frame()
    keys = {1: old, 2: new}
    assert decrypt_frame(keys, FrameKind.VP8, encrypt_frame(old, FrameKind.VP8, frame)) == frame
    assert decrypt_frame(keys, FrameKind.VP8, encrypt_frame(new, FrameKind.VP8, frame)) == frame


def test_encrypt_refuses_a_bad_iv_and_keys_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="12 bytes"):
        encrypt_frame(random_key(), FrameKind.VP8, b"abc", iv=b"short")
    with pytest.raises(ValueError, match="0-255"):
        ConsultKey.from_raw(256, os.urandom(32))
    with pytest.raises(ValueError, match="32 bytes"):
        ConsultKey.from_raw(1, os.urandom(16))


# -- the consult key's text form -----------------------------------------------------


def test_encode_and_parse_keys_round_trip() -> None:
    for key_id in (0, 1, 200, 255):
        raw = os.urandom(KEY_BYTES)
        text = encode_key(key_id, raw)
        assert "=" not in text and "+" not in text and "/" not in text  # base64url, no padding
        assert parse_key(text) == (key_id, raw)
        assert parse_key(f"  {text}\n") == (key_id, raw)  # pasted with whitespace


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "key id"),
        ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "key id"),  # no id
        ("256.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "key id"),
        ("-1.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "key id"),
        ("x.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "key id"),
        ("7.", "32 bytes, not 0"),
        ("7.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg", "32 bytes, not 31"),
        ("7." + base64.urlsafe_b64encode(bytes(33)).decode(), "32 bytes, not 33"),
        ("7.A", "base64url"),  # one character: not a whole byte
        ("7.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8AB", "base64url"),  # 45 characters
        ("7.AAEC*wQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "base64url"),  # not in the alphabet
    ],
)
def test_parse_key_refuses_malformed_keys(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_key(text)
