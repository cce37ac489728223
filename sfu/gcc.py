"""Send-side bandwidth estimation for one subscriber link (Google Congestion Control).

Each packet the SFU sends to a subscriber carries a transport-wide sequence
number; the browser's transport-cc feedback says when each arrived (on its
own clock) or that it was lost. :class:`SendSideEstimator` turns those
reports into a target rate, in the spirit of libwebrtc's GoogCC. It is pure:
no asyncio, no I/O; the caller passes the clock (``now``, seconds, the same
monotonic clock as the packets' ``send_time``). All constants: :class:`GccConfig`.

Delay-based (``sfu/gcc_delay.py``): packets sent within 5 ms form a group;
a group's arrival spacing minus its send spacing is the change in queueing
delay. A trendline filter (window 20 groups, smoothing 0.9, gain 4) fits its
slope; an overuse detector with an adaptive threshold (12.5 ms at first,
k_up 0.0087, k_down 0.039) says OVERUSING once the slope has stayed above
the threshold for more than 10 ms and is still rising. Groups that arrived
in inverted order are ignored. AIMD rate control follows: in NORMAL +8 %/s,
or about one packet per 2 x (RTT + 100 ms) near the rate of the last
overuses; on OVERUSING 0.85 x the acknowledged rate (never an increase,
again once per RTT while it lasts); UNDERUSING holds. An increase never goes
past 1.5 x the acknowledged rate + 10 kbit/s, so the estimate cannot run
away while little is sent. The acknowledged rate is what arrived in the
last 0.5 s of receiver time.

Loss-based: received and lost packets are counted in windows of at least
20 packets *and* 0.5 s of sending (the reported, smoothed loss also takes
sparser windows, 5 packets over 1 s: a link whose video is paused numbers
only a few audio packets a second, and a loss seen during the cap must not
outlive it by many seconds and hold back the probe that finds the link
wide again). ``loss_outside_probes`` leaves out the windows that
overlapped a probe: that loss is the probe's own, judged with it (while
video is paused, a probe failed into a 60 kbit/s cap just before it was
lifted held the next one back 2 s). Above 10 % loss the loss-based estimate drops to
``estimate x (1 - loss / 2)`` (at most once per 300 ms + RTT); between 2 and
10 % it holds; below 2 % it grows back by 8 %/s until it reaches the
delay-based one, and from then on limits nothing (it reads ``max_bps``)
until the next decrease. A link with random loss of its own (radio,
satellite: a steady 1-5 % without delay growth) would never look clean, so
both bars rise by twice its *loss floor*: the median loss of the last 11
windows, at most 10 %, leaving out windows that overlapped a probe or came
within 5 s of an overuse (that loss is the SFU's own doing) and overloads
(over 25 %). A loss reported for a packet that a later feedback has
received is taken back.

Probes: the SFU registers a cluster (:meth:`SendSideEstimator.start_probe`),
every packet it sends while the cluster runs, media included
(:meth:`~SendSideEstimator.on_probe_packet_sent`), and its end
(:meth:`~SendSideEstimator.end_probe`). As libwebrtc's ProbeBitrateEstimator:
over the cluster's received packets (at least 5, and 80 % of those
reported), the send rate and the receive rate; the result is the smaller,
and when the receive rate is below 0.9 x the send rate the link is
saturated: the result is 0.95 x the receive rate. A cluster is decided once
it has ended and all its packets are reported (or 3 s after its start):
SUCCEEDED when no overuse was seen meanwhile and the result is at least
0.9 x its target, else FAILED; an overuse fails it at once. A result above
the estimate with no overuse seen raises the estimate to it in one step.
:attr:`~SendSideEstimator.overusing_now` lets the SFU stop a probe one
feedback after the queue starts growing.

Application-limited: the SFU often sends much less than the link carries.
:attr:`~SendSideEstimator.congested` is True only after a real congestion
signal (an overuse, or a loss-based decrease) in the last 5 s;
:attr:`~SendSideEstimator.limited_by_traffic` is True when there was none
and the acknowledged rate is below 0.75 x the estimate (or the SFU said it
is application-limited): the estimate is then a bound set by little
traffic, not a measurement, and no reason to pause video. A low send rate
never lowers the estimate by itself.

Left out vs libwebrtc: the Bayesian acknowledged-bitrate filter (a sliding
window instead), loss-based BWE v2, ALR detection and ALR probing (the SFU
says when it is application-limited and decides when to probe), the probe
controller, congestion window and pushback, a separate audio detector,
REMB/receiver limits, RTT-based backoff, and the 5 s "initialise to the
first throughput" rule (the start guess stands until congestion or a probe
says otherwise).
"""

