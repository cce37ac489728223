"""RTP on the wire: parse what the SFU needs, rebuild headers for subscribers.

The payload is never touched: a forwarded packet is a new 12-byte header, a
header-extension block written with the subscriber's extension ids, and the
publisher's payload bytes as they arrived (RFC 3550, RFC 8285).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from sfu.vp8 import Vp8Descriptor

RTP_HEADER = struct.Struct("!BBHII")
_HH = struct.Struct("!HH")
_H = struct.Struct("!H")

SEQ_MOD: Final = 1 << 16
TS_MOD: Final = 1 << 32

# Header-extension URIs the SFU understands.
EXT_MID: Final = "urn:ietf:params:rtp-hdrext:sdes:mid"
EXT_ABS_SEND_TIME: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
EXT_AUDIO_LEVEL: Final = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
EXT_RID: Final = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
EXT_REPAIRED_RID: Final = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"


class RtpError(ValueError):
    """A datagram that is not a usable RTP packet."""


class RtpPacket:
    """The fields of one received RTP packet, payload shared by every consumer."""

    __slots__ = (
        "extensions",
        "keyframe",
        "layer",
        "marker",
        "payload",
        "payload_type",
        "red_primary",
        "seq",
        "ssrc",
        "timestamp",
        "vp8",
    )

    def __init__(
        self,
        marker: bool,
        payload_type: int,
        seq: int,
        timestamp: int,
        ssrc: int,
        extensions: dict[int, bytes],
        payload: bytes,
    ) -> None:
        self.marker = marker
        self.payload_type = payload_type
        self.seq = seq
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.extensions = extensions
        self.payload = payload
        self.keyframe = False
        self.layer = 0  # simulcast layer index, set by the Producer
        self.vp8: Vp8Descriptor | None = None
        # the primary Opus block when the payload is RED (sfu/red.py), set by the Producer
        self.red_primary: bytes | None = None


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 demultiplexing of RTP and RTCP on one port."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def is_srtp(data: bytes) -> bool:
    """An SRTP (not SRTCP) datagram among STUN, DTLS and SRTCP on one socket (RFC 7983)."""
    return len(data) > 12 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223


def parse_rtp(data: bytes) -> RtpPacket:
    size = len(data)
    if size < 12:
        raise RtpError("RTP packet shorter than its fixed header")
    b0, b1, seq, timestamp, ssrc = RTP_HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        raise RtpError("RTP version is not 2")
    pos = 12 + 4 * (b0 & 0x0F)
    if pos > size:
        raise RtpError("truncated RTP CSRC list")
    extensions: dict[int, bytes] = {}
    if b0 & 0x10:
        if pos + 4 > size:
            raise RtpError("truncated RTP header extension")
        profile, words = _HH.unpack_from(data, pos)
        pos += 4
        end = pos + 4 * words
        if end > size:
            raise RtpError("truncated RTP header extension")
        if profile == 0xBEDE:
            _parse_one_byte(data, pos, end, extensions)
        elif profile & 0xFFF0 == 0x1000:
            _parse_two_byte(data, pos, end, extensions)
        pos = end
    end = size
    if b0 & 0x20:
        if size <= pos:
            raise RtpError("RTP padding without payload")
        count = data[-1]
        if count == 0:
            raise RtpError("RTP padding count of zero")
        end -= count
        if end < pos:
            raise RtpError("RTP padding longer than the packet")
    return RtpPacket(bool(b1 & 0x80), b1 & 0x7F, seq, timestamp, ssrc, extensions, data[pos:end])


def _parse_one_byte(data: bytes, pos: int, end: int, out: dict[int, bytes]) -> None:
    while pos < end:
        byte = data[pos]
        if byte == 0:
            pos += 1
            continue
        ext_id = byte >> 4
        if ext_id == 15:
            return
        length = (byte & 0x0F) + 1
        if pos + 1 + length > end:
            raise RtpError("RTP header extension element overruns its block")
        out[ext_id] = data[pos + 1 : pos + 1 + length]
        pos += 1 + length


def _parse_two_byte(data: bytes, pos: int, end: int, out: dict[int, bytes]) -> None:
    while pos + 1 < end:
        ext_id = data[pos]
        if ext_id == 0:
            pos += 1
            continue
        length = data[pos + 1]
        if pos + 2 + length > end:
            raise RtpError("RTP header extension element overruns its block")
        out[ext_id] = data[pos + 2 : pos + 2 + length]
        pos += 2 + length


def extension_block(elements: list[tuple[int, bytes]]) -> bytes:
    """Serialize header extensions (one-byte form when possible, RFC 8285)."""
    if not elements:
        return b""
    if all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in elements):
        body = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in elements)
        profile = 0xBEDE
    else:
        body = b"".join(bytes([i, len(v)]) + v for i, v in elements)
        profile = 0x1000
    body += b"\x00" * (-len(body) % 4)
    return _HH.pack(profile, len(body) // 4) + body


def build_header(
    marker: bool, payload_type: int, seq: int, timestamp: int, ssrc: int, ext: bytes
) -> bytes:
    b0 = 0x90 if ext else 0x80
    return RTP_HEADER.pack(b0, (0x80 if marker else 0) | payload_type, seq, timestamp, ssrc) + ext


def abs_send_time(now_seconds: float) -> bytes:
    """24-bit 6.18 fixed-point seconds, as Chrome's REMB estimator expects."""
    value = int(now_seconds * (1 << 18)) & 0xFFFFFF
    return value.to_bytes(3, "big")


