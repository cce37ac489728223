"""The queueing-delay signal between probes (sfu/bandwidth.py, sfu/downlink.py).

The round trip of the server's RTX sender reports above the link's own
means a queue in front of the receiver; the receivers' reported jitter
raises the bar, so a link whose delay varies by itself is not taken for a
full one.
"""

from __future__ import annotations

import asyncio

import pytest

from sfu.bandwidth import DownlinkEstimator
from sfu.consumer import Consumer
from sfu.rtcp import ReportBlock, SenderReport, ntp_middle, parse_rtcp
from sfu.tuning import TUNING
from tests.unit.estimator_support import T0, estimator
from tests.unit.test_downlink_controller import Subscriber, send, subscriber, video_producer

SENT = 800_000
NOW = T0 + 5.0  # well after the start: no decrease is recent


def queued(est: DownlinkEstimator, delay: float, at: float, jitter: float = 0.0) -> None:
    est.on_queue_delay(delay, at - 0.1, at, jitter, SENT)


# --------------------------------------------------------------------------
# the estimator
# --------------------------------------------------------------------------


def test_one_report_over_the_limit_is_not_yet_a_full_queue() -> None:
    est = estimator(1_000_000)
    queued(est, TUNING.queue_delay_limit * 2, NOW)
    assert est.decreases == 0
    assert est.estimate == 1_000_000
    assert est.queue_delay == TUNING.queue_delay_limit * 2


def test_reports_in_a_row_over_the_limit_lower_the_estimate_below_what_is_sent() -> None:
    est = estimator(1_000_000)
    for i in range(TUNING.queue_delay_reports):
        queued(est, 0.25, NOW + i)
    assert est.decreases == 1
    assert est.estimate == pytest.approx(SENT * TUNING.queue_decrease)
    assert est.last_decrease_reason.startswith("queue 250 ms")


def test_a_report_without_a_queue_starts_the_count_again() -> None:
    est = estimator(1_000_000)
    queued(est, 0.25, NOW)
    queued(est, 0.01, NOW + 1)
    queued(est, 0.25, NOW + 2)
    assert est.decreases == 0
    queued(est, 0.25, NOW + 3)
    assert est.decreases == 1


def test_jitter_raises_the_limit() -> None:
    est = estimator(1_000_000)
    jitter = 0.05  # a radio link: 200 ms of delay variation is its own
    delay = TUNING.jitter_margin * jitter - 0.01
    assert delay > TUNING.queue_delay_limit
    for i in range(TUNING.queue_delay_reports + 2):
        queued(est, delay, NOW + i, jitter)
    assert est.decreases == 0
    for i in range(TUNING.queue_delay_reports):
        queued(est, TUNING.jitter_margin * jitter + 0.05, NOW + 10 + i, jitter)
    assert est.decreases == 1


def test_no_second_decrease_within_the_hold() -> None:
    est = estimator(1_000_000)
    for i in range(TUNING.queue_delay_reports):
        queued(est, 0.25, NOW + i * 0.5)
    first = est.estimate
    at = est.last_decrease
    queued(est, 0.25, at + TUNING.decrease_hold / 3)
    queued(est, 0.25, at + TUNING.decrease_hold / 2)
    assert est.decreases == 1
    assert est.estimate == first
    queued(est, 0.25, at + TUNING.decrease_hold)  # the queue is still there
    assert est.decreases == 2


def test_nothing_sent_is_no_queue_of_ours() -> None:
    est = estimator(1_000_000)
    for i in range(TUNING.queue_delay_reports + 1):
        est.on_queue_delay(0.3, NOW + i - 0.1, NOW + i, 0.0, 0.0)
    assert est.decreases == 0


def test_loss_soon_after_a_queue_counts_as_congestion_despite_a_steady_remb() -> None:
    est = estimator(1_000_000)
    est.on_remb(("c1",), 900_000, SENT, 50_000, NOW - 1)
    est.on_loss(0.2, SENT, NOW)  # random loss, REMB steady: holds
    assert est.decreases == 0
    for i in range(TUNING.queue_delay_reports):
        queued(est, 0.25, NOW + 1 + i)
    assert est.decreases == 1
    est.on_loss(0.2, SENT, NOW + 1 + TUNING.queue_delay_reports)
    assert est.decreases == 2
    assert est.last_decrease_reason.startswith("loss")


# --------------------------------------------------------------------------
# the controller: round trips of its RTX sender reports, jitter of the report
# --------------------------------------------------------------------------


def rtx_report(sub: Subscriber, video: Consumer) -> int:
    """Send one RTX sender report; returns the LSR its echo will carry."""
    assert video.send_rtx_report()
    sr = parse_rtcp(sub.sinks[video].rtcp[-1])[0]
    assert isinstance(sr, SenderReport)
    return ntp_middle(sr.ntp)


def echo(sub: Subscriber, video: Consumer, lsr: int, jitter_ts: int = 0) -> None:
    """The receiver's report: the media stream (with jitter) and the RTX stream (echoing lsr)."""
    assert video.params is not None and video.params.rtx_ssrc is not None
    media = ReportBlock(video.params.ssrc, 0, 0, 0, jitter_ts, 0, 0)
    rtx = ReportBlock(video.params.rtx_ssrc, 0, 0, 0, 0, lsr, 0)
    sub.controller.on_report([(video, media, False), (video, rtx, True)])


async def measured_subscriber() -> tuple[Subscriber, Consumer]:
    sub = subscriber(video_producer("alice"))
    video = sub.consumers[0]
    sub.tick(0.4)
    send(video, 400_000)
    sub.tick(0.9)  # 800 kbit/s measured, before the first probe may start
    assert not sub.controller.estimator.probing
    return sub, video


async def test_reports_that_wait_in_a_queue_lower_the_estimate() -> None:
    sub, video = await measured_subscriber()
    controller = sub.controller
    echo(sub, video, rtx_report(sub, video))  # the link's own round trip: ~0
    assert controller.rtt is not None and controller.rtt < TUNING.queue_delay_limit
    for _ in range(TUNING.queue_delay_reports):
        lsr = rtx_report(sub, video)
        await asyncio.sleep(TUNING.queue_delay_limit + 0.05)  # the report waited in a queue
        echo(sub, video, lsr)
    estimator = controller.estimator
    assert estimator.decreases == 1
    assert estimator.estimate == pytest.approx(SENT * TUNING.queue_decrease, rel=0.01)
    link = controller.link_stats()
    assert link["rtt_ms"] >= TUNING.queue_delay_limit * 1000
    assert link["queue_delay_ms"] >= TUNING.queue_delay_limit * 1000


async def test_the_reported_jitter_is_kept_and_raises_the_bar() -> None:
    sub, video = await measured_subscriber()
    controller = sub.controller
    echo(sub, video, rtx_report(sub, video))
    jitter_ts = 90 * 60  # 60 ms at 90 kHz: 240 ms of delay variation is this link's own
    for _ in range(TUNING.queue_delay_reports):
        lsr = rtx_report(sub, video)
        await asyncio.sleep(TUNING.queue_delay_limit + 0.05)
        echo(sub, video, lsr, jitter_ts)
    assert controller.jitter == pytest.approx(0.06)
    assert controller.estimator.decreases == 0
    quality = controller.quality(sub.consumers)
    assert quality["link"]["jitter_ms"] == 60.0
    assert quality["link"]["loss"] == 0.0
