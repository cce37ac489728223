"""The Pacer (sfu/pacer.py): rate, priorities, fast path, overflow, robustness.

Most tests run on a fake clock and a fake loop that only records the drain
callbacks the Pacer schedules; ``FakeLoop.advance`` runs them in time order,
moving the clock to each one's moment. One test drains on a real event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any, cast

import pytest

from sfu.pacer import Pacer, PacerConfig, PacketClass

AUDIO, RTX, VIDEO, PADDING = (
    PacketClass.AUDIO,
    PacketClass.RETRANSMISSION,
    PacketClass.VIDEO,
    PacketClass.PADDING,
)
T0 = 1000.0
BURST = PacerConfig().burst_window


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Timer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Records call_later; ``advance`` fires what is due, in order, at its own moment."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.timers: list[Timer] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self.clock.now + delay, callback)
        self.timers.append(timer)
        return timer

    @property
    def pending(self) -> list[Timer]:
        return [t for t in self.timers if not t.cancelled]

    def advance(self, to: float) -> None:
        while True:
            due = [t for t in self.pending if t.when <= to]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            timer.cancelled = True  # fired: no longer pending
            self.clock.now = max(self.clock.now, timer.when)
            timer.callback()
        self.clock.now = max(self.clock.now, to)


class Wire:
    """The raw egress: what left, when, and of which class (from the payload's first byte)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.sent: list[tuple[float, PacketClass, bytes]] = []
        self.fail_on: set[int] = set()  # call numbers (from 1) that raise
        self.calls = 0

    def __call__(self, data: bytes) -> bool:
        self.calls += 1
        if self.calls in self.fail_on:
            raise OSError("boom")
        self.sent.append((self.clock(), PacketClass(data[12]), data))
        return True

    def of(self, cls: PacketClass) -> list[tuple[float, PacketClass, bytes]]:
        return [s for s in self.sent if s[1] is cls]

    def bytes_until(self, t: float) -> int:
        return sum(len(d) for when, _, d in self.sent if when <= t)


def rtp(cls: PacketClass, size: int, ssrc: int = 1, seq: int = 0) -> bytes:
    header = bytes((0x80, 96)) + seq.to_bytes(2, "big") + bytes(4) + ssrc.to_bytes(4, "big")
    return header + bytes((cls,)) + bytes(size - 13)


def paced(
    bps: float | None, config: PacerConfig | None = None, **kw: Any
) -> tuple[Pacer, Wire, FakeLoop, Clock]:
    clock = Clock()
    loop = FakeLoop(clock)
    wire = Wire(clock)
    pacer = Pacer(wire, config or PacerConfig(), clock, cast(asyncio.AbstractEventLoop, loop), **kw)
    pacer.rate_bps = bps
    return pacer, wire, loop, clock


def test_wide_link_sends_everything_synchronously() -> None:
    """10 Mbit/s, ~1.15 Mbit/s offered (4 x 1200 B frames at 30 fps, audio every 20 ms)."""
    pacer, wire, loop, clock = paced(10_000_000)
    for frame in range(250):
        clock.now = T0 + frame / 30
        for _ in range(4):
            assert pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)
            assert wire.sent[-1][0] == clock.now  # left inside the call
        if frame % 3 == 0:
            assert pacer.send_rtp(rtp(AUDIO, 100), AUDIO)
    assert len(wire.of(VIDEO)) == 1000
    assert pacer.sent_packets == 1000 + 84
    assert pacer.queued_packets == pacer.queued_bytes == pacer.dropped == 0
    assert loop.timers == []  # no drain was ever scheduled
    assert not pacer.drain_scheduled


def test_unpaced_sends_at_once_and_going_unpaced_flushes_by_priority() -> None:
    pacer, wire, loop, _ = paced(None)
    for _ in range(50):
        assert pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)
    assert len(wire.sent) == 50 and loop.timers == []
    pacer.rate_bps = 100_000
    for cls in (VIDEO, VIDEO, PADDING, RTX, VIDEO):
        pacer.send_rtp(rtp(cls, 1000), cls)
    # one video fit the fresh bucket (500 B); padding behind video was refused
    assert pacer.queued_packets == 3 and pacer.dropped == 1
    pacer.rate_bps = 0
    assert [c for _, c, _ in wire.sent[50:]] == [VIDEO, RTX, VIDEO, VIDEO]
    assert pacer.queued_packets == 0 and not pacer.drain_scheduled