def rtx_unwrap(packet: RtpPacket, media_ssrc: int, media_pt: int) -> bool:
    """Turn an RFC 4588 RTX packet back into the original; False for padding."""
    payload = packet.payload
    if len(payload) <= 2:
        return False
    packet.seq = _H.unpack_from(payload)[0]
    packet.payload = payload[2:]
    packet.ssrc = media_ssrc
    packet.payload_type = media_pt
    return True


def seq_delta(a: int, b: int) -> int:
    """Signed distance a - b between 16-bit sequence numbers."""
    d = (a - b) & 0xFFFF
    return d - SEQ_MOD if d >= 0x8000 else d


def is_keyframe_start(codec_name: str, payload: bytes) -> bool:
    """True for the first packet of a keyframe (where a decoder can start)."""
    if codec_name == "VP8":
        return vp8_is_keyframe_start(payload)
    if codec_name == "H264":
        return h264_is_keyframe_start(payload)
    return False


def vp8_is_keyframe_start(payload: bytes) -> bool:
    """RFC 7741: S=1, PID=0 and the VP8 frame tag's P bit clear."""
    size = len(payload)
    if size < 2:
        return False
    b0 = payload[0]
    if not (b0 & 0x10) or (b0 & 0x07):
        return False
    pos = 1
    if b0 & 0x80:
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: PictureID, 7 or 15 bits
            if pos >= size:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            pos += 1
    return pos < size and not (payload[pos] & 0x01)


_H264_KEY_NALS = (5, 7)


def h264_is_keyframe_start(payload: bytes) -> bool:
    """RFC 6184: an IDR slice or SPS, alone, in a STAP-A, or starting a FU-A."""
    if not payload:
        return False
    nal = payload[0] & 0x1F
    if nal in _H264_KEY_NALS:
        return True
    if nal == 24:  # STAP-A
        pos = 1
        while pos + 2 < len(payload):
            size = _H.unpack_from(payload, pos)[0]
            if payload[pos + 2] & 0x1F in _H264_KEY_NALS:
                return True
            pos += 2 + size
        return False
    if nal == 28 and len(payload) > 1:  # FU-A
        return bool(payload[1] & 0x80) and payload[1] & 0x1F in _H264_KEY_NALS
    return False
