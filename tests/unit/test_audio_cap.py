"""sfu/audio_cap.py: when a subscriber's link wishes its publishers' audio smaller."""

from __future__ import annotations

from sfu.audio_cap import RELIEF_HOLD, ThinLinkAudio
from sfu.consumer import Consumer
from sfu.media import CodecInfo, MediaKind, Source
from sfu.producer import Producer


def test_no_wish_on_a_link_with_room_or_without_congestion() -> None:
    thin = ThinLinkAudio(16_000)
    assert thin.update(300_000, 33_000, congested=True, now=0.0) is None
    # a low start estimate is not a thin link until the link has shown congestion
    assert thin.update(40_000, 33_000, congested=False, now=1.0) is None


def test_wish_on_a_congested_link_mostly_taken_by_audio_then_held_until_room_lasts() -> None:
    thin = ThinLinkAudio(16_000)
    assert thin.update(40_000, 33_000, congested=True, now=0.0) == 16_000
    # the audio is smaller now, the link no wider: the wish stays
    assert thin.update(40_000, 20_000, congested=True, now=5.0) == 16_000
    # room for four times the audio it had, but not for long enough
    assert thin.update(140_000, 20_000, congested=True, now=6.0) == 16_000
    assert thin.update(60_000, 20_000, congested=True, now=7.0) == 16_000
    assert thin.update(140_000, 20_000, congested=True, now=8.0) == 16_000
    assert thin.update(140_000, 20_000, congested=True, now=8.0 + RELIEF_HOLD - 0.1) == 16_000
    assert thin.update(140_000, 20_000, congested=True, now=8.0 + RELIEF_HOLD) is None


def test_a_dip_that_leaves_twice_the_audio_does_not_restart_the_wait() -> None:
    thin = ThinLinkAudio(16_000)
    assert thin.update(40_000, 33_000, congested=True, now=0.0) == 16_000
    assert thin.update(140_000, 20_000, congested=True, now=1.0) == 16_000
    # a recovered link's estimate wobbles: 100 kbit/s is still three times the audio before
    assert thin.update(100_000, 20_000, congested=True, now=4.0) == 16_000
    assert thin.update(140_000, 20_000, congested=True, now=1.0 + RELIEF_HOLD) is None


def test_zero_never_wishes() -> None:
    assert ThinLinkAudio(0).update(10_000, 33_000, congested=True, now=0.0) is None


def test_the_producer_asks_for_the_smallest_wish_of_its_subscribers() -> None:
    codec = CodecInfo("audio/opus", 48_000, 111)
    producer = Producer("p:1", "p", MediaKind.AUDIO, Source.MICROPHONE, codec, "0", lambda _: None)
    consumers = [Consumer(f"c{i}", producer, f"s{i}") for i in range(3)]
    for consumer in consumers:
        producer.add_consumer(consumer)
    assert producer.wanted_audio_cap() is None
    consumers[0].audio_cap_bps = 24_000
    consumers[1].audio_cap_bps = 16_000
    assert producer.wanted_audio_cap() == 16_000
    consumers[1].close()
    assert producer.wanted_audio_cap() == 24_000
