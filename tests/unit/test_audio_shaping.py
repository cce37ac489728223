"""Unit tests for sfu/audio_shaping.py: RED on or off and the Opus wish of one subscriber."""

from __future__ import annotations

from sfu.audio_shaping import AudioShaping
from sfu.consumer import Consumer
from sfu.media import CodecInfo, MediaKind, Source
from sfu.producer import Producer

OPUS = CodecInfo("audio/opus", 48_000, 111, channels=2)


def test_red_on_and_no_wish_until_told() -> None:
    shaping = AudioShaping()
    assert shaping.red_enabled
    assert shaping.cap_bps is None
    assert shaping.red_inner_pt is None


def test_red_blocks_are_retagged_only_where_the_subscriber_numbers_opus_differently() -> None:
    same = AudioShaping()
    same.bind(111, 111)
    assert same.red_inner_pt is None
    other = AudioShaping()
    other.bind(109, 111)
    assert other.red_inner_pt == 109


def test_the_consumer_shows_its_shaping_as_before() -> None:
    producer = Producer("p:1", "p", MediaKind.AUDIO, Source.MICROPHONE, OPUS, "0", lambda _: None)
    consumer = Consumer("c", producer, "s")
    consumer.red_enabled = False
    consumer.audio_cap_bps = 16_000
    assert not consumer.audio_shaping.red_enabled
    assert consumer.audio_shaping.cap_bps == 16_000
    consumer.audio_shaping.red_enabled = True
    assert consumer.red_enabled
