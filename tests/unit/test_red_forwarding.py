"""RED audio through the packet path: Producer, Consumer, DownlinkController, recorder.

Real Producers and Consumers with an in-memory sink; the publisher numbers
Opus 111 and RED 63, as Chromium does.
"""

from __future__ import annotations

import io
import time
from typing import Any

import av

from benchmarks.loadgen.rtp_source import packetize
from benchmarks.synthetic_media import opus_clip
from recording.webm_writer import ParticipantWebm
from sfu.consumer import Consumer, ConsumerState, OutboundParams
from sfu.downlink import TICK, DownlinkController
from sfu.media import CodecInfo, MediaKind, PacketClass, Source
from sfu.peer import MediaSettings
from sfu.producer import Producer
from sfu.red_choice import RED_SHARE_OFF, RED_SHARE_ON
from sfu.rtp import RtpPacket, build_header, parse_rtp
from tests.unit.test_red import red_payload

OPUS = CodecInfo("audio/opus", 48_000, 111, channels=2)
RED_PT = 63
SSRC = 0x900


class Sink:
    def __init__(self) -> None:
        self.rtp: list[RtpPacket] = []

    def send_rtp(self, data: bytes, cls: PacketClass = PacketClass.VIDEO) -> bool:
        self.rtp.append(parse_rtp(data))
        return True

    def send_rtcp(self, data: bytes) -> bool:
        return True


def producer(red: bool = True) -> Producer:
    made = Producer(
        "audio-alice", "alice", MediaKind.AUDIO, Source.MICROPHONE, OPUS, "0", lambda _: None
    )
    made.red_payload_type = RED_PT if red else None
    made.bind_ssrc(SSRC)
    return made


def consumer(
    source: Producer, opus_pt: int = 111, red_pt: int | None = RED_PT, nack: bool = False
) -> tuple[Consumer, Sink]:
    made = Consumer(f"c{len(source.consumers)}", source, "bob")
    source.add_consumer(made)
    sink = Sink()
    params = OutboundParams(
        "0", 0x5000, None, opus_pt, None, None, None, None, nack, "s", red_payload_type=red_pt
    )
    made.bind(params, sink)
    return made, sink


def send(source: Producer, seq: int, payload: bytes, pt: int = RED_PT) -> None:
    data = build_header(False, pt, seq, 960 * seq, SSRC, b"") + payload
    source.receive_rtp(parse_rtp(data), int(time.monotonic() * 1000), len(data))


FRAME = red_payload([b"previous", b"current!"])


def test_red_goes_unchanged_where_the_payload_types_agree() -> None:
    source = producer()
    _, sink = consumer(source)
    send(source, 1, FRAME)
    [out] = sink.rtp
    assert (out.payload_type, out.payload) == (RED_PT, FRAME)


def test_red_blocks_are_retagged_to_the_subscribers_opus() -> None:
    source = producer()
    _, sink = consumer(source, opus_pt=96, red_pt=120)
    send(source, 1, FRAME)
    [out] = sink.rtp
    assert out.payload_type == 120
    assert out.payload == red_payload([b"previous", b"current!"], pt=96)


def test_a_subscriber_without_red_gets_the_primary_frame() -> None:
    source = producer()
    _, sink = consumer(source, opus_pt=96, red_pt=None)
    send(source, 1, FRAME)
    [out] = sink.rtp
    assert (out.payload_type, out.payload) == (96, b"current!")


def test_red_off_for_a_weak_link_sends_the_primary_frame() -> None:
    source = producer()
    made, sink = consumer(source)
    made.red_enabled = False
    send(source, 1, FRAME)
    made.red_enabled = True
    send(source, 2, red_payload([b"current!", b"next"]))
    assert [(p.payload_type, p.payload) for p in sink.rtp] == [
        (111, b"current!"),
        (RED_PT, red_payload([b"current!", b"next"])),
    ]
    assert sink.rtp[1].seq == (sink.rtp[0].seq + 1) & 0xFFFF


def test_malformed_red_is_dropped_and_numbering_stays_continuous() -> None:
    source = producer()
    _, with_red = consumer(source)
    _, without = consumer(source, red_pt=None)
    send(source, 1, FRAME)
    send(source, 2, bytes([0x80 | 111, 0, 0]))  # truncated header
    send(source, 3, red_payload([b"a", b"b"], pt=0))  # RED over another codec
    send(source, 4, FRAME)
    assert source.counters.dropped == 2
    for sink in (with_red, without):
        assert len(sink.rtp) == 2
        # the publisher's numbering shows the hole: it is theirs, not ours to close
        assert sink.rtp[1].seq == (sink.rtp[0].seq + 3) & 0xFFFF


def test_plain_opus_from_a_red_publisher_goes_as_opus() -> None:
    source = producer()
    _, sink = consumer(source)
    send(source, 1, b"plain-opus", pt=111)
    [out] = sink.rtp
    assert (out.payload_type, out.payload) == (111, b"plain-opus")