def test_keyframe_burst_leaves_at_the_rate() -> None:
    """30 KB (25 x 1200 B) at 250 kbit/s: about 0.96 s, never ahead of the rate."""
    rate = 250_000 / 8
    pacer, wire, loop, _ = paced(250_000)
    for _ in range(25):
        assert pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)
    assert pacer.queued_packets == 23  # the bucket's 1250 B let two go at once
    assert pacer.queue_delay == pytest.approx(23 * 1200 / rate)
    loop.advance(T0 + 2.0)
    times = [t - T0 for t, _, _ in wire.sent]
    assert len(times) == 25 and pacer.queued_packets == 0 and not pacer.drain_scheduled
    done = times[-1] + 1200 / rate  # when the link has carried the last one
    assert done == pytest.approx(30_000 / rate, rel=0.1)
    for t in times:  # never more than the rate plus one bucket and one packet
        assert wire.bytes_until(T0 + t) <= rate * t + rate * BURST + 1200 + 1e-6
    gaps = [b - a for a, b in itertools.pairwise(times[2:])]
    assert min(gaps) == pytest.approx(1200 / rate, rel=0.01)
    # one drain per packet: the wait is for the debt, not a 5 ms tick
    assert len(loop.timers) == 23


def test_audio_is_never_delayed_by_a_keyframe() -> None:
    rate = 250_000 / 8
    pacer, wire, loop, clock = paced(250_000)
    for _ in range(25):
        pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)
    for i in range(60):  # audio every 20 ms for 1.2 s, while the keyframe drains
        loop.advance(T0 + i * 0.02)
        assert pacer.send_rtp(rtp(AUDIO, 100), AUDIO)
        assert wire.sent[-1][1] is AUDIO and wire.sent[-1][0] == clock.now  # delay 0
    loop.advance(T0 + 2.0)
    assert len(wire.of(AUDIO)) == 60 and len(wire.of(VIDEO)) == 25
    # audio took its bytes from the budget: the whole stayed at the rate
    last = wire.of(VIDEO)[-1][0] - T0
    assert wire.bytes_until(T0 + last) == pytest.approx(rate * last, rel=0.1)


def test_audio_above_the_rate_starves_video_no_longer_than_max_debt() -> None:
    """200 B every 10 ms (160 kbit/s) on a 50 kbit/s pacer for 1 s: 2.2 s of debt, capped."""
    pacer, wire, loop, _ = paced(50_000)
    for i in range(100):
        loop.advance(T0 + i * 0.01)
        assert pacer.send_rtp(rtp(AUDIO, 200), AUDIO)
        if i == 50:
            pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)
    assert len(wire.of(AUDIO)) == 100 and wire.of(VIDEO) == []  # audio first, always
    loop.advance(T0 + 5)
    (left, _, _), *_ = wire.of(VIDEO)
    assert left - (T0 + 0.99) <= PacerConfig().max_debt + PacerConfig().tick


def test_retransmissions_overtake_queued_video() -> None:
    pacer, wire, loop, _ = paced(200_000)
    for seq in range(10):
        pacer.send_rtp(rtp(VIDEO, 1000, seq=seq), VIDEO)
    first = len(wire.sent)
    for seq in (100, 101):
        pacer.send_rtp(rtp(RTX, 1000, seq=seq), RTX)
    loop.advance(T0 + 2.0)
    order = [(c, int.from_bytes(d[2:4], "big")) for _, c, d in wire.sent[first:]]
    assert order[:2] == [(RTX, 100), (RTX, 101)]
    assert [c for c, _ in order[2:]] == [VIDEO] * (10 - first)


def test_stale_retransmissions_are_dropped_and_never_speed_up_the_drain() -> None:
    """A thin link must not be flooded with repairs nobody waits for (a NACK storm)."""
    config = PacerConfig(retransmission_max_age=0.5)
    pacer, wire, loop, _ = paced(60_000, config)  # 7.5 kB/s
    for seq in range(40):  # 40 kB of retransmissions: 5 s at the rate
        pacer.send_rtp(rtp(RTX, 1000, seq=seq), RTX)
    loop.advance(T0 + 3.0)
    sent = [t for t, c, _ in wire.sent if c is RTX]
    assert pacer.queued_packets == 0
    assert len(sent) <= 0.55 * 7.5 + 2  # only what fitted within half a second at the rate
    assert pacer.dropped >= 40 - len(sent)


