"""Unit tests for sfu/uplink_feedback.py: what a publisher is told about its uplink.

PublisherPeer's packet path feeds these (test_media_path.py, test_twcc.py
cover the wire); these check when feedback is due and what is sent.
"""

from __future__ import annotations

from sfu.rtcp import Remb, TransportFeedback, parse_rtcp
from sfu.twcc import FEEDBACK_MIN_INTERVAL_S, FEEDBACK_THIN_INTERVAL_S
from sfu.uplink_feedback import RembFeedback, TwccFeedback

SENDER = 0x01020304
MEDIA = 0x05060708
T0 = 50.0
EPS = 1e-6  # past an interval despite float rounding


def fed(count: int, size: int = 1200, start: float = T0) -> TwccFeedback:
    twcc = TwccFeedback()
    twcc.ext = 3
    twcc.start(start)
    for seq in range(count):
        twcc.recorder.on_packet(seq, int(start * 1_000_000) + 1000 * seq)
        twcc.bytes_since += size
    twcc.media_ssrc = MEDIA
    return twcc


def test_nothing_is_due_without_packets() -> None:
    twcc = TwccFeedback()
    assert twcc.ext is None and not twcc.arrivals
    twcc.start(T0)
    assert twcc.due(SENDER, T0 + 1) == []
    assert twcc.sent == 0


def test_feedback_waits_for_its_interval_then_names_the_media_ssrc() -> None:
    twcc = fed(50)  # ~10 Mbit/s over the first 50 ms: the shortest interval
    assert twcc.due(SENDER, T0 + FEEDBACK_MIN_INTERVAL_S / 2) == []
    packets = twcc.due(SENDER, T0 + FEEDBACK_MIN_INTERVAL_S + EPS)
    assert len(packets) == 1 and twcc.sent == 1
    (feedback,) = parse_rtcp(packets[0])
    assert isinstance(feedback, TransportFeedback)
    assert (feedback.sender_ssrc, feedback.media_ssrc) == (SENDER, MEDIA)
    assert feedback.base_seq == 0 and len(feedback.packets) == 50
    assert twcc.bytes_since == 0
    assert twcc.due(SENDER, T0 + 1) == []  # everything was reported


def test_a_thin_uplink_gets_feedback_less_often() -> None:
    twcc = fed(2, size=100)  # audio alone, a crawl
    assert twcc.due(SENDER, T0 + FEEDBACK_THIN_INTERVAL_S - 0.01) == []
    assert len(twcc.due(SENDER, T0 + FEEDBACK_THIN_INTERVAL_S + EPS)) == 1


def test_no_remb_without_an_estimate_or_a_video_stream() -> None:
    remb = RembFeedback()
    assert remb.build(SENDER, [MEDIA]) is None
    remb.estimator.bitrate = 300_000
    assert remb.build(SENDER, []) is None
    assert remb.sent == 0 and remb.sent_bitrate == 0


def test_a_remb_carries_the_estimate_and_is_remembered() -> None:
    remb = RembFeedback()
    remb.estimator.bitrate = 300_000
    packet = remb.build(SENDER, [MEDIA, MEDIA + 2])
    assert packet is not None
    (record,) = parse_rtcp(packet)
    assert isinstance(record, Remb)
    assert record.ssrcs == [MEDIA, MEDIA + 2]
    assert abs(record.bitrate - 300_000) <= 300_000 >> 17  # (mantissa and exponent)
    assert remb.sent == 1 and remb.sent_bitrate == 300_000