from __future__ import annotations

import enum
import logging
import statistics
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sfu.gcc_delay import AckedBitrate, BandwidthUsage, DelayBasedBwe, QueueDelay
from sfu.gcc_probe import ProbeOutcome, ProbeTracker

__all__ = ["BandwidthUsage", "GccConfig", "PacketFeedback", "ProbeOutcome", "SendSideEstimator"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GccConfig:
    """Every tuning constant (seconds and bit/s unless the name says otherwise)."""

    # -- inter-arrival grouping (libwebrtc InterArrivalDelta) --
    group_length: float = 0.005  # packets sent within this of a group's first belong to it
    burst_arrival_delta: float = 0.005  # a later packet arriving this close (and early) joins
    burst_max_duration: float = 0.1  # ...as long as the group spans less than this on arrival
    reordered_groups_reset: int = 3  # this many inverted groups in a row: start afresh
    clock_jump: float = 3.0  # an arrival-minus-send offset jumping by this is a clock jump
    stream_timeout: float = 2.0  # no feedback with packets for this long: forget delay history
    # -- trendline filter (libwebrtc TrendlineEstimator) --
    trendline_window: int = 20  # groups in the linear fit
    trendline_smoothing: float = 0.9  # exponential smoothing of the accumulated delay
    trendline_threshold_gain: float = 4.0  # slope x min(deltas, 60) x this vs the threshold
    trendline_max_deltas: int = 60  # the slope's weight grows with the groups seen, up to this
    # -- overuse detector, in ms as libwebrtc's defaults are --
    threshold_initial_ms: float = 12.5
    threshold_min_ms: float = 6.0
    threshold_max_ms: float = 600.0
    threshold_k_up: float = 0.0087  # per ms: the threshold rises slowly towards a larger trend
    threshold_k_down: float = 0.039  # per ms: and sinks faster towards a smaller one
    threshold_max_offset_ms: float = 15.0  # a trend this far past the threshold does not adapt it
    threshold_max_step_ms: float = 100.0  # at most this much time per adaptation step
    overuse_time_ms: float = 10.0  # above the threshold this long (and rising): OVERUSING
    # -- AIMD (libwebrtc AimdRateControl) --
    beta: float = 0.85  # on overuse: this x the acknowledged rate
    increase_per_second: float = 1.08  # multiplicative increase far from the last overuse
    # at least this much per second of increase (libwebrtc: 1 kbit/s per update, i.e.
    # 10-20 kbit/s/s at feedback every 50-100 ms; per second here so it does not depend on it)
    min_increase_bps: float = 10_000.0
    additive_min_bps: float = 4_000.0  # additive increase near the last overuse: at least this/s
    additive_frame_rate: float = 30.0  # ...else one average packet of a 30 fps stream...
    additive_packet_bits: float = 1200 * 8  # ...cut into packets of at most this...
    additive_response_extra: float = 0.1  # ...per (RTT + this) x factor (libwebrtc: 100 ms,
    additive_response_factor: float = 2.0  # doubled under its default adaptive-threshold trial)
    acked_limit_factor: float = 1.5  # an increase stops at this x the acknowledged rate...
    acked_limit_offset_bps: float = 10_000.0  # ...plus this
    reduce_interval_min: float = 0.01  # while overusing, decrease again after RTT clamped
    reduce_interval_max: float = 0.2  # ...to [min, max]
    initial_backoff: float = 0.2  # overuse before any acknowledged rate: halve this often
    capacity_alpha: float = 0.05  # smoothing of the rate at overuses (link capacity)
    capacity_deviation_min: float = 0.4  # its normalised variance, kbit/s, clamped
    capacity_deviation_max: float = 2.5
    capacity_bound_stddevs: float = 3.0  # further than this many deviations: forget it
    default_rtt: float = 0.2  # until set_rtt() or the feedback gives one
    rtt_smoothing: float = 0.125  # weight of a new feedback RTT sample
    # -- acknowledged rate --
    acked_window: float = 0.5  # receiver time over which arrived bytes are summed
    acked_max_packets: int = 4096  # bound on that window's length (60 Mbit/s of 1200 B)
    # -- loss-based --
    loss_window_packets: int = 20  # a loss window has at least this many packets...
    loss_window_duration: float = 0.5  # ...sent over at least this long
    # sparse feedback (a paused link numbers 5 audio packets a second): a window of this
    # many packets over this long updates the reported `loss` (never a decrease or the floor)
    loss_sparse_packets: int = 5
    loss_sparse_duration: float = 1.0
    loss_clean: float = 0.02  # below this (plus the floor margin): may increase
    loss_high: float = 0.10  # above this (plus the floor margin): decrease
    loss_increase_per_second: float = 1.08  # the loss-based increase, 8 %/s...
    loss_increase_bps: float = 1_000.0  # ...plus 1 kbit/s per second
    loss_decrease_factor: float = 0.5  # decrease to estimate x (1 - this x loss)
    loss_decrease_interval: float = 0.3  # at most once per this + RTT
    loss_smoothing: float = 0.3  # weight of a new window in the reported `loss`
    loss_floor_windows: int = 11  # the floor is the median of this many recent windows
    loss_floor_min_windows: int = 3  # fewer: no floor yet
    loss_floor_margin: float = 2.0  # bars rise by this x the floor
    loss_floor_max: float = 0.10  # the floor is at most this
    loss_floor_overload: float = 0.25  # windows losing more are congestion, not the floor
    lost_seq_memory: int = 1024  # lost packets remembered in case a later report has them
    # -- probes (libwebrtc ProbeBitrateEstimator) --
    probe_min_packets: int = 5  # received packets needed for a result
    probe_min_received: float = 0.8  # ...and this fraction of those reported
    probe_max_interval: float = 1.0  # a send or receive span longer than this is invalid
    probe_max_ratio: float = 2.0  # receive rate above this x the send rate: invalid
    probe_saturated_ratio: float = 0.9  # receive below this x send: the link is saturated...
    probe_saturated_fraction: float = 0.95  # ...and the result is this x the receive rate
    probe_success_ratio: float = 0.9  # a result at least this x the target: success
    probe_timeout: float = 3.0  # a cluster not decided this long after its start is
    probe_history: int = 16  # decided clusters kept for probe_result()
    probe_seq_memory: int = 4096  # registered probe packets awaiting feedback, at most
    # -- queueing delay and congestion --
    queue_min_window: float = 10.0  # the link's own offset: the least over this long
    queue_bucket: float = 0.1  # ...kept as per-bucket minima (bounded memory)
    congestion_hold: float = 5.0  # `congested` this long after an overuse/loss decrease
    limited_ratio: float = 0.75  # acknowledged below this x estimate: limited by traffic


class PacketFeedback(Protocol):
    """One packet of a transport feedback (``sfu.twcc.PacketResult`` matches).

    Every packet on the wire counts whatever its ``kind`` (libwebrtc does the
    same); probes are told apart by :meth:`SendSideEstimator.on_probe_packet_sent`.
    """

    @property
    def seq(self) -> int: ...  # unwrapped transport-wide sequence number
    @property
    def send_time(self) -> float: ...  # seconds, sender's clock
    @property
    def size(self) -> int: ...  # bytes on the wire
    @property
    def kind(self) -> int: ...  # 0 audio, 1 video, 2 retransmission, 3 padding/probe
    @property
    def arrival_time(self) -> float | None: ...  # receiver's clock; None: lost


class LossBasedBwe:
    """Loss windows, the link's own loss floor, and the loss-based estimate."""

    def __init__(self, config: GccConfig, min_bps: float, max_bps: float) -> None:
        self._c = config
        self._min = min_bps
        self._max = max_bps
        self._limit: float | None = None  # set by a loss decrease, until it has grown back
        self._received = 0
        self._lost = 0
        self._window_start: float | None = None  # send times spanned by the window
        self._window_end = 0.0
        self._window_probe = False  # the window overlapped a probe
        self._history: deque[float] = deque(maxlen=config.loss_floor_windows)
        self._floor = 0.0
        self.loss = 0.0  # smoothed over windows
        self.loss_outside_probes = 0.0  # ...over those that overlapped no probe
        self._last_update: float | None = None
        self._last_decrease: float | None = None

    @property
    def floor(self) -> float:
        return self._floor

    @property
    def clean_bar(self) -> float:
        return self._c.loss_clean + self._c.loss_floor_margin * self._floor

    @property
    def high_bar(self) -> float:
        return self._c.loss_high + self._c.loss_floor_margin * self._floor

    def add(self, received: int, lost: int, sent: tuple[float, float], probing: bool) -> None:
        """A feedback's counts; ``sent``: when its earliest and latest packets were sent."""
        if self._window_start is None:
            self._window_start, self._window_end = sent
        self._window_start = min(self._window_start, sent[0])
        self._window_end = max(self._window_end, sent[1])
        self._received += received
        self._lost += lost
        self._window_probe = self._window_probe or probing

    def take_back(self) -> None:
        """A packet reported lost arrived after all."""
        if self._lost > 0:
            self._lost -= 1
            self._received += 1

    @property
    def estimate(self) -> float:
        """The loss-based limit; ``max_bps`` while loss limits nothing."""
        return self._max if self._limit is None else self._limit

    def raise_to(self, bps: float) -> None:
        """A clean probe measured this much: loss limits nothing below it."""
        if self._limit is not None and bps >= self._limit:
            self._limit = None

    def update(self, now: float, delay_bps: float, rtt: float, after_overuse: bool) -> bool:
        """Close the window if it is long enough; True on a loss-based decrease."""
        c = self._c
        total = self._received + self._lost
        start = self._window_start
        if start is None:
            return False
        span = self._window_end - start
        if total < c.loss_window_packets:
            if total >= c.loss_sparse_packets and span >= c.loss_sparse_duration:
                self._close_window(self._lost / total)  # the reported loss decays in time
            return False
        if span < c.loss_window_duration:
            return False
        loss = self._lost / total
        if not self._window_probe and not after_overuse and loss <= c.loss_floor_overload:
            self._history.append(loss)
            if len(self._history) >= c.loss_floor_min_windows:
                self._floor = min(statistics.median(self._history), c.loss_floor_max)
        self._close_window(loss)
        last = self._last_update
        dt = 0.0 if last is None else min(max(now - last, 0.0), 1.0)
        self._last_update = now
        limit = self._limit
        if loss < self.clean_bar:
            if limit is not None:
                grown = limit * c.loss_increase_per_second**dt + c.loss_increase_bps * dt
                self._limit = None if grown >= delay_bps else grown  # grown back: no limit
            return False
        if loss <= self.high_bar:
            return False
        since = None if self._last_decrease is None else now - self._last_decrease
        if since is not None and 0 <= since < c.loss_decrease_interval + rtt:
            return False
        base = delay_bps if limit is None else min(limit, delay_bps)
        self._limit = max(base * (1 - c.loss_decrease_factor * loss), self._min)
        self._last_decrease = now
        logger.debug("gcc: loss %.3f (floor %.3f), -> %.0f bit/s", loss, self._floor, self._limit)
        return True

    def _close_window(self, loss: float) -> None:
        smoothing = self._c.loss_smoothing
        self.loss += smoothing * (loss - self.loss)
        if not self._window_probe:  # a probe's own loss is judged with the probe
            self.loss_outside_probes += smoothing * (loss - self.loss_outside_probes)
        self._received = self._lost = 0
        self._window_start = None
        self._window_probe = False


class _Seen(enum.Enum):
    NEW = "new"
    FOUND = "found"  # reported lost before, received now
    DUPLICATE = "duplicate"


class SeqTracker:
    """Each sequence number once; remembers recent losses in case they arrive late."""

    def __init__(self, memory: int) -> None:
        self._memory = memory
        self._highest: int | None = None
        self._lost: OrderedDict[int, None] = OrderedDict()

    def seen(self, seq: int, lost: bool) -> _Seen:
        if self._highest is None or seq > self._highest:
            self._highest = seq
            if lost:
                self._lost[seq] = None
                while len(self._lost) > self._memory:
                    self._lost.popitem(last=False)
            return _Seen.NEW
        if lost or seq not in self._lost:
            return _Seen.DUPLICATE
        del self._lost[seq]
        return _Seen.FOUND


class SendSideEstimator:
    """Delay-based and loss-based estimates of one subscriber link, and probe results."""

    def __init__(
        self, start_bps: float, min_bps: float, max_bps: float, config: GccConfig = GccConfig()
    ) -> None:
        if not 0 < min_bps <= max_bps:
            raise ValueError(f"need 0 < min_bps <= max_bps, got {min_bps}, {max_bps}")
        self._c = config
        self._min = min_bps
        self._max = max_bps
        self._delay = DelayBasedBwe(config, start_bps, min_bps, max_bps)
        self._loss = LossBasedBwe(config, min_bps, max_bps)
        self._probes = ProbeTracker(config)
        self._acked = AckedBitrate(config)
        self._queue = QueueDelay(config)
        self._rtt: float | None = None  # set_rtt()
        self._feedback_rtt: float | None = None  # smoothed from the feedback
        self._app_limited = False
        self._now = 0.0
        self._seqs = SeqTracker(config.lost_seq_memory)
        self._last_overuse: float | None = None
        self.last_congestion: float | None = None  # `now` of the last overuse or loss decrease

    # -- inputs --

    def set_rtt(self, seconds: float) -> None:
        self._rtt = max(seconds, 0.0)

    def set_application_limited(self, limited: bool) -> None:
        """The SFU sends less than it could (weak publisher, paused video)."""
        self._app_limited = limited

    def start_probe(self, cluster_id: int, target_bps: float, now: float) -> None:
        """A probe cluster at ``target_bps`` (total rate, media included) starts."""
        self._probes.start(cluster_id, target_bps, now)

    on_probe_cluster = start_probe

    def on_probe_packet_sent(self, cluster_id: int, seq: int) -> None:
        """A packet of the cluster (padding or media) went out with this sequence number."""
        self._probes.on_sent(cluster_id, seq)

    def end_probe(self, cluster_id: int) -> None:
        """No more packets for this cluster (it ran its course or was stopped)."""
        self._probes.end(cluster_id)

    def on_feedback(self, results: Sequence[PacketFeedback], now: float) -> None:
        """One transport feedback's packets, in sequence order."""
        self._now = now
        if not results:
            return
        received = lost = 0
        sent: tuple[float, float] | None = None  # earliest and latest send time
        latest_send: float | None = None  # ...of a packet received
        self._delay.begin_feedback(now)
        for r in results:
            seen = self._seqs.seen(r.seq, r.arrival_time is None)
            if seen is not _Seen.NEW:
                if seen is _Seen.FOUND:  # reported lost before, it arrived after all
                    self._loss.take_back()
                continue
            self._probes.on_result(r)
            t = r.send_time
            sent = (t, t) if sent is None else (min(sent[0], t), max(sent[1], t))
            arrival = r.arrival_time
            if arrival is None:
                lost += 1
                continue
            received += 1
            self._acked.add(arrival, r.size)
            self._queue.add(r.send_time, arrival)
            self._delay.on_packet(r.send_time, arrival)
            latest_send = r.send_time if latest_send is None else max(latest_send, r.send_time)
        if latest_send is not None:
            self._rtt_sample(now - latest_send)
        overuse = received > 0 and self._delay.usage is BandwidthUsage.OVERUSING
        if overuse:
            self._last_overuse = self.last_congestion = now
            self._probes.mark_overuse()
        if sent is not None:
            self._loss.add(received, lost, sent, self._probes.active)
        after_overuse = self._recent(self._last_overuse)
        if self._loss.update(now, self._delay.estimate, self.rtt, after_overuse):
            self.last_congestion = now
        raises = self._probes.decide(now)
        raised = False
        for rate in raises:
            if rate > self._delay.estimate:
                self._delay.rate.set_estimate(rate, now)
                self._loss.raise_to(rate)
                raised = True
        if received and not raised:
            self._delay.update(self._acked.bps, now, self.rtt)

    def _rtt_sample(self, sample: float) -> None:
        if sample < 0:
            return
        if self._feedback_rtt is None:
            self._feedback_rtt = sample
        else:
            self._feedback_rtt += self._c.rtt_smoothing * (sample - self._feedback_rtt)

    def _recent(self, when: float | None) -> bool:
        return when is not None and 0 <= self._now - when < self._c.congestion_hold

    # -- outputs --

    @property
    def estimate(self) -> float:
        """bit/s: the smaller of the delay-based and loss-based estimates."""
        return min(max(min(self._delay.estimate, self._loss.estimate), self._min), self._max)

    @property
    def delay_estimate(self) -> float:
        return self._delay.estimate

    @property
    def loss_estimate(self) -> float:
        return self._loss.estimate

    @property
    def usage(self) -> BandwidthUsage:
        return self._delay.usage

    @property
    def overusing_now(self) -> bool:
        """The last feedback left the detector OVERUSING: stop a running probe."""
        return self._delay.usage is BandwidthUsage.OVERUSING

    @property
    def acked_bitrate(self) -> float | None:
        return self._acked.bps

    @property
    def loss(self) -> float:
        return self._loss.loss

    @property
    def loss_outside_probes(self) -> float:
        """Smoothed loss of the windows that overlapped no probe (a probe's own is its own)."""
        return self._loss.loss_outside_probes

    @property
    def loss_floor(self) -> float:
        return self._loss.floor

    @property
    def queue_delay(self) -> float:
        return self._queue.seconds

    @property
    def rtt(self) -> float:
        if self._rtt is not None:
            return self._rtt
        return self._c.default_rtt if self._feedback_rtt is None else self._feedback_rtt

    @property
    def congested(self) -> bool:
        """An overuse or a loss-based decrease in the last ``congestion_hold`` seconds."""
        return self._recent(self.last_congestion)

    @property
    def limited_by_traffic(self) -> bool:
        """The estimate is low only because little was sent, not because of congestion."""
        if self.congested:
            return False
        acked = self._acked.bps
        return self._app_limited or acked is None or acked < self._c.limited_ratio * self.estimate

    def probe_result(self, cluster_id: int) -> float | None:
        """bit/s the cluster measured (so far), None if too few packets or unknown."""
        return self._probes.result(cluster_id)

    def probe_outcome(self, cluster_id: int) -> ProbeOutcome:
        return self._probes.outcome(cluster_id)

    def probe_failed(self, cluster_id: int) -> bool:
        """Decided and not a success (overuse, too few packets, saturated link)."""
        return self._probes.outcome(cluster_id) is ProbeOutcome.FAILED
