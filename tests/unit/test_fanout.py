"""Unit tests for sfu/fanout.py: a track's receivers, a failing one cut off alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from sfu.fanout import Fanout
from sfu.rtcp import SenderReport

REPORT = SenderReport(ssrc=1000, ntp=1 << 32, rtp_timestamp=90000, packet_count=1, octet_count=1)


@dataclass(eq=False)
class FakeConsumer:
    fanout: Fanout
    broken: bool = False
    reports: list[tuple[SenderReport, int]] = field(default_factory=list)
    closed: bool = False

    def translate_sender_report(self, report: SenderReport, layer: int = 0) -> None:
        if self.broken:
            raise RuntimeError("a subscriber's bug")
        self.reports.append((report, layer))

    def close(self) -> None:
        self.closed = True
        self.fanout.consumers.discard(self)  # as Consumer.close does


def fanout_of(*broken: bool) -> tuple[Fanout, list[FakeConsumer]]:
    fanout = Fanout()
    consumers = [FakeConsumer(fanout, b) for b in broken]
    fanout.consumers.update(consumers)  # type: ignore[arg-type]
    return fanout, consumers


def test_sender_reports_reach_every_consumer_with_their_layer() -> None:
    fanout, consumers = fanout_of(False, False)
    fanout.sender_report(REPORT, 2)
    assert all(c.reports == [(REPORT, 2)] for c in consumers)


def test_a_consumer_that_raises_is_closed_alone_and_the_room_told() -> None:
    fanout, (good, bad) = fanout_of(False, True)
    failed: list[object] = []
    fanout.on_consumer_failed = failed.append
    fanout.sender_report(REPORT, 0)
    assert bad.closed and not good.closed
    assert failed == [bad]
    left: set[object] = set(fanout.consumers)
    assert left == {good}
    assert good.reports == [(REPORT, 0)]


def test_a_room_hook_that_raises_does_not_stop_the_others() -> None:
    fanout, consumers = fanout_of(False, False)

    def hook(consumer: object) -> None:
        raise RuntimeError("the room's bug")

    fanout.on_consumer_failed = hook
    fanout.drop_failed(consumers)  # type: ignore[arg-type]
    assert all(c.closed for c in consumers)


def test_close_closes_every_consumer_and_drops_the_taps() -> None:
    fanout, consumers = fanout_of(False, False)
    fanout.taps.append(lambda packet, arrival_ms: None)
    fanout.close()
    assert all(c.closed for c in consumers)
    assert not fanout.consumers and not fanout.taps
