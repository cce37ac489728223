"""The delay-based half of the send-side estimator in ``sfu/gcc.py``.

Four small parts, each with one job, chained as in libwebrtc's GoogCC:

- :class:`InterArrival` groups packets sent within 5 ms of each other (one
  frame, one burst) and yields, per completed group, how much later it
  arrived than the previous one compared with how much later it was sent.
- :class:`TrendlineDetector` smooths the accumulated delay variation, fits a
  line to the last 20 groups and calls the link OVERUSING when the slope,
  scaled, stays above an adaptive threshold (its queue is filling),
  UNDERUSING when it is below minus the threshold (draining), else NORMAL.
- :class:`AimdRateControl` turns that signal into a rate: increase in
  NORMAL (8 %/s far from the last congestion point, about a packet per
  2 x (RTT + 100 ms) near it), decrease to 0.85 x the acknowledged rate on
  OVERUSING, hold on UNDERUSING. An increase never goes past 1.5 x the
  acknowledged rate + 10 kbit/s: an idle link proves nothing.
- :class:`DelayBasedBwe` wires them together for one link.

Two measurements ride along: :class:`AckedBitrate` (what the peer received
lately, which bounds the AIMD) and :class:`QueueDelay` (the one-way queueing
delay: the arrival-minus-send offset above its least over the last 10 s).

Units are seconds and bit/s, except the detector's threshold constants,
which keep libwebrtc's milliseconds so that its published defaults apply.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sfu.gcc import GccConfig

logger = logging.getLogger(__name__)


class BandwidthUsage(enum.Enum):
    """What the delay trend says about the link's queue."""

    NORMAL = "normal"
    UNDERUSING = "underusing"
    OVERUSING = "overusing"


@dataclass(frozen=True, slots=True)
class GroupDelta:
    """One completed send group compared with the one before it (seconds)."""

    send_delta: float
    arrival_delta: float
    arrival_time: float  # receiver clock: when the completed group's last packet arrived


@dataclass(slots=True)
class _Group:
    first_send: float
    last_send: float
    first_arrival: float
    last_arrival: float


class InterArrival:
    """Send bursts -> per-group delay variation (libwebrtc's InterArrivalDelta)."""

    def __init__(self, config: GccConfig) -> None:
        self._c = config
        self._current: _Group | None = None
        self._prev: _Group | None = None
        self._inverted = 0  # consecutive groups whose arrival order was inverted

    def reset(self) -> None:
        self._current = None
        self._prev = None
        self._inverted = 0

    def add(self, send_time: float, arrival_time: float) -> GroupDelta | None:
        """Feed one received packet in send order; a delta when a group completes."""
        cur = self._current
        if cur is None:
            self._current = _Group(send_time, send_time, arrival_time, arrival_time)
            return None
        if send_time < cur.first_send:
            if cur.first_send - send_time < self._c.clock_jump:
                return None  # sent before the group being built: out of order, ignored
            self.reset()  # the sender's clock went back: start afresh
            self._current = _Group(send_time, send_time, arrival_time, arrival_time)
            return None
        if self._belongs(cur, send_time, arrival_time):
            cur.last_send = max(cur.last_send, send_time)
            cur.last_arrival = arrival_time
            return None
        delta = None
        prev = self._prev
        if prev is None:
            self._prev = cur
        else:
            send_delta = cur.last_send - prev.last_send
            arrival_delta = cur.last_arrival - prev.last_arrival
            if abs(arrival_delta - send_delta) >= self._c.clock_jump:
                logger.debug(
                    "gcc: arrival offset jumped by %.3f s, reset", arrival_delta - send_delta
                )
                self.reset()
                self._current = _Group(send_time, send_time, arrival_time, arrival_time)
                return None
            if arrival_delta < 0:
                # this group arrived before the previous one: ignore it (it
                # never becomes the reference); several in a row mean the
                # receiver's clock went back, start afresh
                self._inverted += 1
                if self._inverted >= self._c.reordered_groups_reset:
                    self.reset()
            else:
                self._inverted = 0
                delta = GroupDelta(send_delta, arrival_delta, cur.last_arrival)
                self._prev = cur
        self._current = _Group(send_time, send_time, arrival_time, arrival_time)
        return delta

    def _belongs(self, cur: _Group, send_time: float, arrival_time: float) -> bool:
        if send_time - cur.first_send <= self._c.group_length:
            return True
        send_delta = send_time - cur.last_send
        if send_delta == 0:
            return True
        arrival_delta = arrival_time - cur.last_arrival
        # a packet that caught up with the group (arrived closer to it than
        # it was sent) belongs to the same burst seen by the bottleneck
        return (
            arrival_delta - send_delta < 0
            and arrival_delta <= self._c.burst_arrival_delta
            and arrival_time - cur.first_arrival < self._c.burst_max_duration
        )


