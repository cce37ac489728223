"""RTCP on the wire (RFC 3550, RFC 4585, RFC 5104, draft-alvestrand-rmcat-remb).

Parsing returns small typed records; builders return bytes ready for SRTCP.
Transport-wide congestion control feedback (RTPFB fmt 15) is parsed by
sfu/twcc.py; a malformed one is skipped without losing the rest of its
compound packet.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

from sfu.twcc import RTPFB_TRANSPORT_CC, TransportFeedback, TwccError, parse_transport_feedback

SR = 200
RR = 201
SDES = 202
BYE = 203
RTPFB = 205
PSFB = 206

RTPFB_NACK = 1
PSFB_PLI = 1
PSFB_FIR = 4
PSFB_APP = 15
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)

_HDR = struct.Struct("!BBH")
_I = struct.Struct("!I")
_II = struct.Struct("!II")
_SR_INFO = struct.Struct("!IIIII")
_BLOCK = struct.Struct("!IIIIII")


class RtcpError(ValueError):
    pass


@dataclass(slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_seq: int
    jitter: int
    lsr: int
    dlsr: int


@dataclass(slots=True)
class SenderReport:
    ssrc: int
    ntp: int  # 64-bit NTP timestamp
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(slots=True)
class ReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(slots=True)
class Nack:
    sender_ssrc: int
    media_ssrc: int
    lost: list[int]


@dataclass(slots=True)
class KeyframeRequest:
    """PLI, or FIR naming ``media_ssrc``."""

    sender_ssrc: int
    media_ssrc: int
    fir: bool


@dataclass(slots=True)
class Remb:
    sender_ssrc: int
    bitrate: int
    ssrcs: list[int]


@dataclass(slots=True)
class Bye:
    sources: list[int]


RtcpRecord = SenderReport | ReceiverReport | Nack | KeyframeRequest | Remb | Bye | TransportFeedback


def parse_rtcp(data: bytes) -> list[RtcpRecord]:
    """Parse a compound RTCP datagram; unknown types are skipped."""
    records: list[RtcpRecord] = []
    pos = 0
    size = len(data)
    while pos + 4 <= size:
        b0, pt, words = _HDR.unpack_from(data, pos)
        if b0 >> 6 != 2:
            raise RtcpError("RTCP version is not 2")
        end = pos + 4 * (words + 1)
        if end > size:
            raise RtcpError("truncated RTCP packet")
        count = b0 & 0x1F
        body = data[pos + 4 : end]
        if b0 & 0x20 and body:  # padding
            body = body[: len(body) - body[-1]]
        record = _parse_one(pt, count, body)
        if record is not None:
            records.append(record)
        pos = end
    return records


def _blocks(body: bytes, offset: int, count: int) -> list[ReportBlock]:
    blocks = []
    for i in range(count):
        start = offset + 24 * i
        if start + 24 > len(body):
            raise RtcpError("truncated report block")
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, start)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        blocks.append(ReportBlock(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr))
    return blocks


def _parse_one(pt: int, count: int, body: bytes) -> RtcpRecord | None:
    if pt == SR:
        if len(body) < 24:
            raise RtcpError("truncated sender report")
        ssrc, ntp_hi, ntp_lo, rtp_ts, packets, octets = struct.unpack_from("!IIIIII", body)
        return SenderReport(
            ssrc, (ntp_hi << 32) | ntp_lo, rtp_ts, packets, octets, _blocks(body, 24, count)
        )
    if pt == RR:
        if len(body) < 4:
            raise RtcpError("truncated receiver report")
        return ReceiverReport(_I.unpack_from(body)[0], _blocks(body, 4, count))
    if pt == BYE:
        return Bye([_I.unpack_from(body, 4 * i)[0] for i in range(min(count, len(body) // 4))])
    if pt in (RTPFB, PSFB):
        if len(body) < 8:
            raise RtcpError("truncated feedback message")
        sender, media = _II.unpack_from(body)
        fci = body[8:]
        if pt == RTPFB:
            if count == RTPFB_NACK:
                return Nack(sender, media, _nack_lost(fci))
            if count == RTPFB_TRANSPORT_CC:
                try:
                    return parse_transport_feedback(sender, media, fci)
                except TwccError:
                    return None
            return None
        if count == PSFB_PLI:
            return KeyframeRequest(sender, media, fir=False)
        if count == PSFB_FIR:
            targets = [_I.unpack_from(fci, i)[0] for i in range(0, len(fci) - 7, 8)]
            return KeyframeRequest(sender, targets[0] if targets else media, fir=True)
        if count == PSFB_APP and fci[:4] == b"REMB" and len(fci) >= 8:
            n = fci[4]
            exponent = fci[5] >> 2
            mantissa = ((fci[5] & 0x03) << 16) | (fci[6] << 8) | fci[7]
            ssrcs = [_I.unpack_from(fci, 8 + 4 * i)[0] for i in range(n) if 12 + 4 * i <= len(fci)]
            return Remb(sender, mantissa << exponent, ssrcs)
    return None


def _nack_lost(fci: bytes) -> list[int]:
    lost: list[int] = []
    for i in range(0, len(fci) - 3, 4):
        pid, blp = struct.unpack_from("!HH", fci, i)
        lost.append(pid)
        for bit in range(16):
            if blp & (1 << bit):
                lost.append((pid + bit + 1) & 0xFFFF)
    return lost


# --------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------


def _header(count: int, pt: int, body_len: int) -> bytes:
    return _HDR.pack(0x80 | count, pt, body_len // 4)


def _block_bytes(block: ReportBlock) -> bytes:
    lost = block.packets_lost & 0xFFFFFF
    return _BLOCK.pack(
        block.ssrc,
        (block.fraction_lost << 24) | lost,
        block.highest_seq,
        block.jitter,
        block.lsr,
        block.dlsr,
    )


def build_sr(sr: SenderReport) -> bytes:
    body = _SR_INFO.pack(
        sr.ssrc, sr.ntp >> 32, sr.ntp & 0xFFFFFFFF, sr.rtp_timestamp, sr.packet_count
    ) + _I.pack(sr.octet_count & 0xFFFFFFFF)
    body += b"".join(_block_bytes(b) for b in sr.reports)
    return _header(len(sr.reports), SR, len(body)) + body


def build_rr(rr: ReceiverReport) -> bytes:
    body = _I.pack(rr.ssrc) + b"".join(_block_bytes(b) for b in rr.reports)
    return _header(len(rr.reports), RR, len(body)) + body


def build_sdes_cname(ssrc: int, cname: str) -> bytes:
    value = cname.encode()[:255]
    chunk = _I.pack(ssrc) + bytes([1, len(value)]) + value + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return _header(1, SDES, len(chunk)) + chunk


def build_nack(sender_ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    fci = b""
    pending = sorted(set(lost), key=lambda s: s)
    while pending:
        pid = pending.pop(0)
        blp = 0
        rest = []
        for seq in pending:
            d = (seq - pid) & 0xFFFF
            if 1 <= d <= 16:
                blp |= 1 << (d - 1)
            else:
                rest.append(seq)
        pending = rest
        fci += struct.pack("!HH", pid, blp)
    body = _II.pack(sender_ssrc, media_ssrc) + fci
    return _header(RTPFB_NACK, RTPFB, len(body)) + body


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    return _header(PSFB_PLI, PSFB, 8) + _II.pack(sender_ssrc, media_ssrc)


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: list[int]) -> bytes:
    exponent = 0
    mantissa = max(0, int(bitrate))
    while mantissa >= (1 << 18):
        mantissa >>= 1
        exponent += 1
    fci = b"REMB" + bytes(
        [len(ssrcs), (exponent << 2) | (mantissa >> 16), (mantissa >> 8) & 0xFF, mantissa & 0xFF]
    )
    fci += b"".join(_I.pack(s) for s in ssrcs)
    body = _II.pack(sender_ssrc, 0) + fci
    return _header(PSFB_APP, PSFB, len(body)) + body


def ntp_now() -> int:
    """The current wall-clock time as a 64-bit NTP timestamp."""
    seconds = time.time() + NTP_EPOCH_OFFSET
    return int(seconds * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp (the LSR field of a report block)."""
    return (ntp >> 16) & 0xFFFFFFFF