def test_an_empty_primary_is_not_sent_and_leaves_no_hole() -> None:
    source = producer()
    _, sink = consumer(source, red_pt=None)
    send(source, 1, FRAME)
    send(source, 2, red_payload([b"current!", b""]))
    send(source, 3, FRAME)
    assert [p.payload for p in sink.rtp] == [b"current!", b"current!"]
    assert sink.rtp[1].seq == (sink.rtp[0].seq + 1) & 0xFFFF


def test_a_retransmission_keeps_the_payload_type_it_was_sent_with() -> None:
    source = producer()
    made, sink = consumer(source, nack=True)
    made.red_enabled = False
    send(source, 1, FRAME)
    made.red_enabled = True
    send(source, 2, FRAME)
    first, second = sink.rtp
    made.handle_nack([first.seq, second.seq])
    assert [(p.payload_type, p.payload) for p in sink.rtp[2:]] == [
        (111, b"current!"),
        (RED_PT, FRAME),
    ]


def test_a_publisher_without_red_drops_red_payload_types() -> None:
    source = producer(red=False)
    _, sink = consumer(source)
    send(source, 1, FRAME)
    assert sink.rtp == [] and source.counters.dropped == 1


# -- the downlink's choice ------------------------------------------------------------


def controller_with(
    red_consumers: int, start_kbps: int = 300
) -> tuple[DownlinkController, list[Consumer], list[dict[str, Any]]]:
    consumers: list[Consumer] = []
    events: list[dict[str, Any]] = []
    settings = MediaSettings(subscriber_start_bitrate_kbps=start_kbps)
    controller = DownlinkController("bob", settings, lambda: consumers, events.append)
    for _ in range(red_consumers):
        source = producer()
        source.layers[0].known_bitrate = 64_000  # Opus at 32 kbit/s with one redundant copy
        made, _ = consumer(source)
        consumers.append(made)
    return controller, consumers, events


def test_red_stays_on_while_the_link_has_room() -> None:
    controller, consumers, _ = controller_with(2)
    controller.estimator.estimate = 1_000_000
    controller.tick(time.monotonic() + TICK)
    assert controller.red_on and all(c.red_enabled for c in consumers)
    assert controller.quality([])["audio_red"] is True


def test_red_off_on_a_weak_link_and_back_with_hysteresis() -> None:
    controller, consumers, _ = controller_with(1)
    now = time.monotonic()
    cost = 64_000
    controller.estimator.decreases = 1  # the link showed congestion
    controller.estimator.estimate = cost / RED_SHARE_OFF - 1_000
    controller.tick(now + TICK)
    assert not controller.red_on and not consumers[0].red_enabled
    assert controller.quality([])["audio_red"] is False
    # between the two thresholds: stays off
    controller.estimator.estimate = (cost / RED_SHARE_OFF + cost / RED_SHARE_ON) / 2
    controller.tick(now + 2 * TICK)
    assert not consumers[0].red_enabled
    controller.estimator.estimate = cost / RED_SHARE_ON + 1_000
    controller.tick(now + 3 * TICK)
    assert controller.red_on and consumers[0].red_enabled


def test_a_low_estimate_without_congestion_keeps_red() -> None:
    """Little sent on a wide link: the estimate is low, and proves nothing about room."""
    controller, consumers, _ = controller_with(1)
    controller.estimator.estimate = 64_000 / RED_SHARE_OFF - 1_000
    controller.tick(time.monotonic() + TICK)
    assert controller.red_on and consumers[0].red_enabled


def test_no_red_negotiated_reports_none() -> None:
    controller, _, _ = controller_with(0)
    controller.tick(time.monotonic() + TICK)
    assert controller.quality([])["audio_red"] is None


def test_a_closed_consumer_is_left_alone() -> None:
    controller, consumers, _ = controller_with(1)
    consumers[0].close()
    assert consumers[0].state is ConsumerState.CLOSED
    controller.estimator.estimate = 10_000
    controller.tick(time.monotonic() + TICK)
    assert controller.quality([])["audio_red"] is None


# -- the recorder ------------------------------------------------------------------------


def decoded_audio(webm: ParticipantWebm) -> list[bytes]:
    container = av.open(io.BytesIO(webm.close()))
    return [bytes(frame.planes[0]) for frame in container.decode(audio=0)]


def test_the_recorder_keeps_the_primary_frames() -> None:
    """A RED recording decodes to the very samples of a plain Opus one."""
    frames = [f.payloads[0] for f in packetize(opus_clip())[:100]]
    red, plain = ParticipantWebm(video=False, audio=True), ParticipantWebm(video=False, audio=True)
    for i, frame in enumerate(frames):
        payload = red_payload([frames[i - 1], frame]) if i else red_payload([frame])
        packet = RtpPacket(False, RED_PT, i, 960 * i, SSRC, {}, payload)
        packet.red_primary = frame
        red.add_audio(packet, 20 * i)
        plain.add_audio(RtpPacket(False, 111, i, 960 * i, SSRC, {}, frame), 20 * i)
    expected = decoded_audio(plain)
    assert len(expected) == 100
    assert decoded_audio(red) == expected
