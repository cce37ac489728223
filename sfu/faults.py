"""Faults that stay where they happen: one bug in one participant's path ends nobody's call.

aiortc calls our packet handlers from its transport's receive loop: an
exception there propagates into the loop, which then closes that transport.
A bug in one subscriber's Consumer, met while the *publisher's* packet is
forwarded, would end the publisher's connection and with it everyone's
media. So:

- each Consumer's forward and each recorder tap runs guarded in
  ``Producer.receive_rtp``: a failing one is closed alone (the subscriber is
  told ``track_failed``), the others go on;
- every packet handler of a connection is guarded (``Peer``): a packet that
  trips a bug is dropped, the connection stays;
- background loops (a publisher's feedback loop, a subscriber's downlink
  controller and negotiation) are supervised: one that dies ends *its*
  connection with ``connection_failed`` (the client reconnects) instead of
  silently stopping NACKs or adaptation, and close paths finish anyway.

Each fault is counted by part (``digiclinic_isolated_faults_total``) and
logged: the first of each part with its traceback, then one line at each
power of two, so a fault on every packet cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

logger = logging.getLogger(__name__)

PARTS = ("consumer", "tap", "packet", "loop")


class Faults:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def record(self, part: str, where: object, exc: BaseException) -> None:
        self.counts[part] += 1
        n = self.counts[part]
        if n == 1:
            logger.error("%s fault isolated in %r", part, where, exc_info=exc)
        elif n & (n - 1) == 0:
            logger.error("%d %s faults isolated so far (latest in %r: %r)", n, part, where, exc)


FAULTS = Faults()  # one per process, as /metrics is


def supervise(task: asyncio.Task[None], where: object, on_crash: Callable[[], None]) -> None:
    """When ``task`` dies of an exception (not a cancellation): count it, then ``on_crash``."""

    def done(finished: asyncio.Task[None]) -> None:
        if finished.cancelled():
            return
        exc = finished.exception()
        if exc is not None:
            FAULTS.record("loop", where, exc)
            on_crash()

    task.add_done_callback(done)
