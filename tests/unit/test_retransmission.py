"""Consumer retransmissions: NACKs answered, and repeated once when a paused track resumes.

aiortc's receiver asks for a missing packet once (again only when a new gap
appears) and its jitter buffer waits for it: a retransmission lost on a link
too weak for video would block its video for ~30 s after the resume. So the
retransmissions of the seconds before a pause are sent again at the resume.
"""

from __future__ import annotations

import pytest

from sfu import consumer as consumer_module
from sfu.consumer import Consumer
from sfu.rtx_stream import REPEAT_MAX, REPEAT_WINDOW, RETRANSMIT_MIN_INTERVAL
from tests.unit.test_red_forwarding import consumer, producer, send

PLAIN_PT = 111


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(consumer_module.time, "monotonic", fake)
    return fake


def forward(count: int, first: int = 1) -> tuple[Consumer, list[int]]:
    """A Consumer (with NACK) that forwarded ``count`` packets; their outgoing numbers."""
    source = producer(red=False)
    made, sink = consumer(source, red_pt=None, nack=True)
    for seq in range(first, first + count):
        send(source, seq, bytes([seq & 0xFF]) * 20, pt=PLAIN_PT)
    made.test_sink = sink  # type: ignore[attr-defined]
    return made, [p.seq for p in sink.rtp]


def sent(made: Consumer) -> list[int]:
    return [p.seq for p in made.test_sink.rtp]  # type: ignore[attr-defined]


def test_a_nack_is_answered_with_the_buffered_packet(clock: Clock) -> None:
    made, out = forward(5)
    made.handle_nack([out[1], out[3]])
    assert sent(made)[5:] == [out[1], out[3]]
    assert made.counters.retransmissions == 2


def test_retransmissions_before_a_pause_are_repeated_at_the_resume(clock: Clock) -> None:
    made, out = forward(5)
    made.handle_nack([out[1], out[3]])
    clock.now += RETRANSMIT_MIN_INTERVAL
    made.handle_nack([out[1]])  # asked twice (a round trip apart): repeated once
    clock.now += 1
    made.pause("bandwidth")
    clock.now += 12
    made.resume("bandwidth")
    send(made.producer, 6, b"after the pause", pt=PLAIN_PT)
    after = sent(made)[8:]
    # the repeats go out before the first packet after the resume
    assert sorted(after[:2]) == sorted([out[1], out[3]])
    assert len(after) == 3
    # only once: a second pause and resume repeats nothing
    made.pause("bandwidth")
    made.resume("bandwidth")
    send(made.producer, 7, b"again", pt=PLAIN_PT)
    assert len(sent(made)) == 12


def test_a_packet_is_retransmitted_at_most_once_per_round_trip(clock: Clock) -> None:
    made, out = forward(5)
    made.handle_nack([out[2]])
    made.handle_nack([out[2]])  # the receiver asked again before the repair could arrive
    assert sent(made).count(out[2]) == 2  # the original and one retransmission
    clock.now += RETRANSMIT_MIN_INTERVAL
    made.handle_nack([out[2]])
    assert sent(made).count(out[2]) == 3


def test_a_paused_track_retransmits_nothing(clock: Clock) -> None:
    """Behind a full link its repairs are lost again and asked for again: a NACK storm."""
    made, out = forward(5)
    made.pause("bandwidth")
    before = len(sent(made))
    made.handle_nack([out[1], out[2]])
    assert len(sent(made)) == before


def test_older_retransmissions_are_not_repeated(clock: Clock) -> None:
    made, out = forward(5)
    made.handle_nack([out[0]])
    clock.now += REPEAT_WINDOW + 1
    made.handle_nack([out[2]])
    made.pause("bandwidth")
    made.resume("bandwidth")
    send(made.producer, 6, b"after the pause", pt=PLAIN_PT)
    assert sent(made)[7:] == [out[2], (out[4] + 1) & 0xFFFF]


def test_at_most_repeat_max_are_repeated_the_latest(clock: Clock) -> None:
    count = REPEAT_MAX + 8
    made, out = forward(count)
    for seq in out:
        made.handle_nack([seq])
    made.pause("muted")
    made.resume("muted")
    before = len(sent(made))
    send(made.producer, count + 1, b"after the pause", pt=PLAIN_PT)
    repeated = sent(made)[before:-1]
    assert repeated == out[-REPEAT_MAX:]


def test_without_a_pause_nothing_is_repeated(clock: Clock) -> None:
    made, out = forward(5)
    made.handle_nack([out[1]])
    send(made.producer, 6, b"next", pt=PLAIN_PT)
    assert sent(made)[5:] == [out[1], (out[4] + 1) & 0xFFFF]