def linear_fit_slope(points: deque[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, y) points; None when all x are equal."""
    n = len(points)
    if n < 2:
        return None
    mean_x = sum(p[0] for p in points) / n
    mean_y = sum(p[1] for p in points) / n
    num = 0.0
    den = 0.0
    for x, y in points:
        dx = x - mean_x
        num += dx * (y - mean_y)
        den += dx * dx
    return num / den if den > 0 else None


class TrendlineDetector:
    """Trendline filter and overuse detector with an adaptive threshold."""

    def __init__(self, config: GccConfig) -> None:
        self._c = config
        self._threshold = config.threshold_initial_ms
        self.reset()

    def reset(self) -> None:
        """Forget the delay history (the threshold, a property of the link, stays)."""
        self._num_deltas = 0
        self._first_arrival: float | None = None
        self._accumulated = 0.0  # ms
        self._smoothed = 0.0  # ms
        self._history: deque[tuple[float, float]] = deque(maxlen=self._c.trendline_window)
        self._trend = 0.0
        self._modified = 0.0
        self._last_threshold_update: float | None = None  # ms, receiver clock
        self._time_over = -1.0  # ms spent above the threshold, -1: not above
        self._over_count = 0
        self._state = BandwidthUsage.NORMAL

    @property
    def state(self) -> BandwidthUsage:
        return self._state

    @property
    def trend(self) -> float:
        """Slope of the smoothed delay: ~ (send rate - capacity) / capacity."""
        return self._trend

    @property
    def modified_trend(self) -> float:
        """The trend as compared with the threshold (ms-like units)."""
        return self._modified

    @property
    def threshold(self) -> float:
        return self._threshold

    def update(self, delta: GroupDelta) -> BandwidthUsage:
        c = self._c
        send_ms = delta.send_delta * 1000.0
        arrival_ms = delta.arrival_time * 1000.0
        self._num_deltas = min(self._num_deltas + 1, 1000)
        if self._first_arrival is None:
            self._first_arrival = arrival_ms
        self._accumulated += delta.arrival_delta * 1000.0 - send_ms
        s = c.trendline_smoothing
        self._smoothed = s * self._smoothed + (1 - s) * self._accumulated
        self._history.append((arrival_ms - self._first_arrival, self._smoothed))
        trend = self._trend
        if len(self._history) == c.trendline_window:
            slope = linear_fit_slope(self._history)
            if slope is not None:
                trend = slope
        self._detect(trend, send_ms, arrival_ms)
        return self._state

    def _detect(self, trend: float, send_ms: float, now_ms: float) -> None:
        c = self._c
        prev_trend = self._trend
        self._trend = trend
        if self._num_deltas < 2:
            self._state = BandwidthUsage.NORMAL
            return
        modified = (
            min(self._num_deltas, c.trendline_max_deltas) * trend * c.trendline_threshold_gain
        )
        self._modified = modified
        if modified > self._threshold:
            if self._time_over < 0:
                self._time_over = send_ms / 2  # the group was above for about half its span
            else:
                self._time_over += send_ms
            self._over_count += 1
            if self._time_over > c.overuse_time_ms and self._over_count > 1 and trend >= prev_trend:
                self._time_over = 0.0
                self._over_count = 0
                self._state = BandwidthUsage.OVERUSING
        elif modified < -self._threshold:
            self._time_over = -1.0
            self._over_count = 0
            self._state = BandwidthUsage.UNDERUSING
        else:
            self._time_over = -1.0
            self._over_count = 0
            self._state = BandwidthUsage.NORMAL
        self._adapt_threshold(modified, now_ms)

    def _adapt_threshold(self, modified: float, now_ms: float) -> None:
        c = self._c
        last = self._last_threshold_update
        self._last_threshold_update = now_ms
        if last is None or abs(modified) > self._threshold + c.threshold_max_offset_ms:
            return  # a spike (a route change, a burst): do not let it drag the threshold
        k = c.threshold_k_down if abs(modified) < self._threshold else c.threshold_k_up
        step = min(max(now_ms - last, 0.0), c.threshold_max_step_ms)
        self._threshold += k * (abs(modified) - self._threshold) * step
        self._threshold = min(max(self._threshold, c.threshold_min_ms), c.threshold_max_ms)


class LinkCapacity:
    """Where the last congestion events happened (kbit/s, mean and variance)."""

    def __init__(self, config: GccConfig) -> None:
        self._c = config
        self._estimate_kbps: float | None = None
        self._deviation = config.capacity_deviation_min

    @property
    def estimate(self) -> float | None:
        return None if self._estimate_kbps is None else self._estimate_kbps * 1000.0

    def reset(self) -> None:
        self._estimate_kbps = None

    def upper(self) -> float:
        return self._bound(+1.0)

    def lower(self) -> float:
        return self._bound(-1.0)

    def _bound(self, sign: float) -> float:
        if self._estimate_kbps is None:
            return math.inf * sign
        spread = self._c.capacity_bound_stddevs * math.sqrt(self._deviation * self._estimate_kbps)
        return (self._estimate_kbps + sign * spread) * 1000.0

    def on_overuse(self, acked_bps: float) -> None:
        sample = acked_bps / 1000.0
        alpha = self._c.capacity_alpha
        if self._estimate_kbps is None:
            self._estimate_kbps = sample
        else:
            self._estimate_kbps = (1 - alpha) * self._estimate_kbps + alpha * sample
        norm = max(self._estimate_kbps, 1.0)
        error = self._estimate_kbps - sample
        self._deviation = (1 - alpha) * self._deviation + alpha * error * error / norm
        self._deviation = min(
            max(self._deviation, self._c.capacity_deviation_min), self._c.capacity_deviation_max
        )


class _RateState(enum.Enum):
    HOLD = "hold"
    INCREASE = "increase"
    DECREASE = "decrease"


class AimdRateControl:
    """Additive-increase / multiplicative-decrease of the delay-based rate."""

    def __init__(self, config: GccConfig, start_bps: float, min_bps: float, max_bps: float) -> None:
        self._c = config
        self._min = min_bps
        self._max = max_bps
        self._current = min(max(start_bps, min_bps), max_bps)
        self._throughput = self._current  # latest acknowledged rate (the start guess at first)
        self._state = _RateState.HOLD
        self._last_change: float | None = None
        self._capacity = LinkCapacity(config)

    @property
    def estimate(self) -> float:
        return self._current

    @property
    def last_change(self) -> float | None:
        return self._last_change

    @property
    def capacity(self) -> float | None:
        """Mean acknowledged rate at the recent overuses, None when far from any."""
        return self._capacity.estimate

    def set_estimate(self, bps: float, now: float) -> None:
        self._current = min(max(bps, self._min), self._max)
        self._last_change = now

    def time_to_reduce_further(self, now: float, acked_bps: float, rtt: float) -> bool:
        """A further decrease while still overusing: once per RTT, or at once if far off."""
        interval = min(max(rtt, self._c.reduce_interval_min), self._c.reduce_interval_max)
        if self._last_change is None or not 0 <= now - self._last_change < interval:
            return True
        return acked_bps < 0.5 * self._current

    def update(
        self, usage: BandwidthUsage, acked_bps: float | None, now: float, rtt: float
    ) -> None:
        if acked_bps is not None:
            self._throughput = acked_bps
        throughput = self._throughput
        if self._last_change is not None and self._last_change > now:
            self._last_change = now  # the clock went back
        self._change_state(usage, now)
        new: float | None = None
        if self._state is _RateState.INCREASE:
            if throughput > self._capacity.upper():
                self._capacity.reset()  # far above the old congestion point: search anew
            limit = self._c.acked_limit_factor * throughput + self._c.acked_limit_offset_bps
            if self._current < limit:
                dt = (
                    0.0
                    if self._last_change is None
                    else min(max(now - self._last_change, 0.0), 1.0)
                )
                if self._capacity.estimate is not None:
                    increase = self._additive_rate(rtt) * dt
                else:
                    increase = max(
                        self._current * (self._c.increase_per_second**dt - 1),
                        self._c.min_increase_bps * dt,
                    )
                new = min(self._current + increase, limit)
            self._last_change = now
        elif self._state is _RateState.DECREASE:
            decreased = self._c.beta * throughput
            capacity = self._capacity.estimate
            if decreased > self._current and capacity is not None:
                decreased = self._c.beta * capacity
            if decreased < self._current:  # never an increase on overuse
                new = decreased
            if throughput < self._capacity.lower():
                self._capacity.reset()  # far below the old congestion point: the link changed
            self._capacity.on_overuse(throughput)
            self._state = _RateState.HOLD  # until the queue has drained
            self._last_change = now
            logger.debug("gcc: overuse, %.0f -> %.0f bit/s", self._current, new or self._current)
        if new is not None:
            self._current = min(max(new, self._min), self._max)

    def _change_state(self, usage: BandwidthUsage, now: float) -> None:
        if usage is BandwidthUsage.NORMAL:
            if self._state is _RateState.HOLD:
                self._last_change = now
                self._state = _RateState.INCREASE
        elif usage is BandwidthUsage.OVERUSING:
            self._state = _RateState.DECREASE
        else:
            self._state = _RateState.HOLD

    def _additive_rate(self, rtt: float) -> float:
        """About one average packet per response time, in bit/s per second."""
        c = self._c
        bits_per_frame = self._current / c.additive_frame_rate
        packets_per_frame = max(math.ceil(bits_per_frame / c.additive_packet_bits), 1)
        packet_bits = bits_per_frame / packets_per_frame
        response = (rtt + c.additive_response_extra) * c.additive_response_factor
        return max(c.additive_min_bps, packet_bits / response)


class DelayBasedBwe:
    """Inter-arrival -> trendline/overuse -> AIMD for one link."""

    def __init__(self, config: GccConfig, start_bps: float, min_bps: float, max_bps: float) -> None:
        self._c = config
        self._arrival = InterArrival(config)
        self.detector = TrendlineDetector(config)
        self.rate = AimdRateControl(config, start_bps, min_bps, max_bps)
        self._last_feedback: float | None = None

    @property
    def usage(self) -> BandwidthUsage:
        return self.detector.state

    @property
    def estimate(self) -> float:
        return self.rate.estimate

    def begin_feedback(self, now: float) -> None:
        """A feedback with received packets: after a long silence, start afresh."""
        last = self._last_feedback
        if last is not None and now - last > self._c.stream_timeout:
            self._arrival.reset()
            self.detector.reset()
        self._last_feedback = now

    def on_packet(self, send_time: float, arrival_time: float) -> None:
        delta = self._arrival.add(send_time, arrival_time)
        if delta is not None:
            self.detector.update(delta)

    def update(self, acked_bps: float | None, now: float, rtt: float) -> None:
        """After a feedback's packets: move the rate on what the detector says."""
        usage = self.detector.state
        rate = self.rate
        if usage is not BandwidthUsage.OVERUSING:
            rate.update(usage, acked_bps, now, rtt)
        elif acked_bps is not None:
            if rate.time_to_reduce_further(now, acked_bps, rtt):
                rate.update(usage, acked_bps, now, rtt)
        elif rate.last_change is None or not 0 <= now - rate.last_change < self._c.initial_backoff:
            # overusing before anything was measured: halve (libwebrtc does the same)
            rate.set_estimate(rate.estimate / 2, now)


class AckedBitrate:
    """Bytes that arrived within the last ``acked_window`` of receiver time."""

    def __init__(self, config: GccConfig) -> None:
        self._c = config
        self._packets: deque[tuple[float, int]] = deque()
        self._bytes = 0
        self._first: float | None = None
        self._last = 0.0

    def add(self, arrival: float, size: int) -> None:
        c = self._c
        if self._first is None or abs(arrival - self._last) > c.clock_jump:
            # the first packet, a clock jump, or a long silence: a new measurement
            self._packets.clear()
            self._bytes = 0
            self._first = arrival
            self._last = arrival
        self._last = max(self._last, arrival)
        self._packets.append((arrival, size))
        self._bytes += size
        start = self._last - c.acked_window
        while self._packets and (
            self._packets[0][0] <= start or len(self._packets) > c.acked_max_packets
        ):
            self._bytes -= self._packets.popleft()[1]

    @property
    def bps(self) -> float | None:
        if self._first is None or self._last - self._first < self._c.acked_window:
            return None  # not a full window seen yet
        # the oldest packet counts half: it was partly delivered before the window began
        return (self._bytes - self._packets[0][1] / 2) * 8 / self._c.acked_window


class QueueDelay:
    """Arrival-minus-send offset above its least over the last ``queue_min_window``."""

    def __init__(self, config: GccConfig) -> None:
        self._c = config
        self._minima: deque[tuple[float, float]] = deque()  # (bucket start, min), rising mins
        self._latest: float | None = None

    def add(self, send_time: float, arrival_time: float) -> None:
        c = self._c
        offset = arrival_time - send_time
        jumped = self._minima and send_time < self._minima[-1][0] - c.clock_jump
        if jumped or (self._latest is not None and abs(offset - self._latest) > c.clock_jump):
            self._minima.clear()  # a clock jumped: the old minimum means nothing now
        self._latest = offset
        bucket = send_time - send_time % c.queue_bucket
        if self._minima and self._minima[-1][0] >= bucket:
            bucket = self._minima[-1][0]
            offset = min(offset, self._minima.pop()[1])
        while self._minima and self._minima[-1][1] >= offset:
            self._minima.pop()
        self._minima.append((bucket, offset))
        while self._minima and self._minima[0][0] < send_time - c.queue_min_window:
            self._minima.popleft()

    @property
    def seconds(self) -> float:
        if self._latest is None or not self._minima:
            return 0.0
        return max(self._latest - self._minima[0][1], 0.0)
