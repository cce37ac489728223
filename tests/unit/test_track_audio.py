"""Unit tests for sfu/track_audio.py: the audio side of a published track."""

from __future__ import annotations

from sfu.media import CodecInfo, MediaKind, Source
from sfu.producer import Producer
from sfu.rtp import build_header, extension_block, parse_rtp
from sfu.track_audio import SILENCE, TrackAudio

OPUS = CodecInfo("audio/opus", 48_000, 111, channels=2)


def test_silent_without_red_and_never_asked() -> None:
    audio = TrackAudio()
    assert audio.level == SILENCE
    assert audio.level_ext is None and audio.red_payload_type is None
    assert audio.cap is None and not audio.thin_packets


def test_ask_is_new_only_when_the_cap_or_the_packets_change() -> None:
    audio = TrackAudio()
    assert not audio.ask(None, False)
    assert audio.ask(16_000, True)
    assert (audio.cap, audio.thin_packets) == (16_000, True)
    assert not audio.ask(16_000, True)
    assert audio.ask(16_000, False)
    assert audio.ask(None, False)
    assert audio.cap is None


def test_the_producer_reads_the_level_of_each_packet() -> None:
    producer = Producer("p:1", "p", MediaKind.AUDIO, Source.MICROPHONE, OPUS, "0", lambda _: None)
    producer.audio.level_ext = 1
    producer.bind_ssrc(0x1234)
    for seq, level in enumerate((40, 25)):
        ext = extension_block([(1, bytes([0x80 | level]))])
        data = build_header(False, 111, seq, 960 * seq, 0x1234, ext) + b"opus"
        producer.receive_rtp(parse_rtp(data), seq * 20, len(data))
        assert producer.audio.level == level
