"""Streams that stopped arriving (sfu/delivery.py, sfu/downlink.py).

A receiver report says "no loss" for a stream none of whose packets
arrived since the last report; the highest sequence number it reports,
behind what was sent over a second ago, says otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from sfu.delivery import DELIVERY_AGE, DeliveryCheck
from sfu.rtcp import ReportBlock
from sfu.rtp import parse_rtp
from tests.unit.test_downlink_controller import keyframe, send, subscriber, video_producer


@dataclass(eq=False)
class Stream:
    last_out_seq: int | None = None


def sent(check: DeliveryCheck, stream: Stream, seqs: list[tuple[float, int]]) -> None:
    for at, seq in seqs:
        stream.last_out_seq = seq
        check.sample([stream], at)


def test_a_receiver_that_got_everything_sent_a_second_ago_lost_nothing() -> None:
    check, stream = DeliveryCheck(), Stream()
    sent(check, stream, [(0.0, 100), (0.5, 110), (1.0, 120), (1.5, 130)])
    # packets sent in the last second may still be on their way
    assert check.unreported_loss(stream, 110, now=1.5 + 0.01) == 0.0
    assert check.unreported_loss(stream, 125, now=2.0) == 0.0


def test_a_stalled_stream_is_lost_in_proportion_to_what_was_sent() -> None:
    check, stream = DeliveryCheck(), Stream()
    sent(check, stream, [(0.0, 100), (0.5, 110), (1.0, 120), (1.5, 130)])
    # sent by 1.0: 120; the receiver has seen 100 (nothing since 0.0)
    assert check.unreported_loss(stream, 100, now=1.0 + DELIVERY_AGE) == 1.0
    # half of the second before ``due`` (100..120) is missing
    assert check.unreported_loss(stream, 110, now=1.0 + DELIVERY_AGE) == pytest.approx(0.5)


def test_sequence_numbers_wrap() -> None:
    check, stream = DeliveryCheck(), Stream()
    sent(check, stream, [(0.0, 0xFFF0), (1.0, 0x0010)])
    assert check.unreported_loss(stream, 0x10000 + 0x0000, now=2.0) == pytest.approx(0.5)
    assert check.unreported_loss(stream, 0x0010, now=2.0) == 0.0


def test_the_links_own_round_trip_gives_packets_longer() -> None:
    check, stream = DeliveryCheck(), Stream()
    sent(check, stream, [(0.0, 100), (1.0, 120)])
    assert check.unreported_loss(stream, 100, now=2.0) == 1.0
    assert check.unreported_loss(stream, 100, now=2.0, round_trip=0.6) == 0.0


def test_nothing_sent_yet_and_nothing_sent_lately_are_no_loss() -> None:
    check, stream = DeliveryCheck(), Stream()
    sent(check, stream, [(0.0, 100)])
    assert check.unreported_loss(stream, 100, now=0.5) == 0.0  # too soon to tell
    assert check.unreported_loss(Stream(), 0, now=5.0) == 0.0  # never sampled
    silent = Stream()  # e.g. a paused video: nothing sent, nothing missing
    check.sample([silent], 0.0)
    assert check.unreported_loss(silent, 0, now=5.0) == 0.0
    sent(check, stream, [(1.0, 100), (2.0, 100)])
    assert check.unreported_loss(stream, 100, now=3.5) == 0.0


def test_a_paused_streams_lost_last_packets_count_for_one_second_only() -> None:
    check, stream = DeliveryCheck(), Stream()
    # packets until 1.0, then the stream is paused; 115..120 never arrived
    sent(check, stream, [(0.0, 100), (0.5, 110), (1.0, 120), (1.5, 120), (2.0, 120)])
    assert check.unreported_loss(stream, 114, now=2.0) == pytest.approx(6 / 20)
    sent(check, stream, [(2.5, 120), (3.0, 120)])
    assert check.unreported_loss(stream, 114, now=3.0) == 0.0


def test_streams_that_end_are_forgotten() -> None:
    check, stream = DeliveryCheck(), Stream()
    sent(check, stream, [(0.0, 100), (1.0, 120)])
    check.sample([], 1.5)
    assert check.unreported_loss(stream, 100, now=2.0) == 0.0


async def test_the_controller_counts_a_stalled_video_stream_as_lost() -> None:
    producer = video_producer("alice")
    sub = subscriber(producer)
    video = sub.consumers[0]
    t0 = time.monotonic()

    def forward(seq: int) -> None:
        data = keyframe(0, seq)
        producer.receive_rtp(parse_rtp(data), int(time.monotonic() * 1000), len(data))

    forward(2)
    first = video.last_out_seq
    assert first is not None
    sub.controller.tick(t0 + 0.5)
    for seq in range(3, 13):
        forward(seq)
    send(video, 100_000)
    sub.controller.tick(t0 + 1.0)
    assert video.params is not None
    # the receiver's block: nothing lost "as far as it knows", but nothing new either
    stalled = ReportBlock(video.params.ssrc, 0, 0, first, 0, 0, 0)
    sub.controller.on_report([(video, stalled, False)], now=t0 + 1.0 + DELIVERY_AGE + 0.1)
    assert sub.controller.estimator.loss == 1.0
    assert sub.controller.link_stats()["loss"] == 1.0
    caught_up = ReportBlock(video.params.ssrc, 0, 0, (first + 10) & 0xFFFF, 0, 0, 0)
    sub.controller.on_report([(video, caught_up, False)], now=t0 + 1.0 + DELIVERY_AGE + 0.2)
    assert sub.controller.estimator.loss == 0.0
