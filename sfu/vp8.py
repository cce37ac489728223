"""VP8 payload descriptor (RFC 7741): read it, and rewrite PictureID/TL0PICIDX.

Layer switching and temporal-layer dropping must keep the PictureID and
TL0PICIDX a subscriber sees continuous, or its decoder waits for pictures
that will never come. Only those bytes change; the VP8 bitstream is never
touched.
"""

from __future__ import annotations

from dataclasses import dataclass

# X byte flags
_I = 0x80
_L = 0x40
_T = 0x20
_K = 0x10


@dataclass(slots=True)
class Vp8Descriptor:
    start: bool  # S=1 and PID=0: the first packet of a picture
    keyframe: bool  # start of a key picture
    picture_id: int | None
    picture_id_bits: int  # 0, 7 or 15
    picture_id_pos: int
    tl0: int | None
    tl0_pos: int
    tid: int | None  # temporal layer id, None when the publisher sends no T field
    layer_sync: bool  # Y: this picture depends only on TL0 pictures
    header_size: int  # bytes of descriptor before the VP8 payload


def parse_descriptor(payload: bytes) -> Vp8Descriptor | None:
    """The descriptor of one VP8 RTP payload, or None if it is malformed."""
    size = len(payload)
    if size < 1:
        return None
    b0 = payload[0]
    start = bool(b0 & 0x10) and not (b0 & 0x07)
    pos = 1
    picture_id: int | None = None
    bits = 0
    pid_pos = 0
    tl0: int | None = None
    tl0_pos = 0
    tid: int | None = None
    sync = False
    if b0 & 0x80:
        if size < 2:
            return None
        x = payload[1]
        pos = 2
        if x & _I:
            if pos >= size:
                return None
            pid_pos = pos
            if payload[pos] & 0x80:
                if pos + 1 >= size:
                    return None
                picture_id = ((payload[pos] & 0x7F) << 8) | payload[pos + 1]
                bits = 15
                pos += 2
            else:
                picture_id = payload[pos] & 0x7F
                bits = 7
                pos += 1
        if x & _L:
            if pos >= size:
                return None
            tl0_pos = pos
            tl0 = payload[pos]
            pos += 1
        if x & (_T | _K):
            if pos >= size:
                return None
            if x & _T:
                tid = payload[pos] >> 6
                sync = bool(payload[pos] & 0x20)
            pos += 1
    keyframe = start and pos < size and not (payload[pos] & 0x01)
    return Vp8Descriptor(start, keyframe, picture_id, bits, pid_pos, tl0, tl0_pos, tid, sync, pos)


def rewrite(payload: bytes, desc: Vp8Descriptor, picture_id: int | None, tl0: int | None) -> bytes:
    """The payload with a new PictureID and/or TL0PICIDX (same field widths)."""
    out = bytearray(payload)
    if picture_id is not None and desc.picture_id is not None:
        if desc.picture_id_bits == 15:
            value = picture_id & 0x7FFF
            out[desc.picture_id_pos] = 0x80 | (value >> 8)
            out[desc.picture_id_pos + 1] = value & 0xFF
        else:
            out[desc.picture_id_pos] = picture_id & 0x7F
    if tl0 is not None and desc.tl0 is not None:
        out[desc.tl0_pos] = tl0 & 0xFF
    return bytes(out)


def picture_id_modulus(desc: Vp8Descriptor) -> int:
    return 1 << desc.picture_id_bits if desc.picture_id_bits else 1


def keyframe_size(payload: bytes, desc: Vp8Descriptor) -> tuple[int, int] | None:
    """Width and height from a key picture's frame header (RFC 6386, 9.1)."""
    if not desc.keyframe:
        return None
    pos = desc.header_size + 3  # 3-byte frame tag
    if len(payload) < pos + 7 or payload[pos : pos + 3] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(payload[pos + 3 : pos + 5], "little") & 0x3FFF
    height = int.from_bytes(payload[pos + 5 : pos + 7], "little") & 0x3FFF
    return width, height
