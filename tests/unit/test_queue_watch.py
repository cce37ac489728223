"""Unit tests for sfu/queue_watch.py: a queue in the round trip, between probes.

The estimator and controller behaviour is in test_queue_delay.py; these
check the count of reports on its own.
"""

from __future__ import annotations

from sfu.queue_watch import QueueWatch
from sfu.tuning import TUNING

OVER = TUNING.queue_delay_limit * 2


def test_full_only_after_enough_reports_in_a_row() -> None:
    queue = QueueWatch()
    results = [queue.over(OVER, 0.0) for _ in range(TUNING.queue_delay_reports)]
    assert results == [False] * (TUNING.queue_delay_reports - 1) + [True]
    assert queue.over(OVER, 0.0)  # still full until it is acted on


def test_a_report_without_a_queue_starts_the_count_again() -> None:
    queue = QueueWatch()
    for _ in range(TUNING.queue_delay_reports - 1):
        assert not queue.over(OVER, 0.0)
    assert not queue.over(TUNING.queue_delay_limit, 0.0)  # at the bar is no queue
    for _ in range(TUNING.queue_delay_reports - 1):
        assert not queue.over(OVER, 0.0)


def test_jitter_raises_the_bar() -> None:
    queue = QueueWatch()
    jitter = OVER / TUNING.jitter_margin + 0.01  # a radio link's own variation
    for _ in range(TUNING.queue_delay_reports + 1):
        assert not queue.over(OVER, jitter)


def test_acting_on_a_full_queue_counts_afresh() -> None:
    queue = QueueWatch()
    assert queue.last_full < 0 and queue.delay == 0.0
    for _ in range(TUNING.queue_delay_reports):
        queue.over(OVER, 0.0)
    queue.full(12.0)
    assert queue.last_full == 12.0
    assert not queue.over(OVER, 0.0)  # one report over the bar is not yet a full queue
