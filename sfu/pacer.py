"""Pacer: one subscriber transport's packets leave at a set rate, by priority.

A keyframe (10-30 KB) sent at once fills a thin link's bottleneck queue and
the audio behind it arrives late or not at all. The Pacer sits between the
Consumers and the raw egress (SRTP + ``sendto``) and spreads what exceeds the
pacing rate, with strict priority audio > retransmissions > video > padding.

*Budget*: a token bucket in bytes, filled at the pacing rate, holding at most
``burst_window`` of it. A packet may leave while the budget is positive and
takes its size from it; the debt that leaves is waited out by the next ones.
Rate 0 (or None): unpaced, everything leaves at once.
*Fast path*: nothing queued and budget positive: the packet is sent inside
``send_rtp`` (a clock read and some arithmetic; no task, timer or allocation).
On a wide link every packet takes it.
*Audio bypasses*: small, steady and the most delay-sensitive, it never waits;
it still takes its bytes from the budget, so the video after it waits for
them. Its debt is capped (``max_debt``) so audio above the rate cannot starve
video for long after it stops.
*No idle timer*: one ``call_later`` drain, scheduled only while something is
queued, for when the debt is paid (never sooner than ``tick``).
*Overflow*: video is never dropped for being late. When the oldest queued
video packet would not leave within ``max_queue_time`` at the pacing rate,
the queue drains faster, at what meets that deadline (as libwebrtc does): a
bounded delay, for a burst above the estimate. A retransmission that waited
longer than ``retransmission_max_age`` is dropped instead: the receiver has
asked again or given up, and on a thin link a backlog of repairs drained
faster fed a NACK storm. Padding exists to probe, and behind media it
probes nothing: refused while media is queued, dropped once older than
``padding_max_age``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sfu.media import PacketClass

logger = logging.getLogger(__name__)


_AUDIO = PacketClass.AUDIO
_PADDING = PacketClass.PADDING
_DRAIN_ORDER = (PacketClass.RETRANSMISSION, PacketClass.VIDEO, PacketClass.PADDING)


@dataclass(frozen=True, slots=True)
class PacerConfig:
    """The Pacer's constants (seconds)."""

    # the most budget the bucket holds: after a pause this much of the rate may go at once
    burst_window: float = 0.04
    # the most debt (seconds of the rate) audio can run up: audio alone above the rate must
    # not starve video for longer than this after it stops (above one video packet's worth)
    max_debt: float = 0.5
    # the longest a queued media packet should wait; past it the queue drains faster than
    # the rate. Longer than a keyframe takes at the lowest rate video runs at, or every
    # keyframe on a thin link would be pushed into the bottleneck's own (dropping) queue
    max_queue_time: float = 2.0
    # queued padding older than this is dropped, not sent: its probe's moment has passed
    padding_max_age: float = 0.05
    # a queued retransmission older than this is dropped: the receiver has asked again
    # or given up, and on a thin link old repairs only feed a NACK storm (real Chromium
    # at 60 kbit/s: 800 kbit/s of retransmissions when they could speed up the drain)
    retransmission_max_age: float = 0.5
    # the shortest wait between two drains: queued packets leave in batches this far apart
    tick: float = 0.005

    def __post_init__(self) -> None:
        for name in (
            "burst_window",
            "max_debt",
            "max_queue_time",
            "padding_max_age",
            "retransmission_max_age",
            "tick",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"PacerConfig.{name} must be positive")