def test_padding_only_when_nothing_else_waits() -> None:
    config = PacerConfig(padding_max_age=0.02)
    pacer, wire, loop, clock = paced(200_000, config)  # 25 kB/s, bucket 1000 B
    assert pacer.send_rtp(rtp(PADDING, 255), PADDING)  # idle link: at once
    assert wire.sent[-1][1] is PADDING
    for _ in range(5):  # padding beyond the budget (4 x 255 B) waits, briefly
        assert pacer.send_rtp(rtp(PADDING, 255), PADDING)
    assert pacer.queued_packets == 2 and len(wire.sent) == 4
    assert pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)  # media queued: padding now refused
    assert not pacer.send_rtp(rtp(PADDING, 255), PADDING)
    assert pacer.dropped == 1
    loop.advance(T0 + 1.0)
    sent = [c for _, c, _ in wire.sent]
    # the video went before the queued padding, which by then was too old to probe
    assert sent[-1] is VIDEO and pacer.dropped == 3 and pacer.queued_packets == 0
    clock.now += 1.0
    assert pacer.send_rtp(rtp(PADDING, 255), PADDING) and wire.sent[-1][1] is PADDING


def test_queued_padding_alone_drains_while_fresh() -> None:
    pacer, wire, loop, _ = paced(200_000)  # 25 kB/s: 255 B every ~10 ms
    for _ in range(8):
        assert pacer.send_rtp(rtp(PADDING, 255), PADDING)
    assert len(wire.sent) == 4 and pacer.queued_packets == 4
    loop.advance(T0 + 1.0)
    # at the rate, all within padding_max_age (50 ms)
    times = [t - T0 for t, _, _ in wire.sent[4:]]
    assert len(times) == 4 and times[-1] < PacerConfig().padding_max_age
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]  # (the first paid a small debt)
    assert gaps == pytest.approx([255 / 25_000] * 2, abs=1e-4)
    assert pacer.dropped == 0 and not pacer.drain_scheduled


def test_max_queue_time_drains_faster_instead_of_dropping() -> None:
    """24 kB at 100 kbit/s would take 1.9 s; with max_queue_time 0.5 s it takes 0.5 s."""
    config = PacerConfig(max_queue_time=0.5)
    pacer, wire, loop, _ = paced(100_000, config)
    for _ in range(20):
        pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)
    loop.advance(T0 + 3.0)
    times = [t - T0 for t, _, _ in wire.sent]
    assert len(times) == 20 and pacer.dropped == 0
    assert 0.4 < times[-1] <= 0.5 + config.tick
    # still spread out (about one packet every 25 ms), not dumped at the deadline
    for start in (0.0, 0.1, 0.2, 0.3, 0.4):
        assert 3 <= sum(start <= t < start + 0.1 for t in times) <= 5


def test_rate_drop_mid_queue() -> None:
    """5 Mbit/s to 50 kbit/s with 100 kB queued: the new rate holds at once."""
    config = PacerConfig(max_queue_time=60.0)  # no deadline here: the rate alone
    pacer, wire, loop, _ = paced(5_000_000, config)
    for _ in range(100):
        pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)
    loop.advance(T0 + 0.02)
    before = len(wire.sent)
    assert 25 <= before <= 35  # the bucket (25 kB) and 20 ms at 625 kB/s
    pacer.rate_bps = 50_000
    assert pacer.queue_delay == pytest.approx(pacer.queued_bytes / 6250)
    loop.advance(T0 + 2.02)
    carried = sum(len(d) for _, _, d in wire.sent[before:])
    assert carried == pytest.approx(2.0 * 6250, abs=1200 + 250)
    assert pacer.drain_scheduled and pacer.dropped == 0


def test_rate_drop_with_the_deadline_still_bounds_the_delay() -> None:
    pacer, wire, loop, _ = paced(5_000_000)
    for _ in range(100):
        pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)
    loop.advance(T0 + 0.02)
    pacer.rate_bps = 50_000
    loop.advance(T0 + 10.0)
    assert len(wire.sent) == 100 and pacer.dropped == 0
    assert wire.sent[-1][0] - T0 <= PacerConfig().max_queue_time + PacerConfig().tick


def test_clock_that_does_not_move() -> None:
    pacer, wire, loop, _ = paced(250_000)
    for _ in range(10):
        pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)
    for _ in range(100):
        pacer.process(T0)
    assert len(wire.sent) == 2  # the bucket's worth, nothing more
    assert pacer.queued_packets == 8 and pacer.drain_scheduled
    assert loop.pending[0].when - T0 >= PacerConfig().tick


