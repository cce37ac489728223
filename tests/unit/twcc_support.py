"""Shared by the transport-cc unit tests: the test SSRCs and a checked parse of one packet."""

from __future__ import annotations

import struct

from sfu.rtcp import parse_rtcp
from sfu.twcc import RTPFB_TRANSPORT_CC, TransportFeedback, parse_transport_feedback

SENDER = 0x01020304
MEDIA = 0x05060708
T0 = 1_000_000_000  # arrival clock, us


def unpack(packet: bytes) -> TransportFeedback:
    """Check the RTCP framing of one built packet and parse its FCI."""
    b0, pt, words = struct.unpack_from("!BBH", packet)
    assert b0 >> 6 == 2
    assert b0 & 0x1F == RTPFB_TRANSPORT_CC
    assert pt == 205
    assert len(packet) % 4 == 0
    assert len(packet) == 4 * (words + 1)
    body = packet[4:]
    if b0 & 0x20:
        pad = body[-1]
        assert 1 <= pad <= 3
        assert body[-pad:-1] == bytes(pad - 1)
        body = body[:-pad]
    sender, media = struct.unpack_from("!II", body)
    feedback = parse_transport_feedback(sender, media, body[8:])
    assert parse_rtcp(packet) == [feedback]  # the generic RTCP parser finds the same
    return feedback