class Pacer:
    """Paces one transport's RTP: audio at once, the rest within the budget, by priority.

    ``send``: the raw egress, True if the packet left. ``prepare(data, cls, queued)``,
    if given, runs right before each ``send`` and returns the bytes to send:
    the place to stamp what follows the sending order or moment
    (transport-wide sequence numbers, abs-send-time). ``dropped`` counts what
    was accepted but never left (refused or stale padding, cleared, closed,
    ``send`` False or raising); ``send_errors`` the raises (also in dropped).
    """

    __slots__ = (
        "_backlog",
        "_budget",
        "_clock",
        "_closed",
        "_config",
        "_loop",
        "_prepare",
        "_queues",
        "_rate",
        "_refilled_at",
        "_send",
        "_timer",
        "dropped",
        "send_errors",
        "sent_by_class",
        "sent_bytes",
        "sent_packets",
    )

    def __init__(
        self,
        send: Callable[[bytes], bool],
        config: PacerConfig = PacerConfig(),  # frozen: safe to share
        clock: Callable[[], float] = time.monotonic,
        loop: asyncio.AbstractEventLoop | None = None,
        prepare: Callable[[bytes, PacketClass, bool], bytes] | None = None,
    ) -> None:
        self._send = send
        self._prepare = prepare
        self._config = config
        self._clock = clock
        self._loop = loop  # else the running loop, once a drain is first scheduled
        self._rate = 0.0  # bytes per second; 0: unpaced
        self._budget = 0.0  # bytes
        self._refilled_at = clock()
        # (data, queued at) per class, in _DRAIN_ORDER; audio is never queued
        self._queues: tuple[deque[tuple[bytes, float]], ...] = (deque(), deque(), deque())
        self._backlog = 0  # queued bytes
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.sent_packets = 0
        self.sent_bytes = 0
        self.sent_by_class = [0, 0, 0, 0]  # bytes sent, by PacketClass
        self.dropped = 0
        self.send_errors = 0

    # -- rate and state --------------------------------------------------------------

    @property
    def rate_bps(self) -> float:
        """The pacing rate in bit/s; 0 when unpaced."""
        return self._rate * 8

    @rate_bps.setter
    def rate_bps(self, bps: float | None) -> None:
        """Set the rate. Queued packets are reconsidered at once (all sent if unpaced).

        Credit earned so far counts at the old rate; the budget is then held
        within the new rate's bucket and debt limits (a drop from 5 Mbit/s to
        50 kbit/s leaves neither seconds of debt nor of credit).
        """
        now = self._clock()
        rate = bps / 8 if bps is not None and bps > 0 else 0.0
        if self._rate > 0:
            self._refill(now, self._rate)
            config = self._config
            debt, cap = rate * config.max_debt, rate * config.burst_window
            self._budget = min(max(self._budget, -debt), cap)
        else:  # pacing (re)starts with a full bucket
            self._budget = rate * self._config.burst_window
            self._refilled_at = now
        self._rate = rate
        if self._backlog:
            self.process(now)

    @property
    def queued_bytes(self) -> int:
        return self._backlog

    @property
    def queued_packets(self) -> int:
        return sum(len(queue) for queue in self._queues)

    @property
    def queue_delay(self) -> float:
        """Seconds the queued bytes take to leave at the pacing rate (0 when unpaced)."""
        return self._backlog / self._rate if self._rate > 0 else 0.0

    @property
    def drain_scheduled(self) -> bool:
        """Whether a drain callback is pending (only ever while something is queued)."""
        return self._timer is not None

    # -- sending ---------------------------------------------------------------------

    def send_rtp(self, data: bytes, cls: PacketClass = PacketClass.VIDEO) -> bool:
        """Send now or queue: True if sent or queued, False if dropped (or ``send`` failed).

        A queued packet may still be dropped (``clear``, ``close``, ``send``).
        """
        if self._closed:
            self.dropped += 1
            return False
        if cls is _AUDIO:
            rate = self._rate
            if rate <= 0.0:
                return self._emit(data, cls)
            self._refill(self._clock(), rate)
            before = self._budget
            sent = self._emit(data, cls)
            floor = -rate * self._config.max_debt
            if self._budget < floor:
                self._budget = min(before, floor)
            return sent
        if not self._backlog:
            rate = self._rate
            if rate <= 0.0:
                return self._emit(data, cls)
            now = self._clock()
            elapsed = now - self._refilled_at
            if elapsed > 0.0:
                self._refilled_at = now
                budget = self._budget + elapsed * rate
                cap = rate * self._config.burst_window
                self._budget = budget if budget < cap else cap
            if self._budget > 0.0:
                return self._emit(data, cls)
        elif cls is _PADDING and (self._queues[0] or self._queues[1]):
            self.dropped += 1  # padding behind media probes nothing
            return False
        else:
            now = self._clock()
        self._queues[cls - 1].append((data, now))
        self._backlog += len(data)
        if self._timer is None:
            self._schedule(self._rate)
        return True

    def process(self, now: float | None = None) -> None:
        """Drain by priority within the budget; reschedule if anything is left.

        The scheduled callback calls it; so can tests, with their own ``now``.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._closed or not self._backlog:
            return
        if now is None:
            now = self._clock()
        rate = self._drain_rate(now)
        if rate > 0.0:
            self._refill(now, rate)
        queues = self._queues
        config = self._config
        video_never = float("inf")
        max_age = (config.retransmission_max_age, video_never, config.padding_max_age)
        while self._backlog and (rate <= 0.0 or self._budget > 0.0):
            index = 0 if queues[0] else 1 if queues[1] else 2
            cls = _DRAIN_ORDER[index]
            data, queued_at = queues[index].popleft()
            self._backlog -= len(data)
            if now - queued_at > max_age[index]:
                self.dropped += 1  # stale padding or retransmission (media is never too late)
                continue
            self._emit(data, cls, queued=True)
        if self._backlog:
            self._schedule(rate)

    def clear(self, cls: PacketClass, ssrc: int | None = None) -> int:
        """Drop the queued ``cls`` packets (of ``ssrc`` only, if given): a paused track
        stops at once instead of draining for seconds. Returns how many."""
        if cls is _AUDIO:
            return 0
        queue = self._queues[cls - 1]
        if ssrc is None:
            removed = list(queue)
            queue.clear()
        else:
            wanted = ssrc.to_bytes(4, "big")  # RTP header bytes 8-11
            removed = [e for e in queue if e[0][8:12] == wanted]
            kept = [e for e in queue if e[0][8:12] != wanted]
            queue.clear()
            queue.extend(kept)
        self._backlog -= sum(len(data) for data, _ in removed)
        self.dropped += len(removed)
        if not self._backlog and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return len(removed)

    def close(self) -> None:
        """Cancel the drain and drop what is queued; later sends return False."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for queue in self._queues:
            self.dropped += len(queue)
            queue.clear()
        self._backlog = 0

    # -- internals -------------------------------------------------------------------

    def _emit(self, data: bytes, cls: PacketClass, queued: bool = False) -> bool:
        try:
            if self._prepare is not None:
                data = self._prepare(data, cls, queued)
            sent = self._send(data)
        except Exception:
            self.send_errors += 1
            self.dropped += 1
            if self.send_errors & (self.send_errors - 1) == 0:  # 1st, 2nd, 4th, 8th...
                logger.exception("pacer: sending failed (%d time(s))", self.send_errors)
            return False
        size = len(data)
        self._budget -= size
        if sent:
            self.sent_packets += 1
            self.sent_bytes += size
            self.sent_by_class[cls] += size
        else:
            self.dropped += 1
        return sent

    def _refill(self, now: float, rate: float) -> None:
        elapsed = now - self._refilled_at
        if elapsed > 0.0:  # a clock that stands (or went back) adds nothing
            self._refilled_at = now
            self._budget = min(self._budget + elapsed * rate, rate * self._config.burst_window)

    def _drain_rate(self, now: float) -> float:
        """The pacing rate, raised so the oldest media packet leaves within max_queue_time."""
        rate = self._rate
        if rate <= 0.0:
            return 0.0
        _, video, padding = self._queues
        if not video:
            return rate  # retransmissions and padding never speed the drain up: they go stale
        config = self._config
        time_left = max(config.max_queue_time - (now - video[0][1]), config.tick)
        if self._backlog <= rate * time_left:
            return rate
        media = self._backlog - sum(len(e[0]) for e in padding)
        return max(rate, media / time_left)

    def _schedule(self, rate: float) -> None:
        """Drain again once the budget is positive (not sooner than a tick)."""
        if self._timer is not None:
            return
        delay = max(self._config.tick, (1.0 - self._budget) / rate) if rate > 0.0 else 0.0
        loop = self._loop
        if loop is None:
            try:
                loop = self._loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop: the owner drives process() itself
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.process()