def test_close_cancels_the_drain_and_drops_the_queue() -> None:
    pacer, wire, loop, _ = paced(100_000)
    for _ in range(5):
        pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)
    assert len(loop.pending) == 1
    timer = loop.pending[0]
    pacer.close()
    assert timer.cancelled and not pacer.drain_scheduled
    assert pacer.queued_packets == 0 and pacer.dropped == 4
    assert not pacer.send_rtp(rtp(AUDIO, 100), AUDIO)
    assert not pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)
    pacer.process(T0 + 5)
    assert len(wire.sent) == 1 and pacer.dropped == 6 and loop.pending == []


def test_clear_drops_one_track_and_stops_the_timer_when_empty() -> None:
    pacer, wire, loop, _ = paced(100_000)
    for seq in range(6):
        pacer.send_rtp(rtp(VIDEO, 1200, ssrc=1 + seq % 2), VIDEO)
    assert pacer.queued_packets == 5
    assert pacer.clear(VIDEO, ssrc=2) == 3
    assert pacer.queued_packets == 2 and pacer.queued_bytes == 2400
    assert pacer.clear(RTX) == 0 and pacer.clear(AUDIO) == 0
    assert pacer.clear(VIDEO) == 2
    assert not pacer.drain_scheduled and pacer.dropped == 5 and pacer.queued_bytes == 0
    loop.advance(T0 + 1)
    assert len(wire.sent) == 1


def test_exception_in_send_is_counted_and_the_drain_goes_on() -> None:
    pacer, wire, loop, _ = paced(100_000)
    wire.fail_on = {3}
    for seq in range(6):
        pacer.send_rtp(rtp(VIDEO, 1200, seq=seq), VIDEO)
    loop.advance(T0 + 2)
    assert pacer.send_errors == 1 and pacer.dropped == 1
    assert pacer.sent_packets == 5 and pacer.queued_packets == 0
    assert [int.from_bytes(d[2:4], "big") for _, _, d in wire.sent] == [0, 1, 3, 4, 5]


def test_prepare_stamps_in_send_order() -> None:
    """A transport-wide sequence number written at send time follows the wire order."""
    stamped: list[PacketClass] = []
    queued_flags: list[bool] = []

    def prepare(data: bytes, cls: PacketClass, queued: bool) -> bytes:
        stamped.append(cls)
        queued_flags.append(queued)
        return data[:2] + len(stamped).to_bytes(2, "big") + data[4:] + b"\x00" * 4

    pacer, wire, loop, clock = paced(100_000, prepare=prepare)
    for _ in range(4):
        pacer.send_rtp(rtp(VIDEO, 1000), VIDEO)
    clock.now += 0.001
    pacer.send_rtp(rtp(AUDIO, 100), AUDIO)
    loop.advance(T0 + 1)
    assert [c for _, c, _ in wire.sent] == stamped == [VIDEO, AUDIO, VIDEO, VIDEO, VIDEO]
    assert [int.from_bytes(d[2:4], "big") for _, _, d in wire.sent] == [1, 2, 3, 4, 5]
    assert pacer.sent_bytes == 4 * 1004 + 104  # the prepared bytes are what counts
    # the first video left at once; the others waited (their abs-send-time needs restamping)
    assert queued_flags == [False, False, True, True, True]


def test_config_must_be_positive() -> None:
    with pytest.raises(ValueError, match="tick"):
        PacerConfig(tick=0)


async def test_real_loop_drains_a_burst_at_about_the_rate() -> None:
    """30 kB at 800 kbit/s: 4 kB at once (the bucket), the rest over ~0.26 s of real time."""
    rate = 800_000 / 8
    wire = Wire(time.monotonic)
    pacer = Pacer(wire)
    pacer.rate_bps = 800_000
    start = time.monotonic()
    for _ in range(25):
        pacer.send_rtp(rtp(VIDEO, 1200), VIDEO)
    assert 15 <= pacer.queued_packets <= 21  # ~4 kB went at once; the drain is on the loop
    while pacer.queued_packets and time.monotonic() - start < 3:
        await asyncio.sleep(0.01)
    elapsed = wire.sent[-1][0] - start
    assert pacer.queued_packets == 0 and not pacer.drain_scheduled
    assert 0.8 * (30_000 - 4_000 - 1200) / rate <= elapsed < 0.8  # late timers only slow it
    for t, _, _ in wire.sent:
        assert wire.bytes_until(t) <= rate * (t - start) + rate * BURST + 1200 + 1e-6
    pacer.close()
