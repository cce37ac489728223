"""How much one subscriber's link carries: REMB, loss, and careful probing.

The estimate starts low (a weak link is never flooded at the start) and
moves on three signals. The start value is only a guess: the first
measurement replaces it even when it is higher (a loss-based "decrease" to
what a lossy but wide link delivers must not leave the estimate at the
guess, below what the link was seen to carry).

- REMB from the subscriber (Chrome, aiortc): a delay-based estimate whose
  *decrease* means the link's queue is growing. Receivers only raise REMB
  slowly (8 %/s, bounded by what they receive), so a REMB that goes up is
  not taken as an invitation; a REMB that goes down, and below what was
  sent on the streams it covers (padding included), caps the estimate. (A
  REMB also sinks when less is sent, e.g. while video is paused: that is
  not congestion.)
- Loss in receiver reports: above 10 % the estimate drops to what was sent
  times (1 - loss/2), as in GCC's loss-based controller, but only when the
  loss looks like congestion: no REMB yet, a REMB decrease in the last few
  seconds, or loss above 25 %. Random loss on a radio link that NACK/RTX
  repairs is not a reason to send less. Between 2 and 10 % it holds;
  below 2 % the link is clean. A link with random loss of its own (radio,
  satellite) has those bars raised by twice its *loss floor*: the median
  loss of the last reports outside probes, an overload's (over 25 %) left
  out, at most 10 %. Without that, a link losing 5 % at random never
  looked clean, so no probe ever passed and a video paused there never
  came back.
- Probes: when the allocation wants more than the estimate and the link is
  clean, the sender pads up to ``base x factor`` for half a second, then
  waits for a receiver report that covers it. ``base`` is the estimate if a
  probe proved it, else what is being sent (what the link has shown it
  carries). Clean (no REMB decrease, loss under 2 %): the estimate becomes
  the probed rate, and the next step doubles. Not clean: the estimate drops
  to what the link delivered, the next probe waits longer (exponential
  back-off, bounded so a link that recovers is found again within seconds)
  and steps by only 25 %, and for a while no probe goes past half-way to the
  failed rate (a binary search for the link's rate, not a hammering).
  A probe stops at once on a REMB decrease or a lossy report: the padding
  is only ever queued for the time the receiver needs to notice.

  Half a second of overshoot on a link with a short queue (tbf with 300 ms,
  a 3G bearer) fills at most the queue when the step is 1.5x or less; the
  first step of all, and the first after a failure, is 1.25x (1.5x while
  video is paused: one failed probe costs a little delay on an audio-only
  link, and a link that recovers must get its video back within seconds).
- Queueing delay between probes: the round trip of the server's own sender
  reports, echoed in receiver reports, above the least one lately (the
  link's own) is the queue in front of the receiver. Over ``QUEUE_DELAY_LIMIT``
  or ``JITTER_MARGIN`` times the jitter the receivers report, whichever is
  more (a radio link's delay varies by itself), on ``QUEUE_DELAY_REPORTS``
  reports in a row, the link is full: the estimate drops to 85 % of what is
  sent, as on a REMB decrease, and loss counts as congestion for a while.
  This needs no REMB, so it also holds for receivers whose REMB is slow or
  absent.
"""

from __future__ import annotations

import enum
import logging
import statistics
from collections import deque
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MIN_ESTIMATE = 40_000
HIGH_LOSS = 0.10
CONGESTION_LOSS = 0.25  # this much loss is congestion whatever REMB says
LOSS_WITH_REMB = 5.0  # seconds after a REMB decrease during which loss counts as congestion
CLEAN_LOSS = 0.02
LOSS_FLOOR_REPORTS = 11  # reports outside probes whose median loss is the link's own
LOSS_FLOOR_MIN_REPORTS = 3  # fewer than this: no floor yet
LOSS_FLOOR_MARGIN = 2.0  # the bars rise by this many times the floor (reports are noisy)
REMB_DROP = 0.97  # a REMB below 97 % of the previous one from the same receiver is a decrease
FIRST_REMB_DROP = 0.75  # a first REMB this far below what was sent is a decrease
REMB_TTL = 5.0
PROBE_DURATION = 0.5
PROBE_SETTLE = 0.2  # a report covers the probe if it came this long after the padding stopped
PROBE_REMB_WAIT = 1.0  # a REMB is waited for this long (receivers send one every second)...
PROBE_FEEDBACK_WAIT = 2.0  # ...and a receiver report this long, or the probe failed
PROBE_FACTOR_CAREFUL = 1.25
PROBE_FACTOR = 2.0
PROBE_MIN_STEP = 10_000
PROBE_DELAY_LIMIT = 0.06  # a probe that queues its reports this much longer failed
CEILING_HOLD = 10.0  # seconds a failed probe's rate bounds later probes
CEILING_HOLD_PAUSED = 3.0
PROBE_BACKOFF_MIN = 0.3
PROBE_BACKOFF_MAX = 10.0
PROBE_BACKOFF_MAX_PAUSED = 2.0  # while video is paused for bandwidth: look again soon
PROBE_FACTOR_PAUSED = 1.5
DECREASE_HOLD = 1.5  # no probe this soon after a decrease
QUEUE_DELAY_LIMIT = 0.1  # s of round trip above the link's own that is a queue...
JITTER_MARGIN = 4.0  # ...or this many times the reported jitter, whichever is more
QUEUE_DELAY_REPORTS = 2  # reports in a row over the limit
QUEUE_DECREASE = 0.85  # a full queue: the link carries at most this share of what is sent


class ProbeState(enum.Enum):
    IDLE = "idle"
    PROBING = "probing"  # padding is being sent
    SETTLING = "settling"  # padding stopped, waiting for feedback that covers it


@dataclass(slots=True)
class _Remb:
    bitrate: int
    at: float


class DownlinkEstimator:
    def __init__(self, start_bps: int, max_bps: int, now: float) -> None:
        self.estimate = float(start_bps)
        self.max_bps = float(max_bps)
        self.loss = 0.0
        self._recent_loss: deque[float] = deque(maxlen=LOSS_FLOOR_REPORTS)  # outside probes
        self.probe_state = ProbeState.IDLE
        self.probe_target = 0.0
        self.probes_ok = 0
        self.probes_failed = 0
        self.decreases = 0
        self.last_decrease = now - DECREASE_HOLD
        self.last_decrease_reason = ""
        self._rembs: dict[tuple[str, ...], _Remb] = {}
        self._last_remb_decrease = -1e9
        self._last_queue_decrease = -1e9
        self._queued_reports = 0  # reports in a row showing a queue, between probes
        self.queue_delay = 0.0  # the latest queueing delay measured (s)
        self._probe_started = 0.0
        self._probe_until = 0.0
        self._probe_reported = False  # a receiver report arrived that covers the probe
        self._probe_remb = False  # a REMB arrived after the padding stopped
        self._probe_loss = 0.0
        self._probe_decreased = False
        self._next_probe = now + 1.0
        self._backoff = PROBE_BACKOFF_MIN
        self._factor = PROBE_FACTOR_CAREFUL
        self._ceiling = 0.0
        self._ceiling_at = -1e9
        self._validated = False  # the estimate was reached by a clean probe
        self._guessed = True  # the estimate is still the start value: nothing measured it
        self._paused = False

    def __repr__(self) -> str:
        return f"DownlinkEstimator({int(self.estimate)} bit/s {self.probe_state.value})"

    @property
    def loss_floor(self) -> float:
        """The link's own random loss: the median of the last reports outside probes."""
        if len(self._recent_loss) < LOSS_FLOOR_MIN_REPORTS:
            return 0.0
        return min(HIGH_LOSS, statistics.median(self._recent_loss))

    @property
    def clean_loss(self) -> float:
        """Loss below this is no complaint: probes pass, what was sent is carried."""
        return CLEAN_LOSS + LOSS_FLOOR_MARGIN * self.loss_floor

    @property
    def high_loss(self) -> float:
        """Loss above this may be congestion (see :meth:`on_loss`)."""
        return HIGH_LOSS + LOSS_FLOOR_MARGIN * self.loss_floor

    @property
    def looks_clean(self) -> bool:
        return self.loss < self.clean_loss

    @property
    def may_pause(self) -> bool:
        """A congestion signal was seen: a track may be paused for bandwidth."""
        return self.decreases > 0

    @property
    def probing(self) -> bool:
        return self.probe_state is not ProbeState.IDLE

    def padding_now(self, now: float) -> bool:
        """Whether probe padding should be on the wire at ``now``."""
        return self.probe_state is ProbeState.PROBING and now < self._probe_until

    def _abort_probe(self, now: float, why: str) -> None:
        if self.probe_state is ProbeState.PROBING and now < self._probe_until:
            logger.debug("%r: probe to %d stopped early (%s)", self, self.probe_target, why)
            self._probe_until = min(self._probe_until, now)
            self.probe_state = ProbeState.SETTLING

    # -- signals -------------------------------------------------------------

    def on_remb(
        self, key: tuple[str, ...], bitrate: int, sent_video: float, sent_audio: float, now: float
    ) -> None:
        """A REMB covering the video streams ``key``; ``sent_*`` is what was sent (bit/s)."""
        # a receiver's REMB covers all its streams: one covering one more (or
        # one less) track replaces the earlier one rather than adding to it
        overlapping = [k for k in self._rembs if set(k) & set(key)]
        previous = max((self._rembs.pop(k) for k in overlapping), key=lambda r: r.at, default=None)
        self._rembs[key] = _Remb(bitrate, now)
        if self.probing and now >= self._probe_until + PROBE_SETTLE:
            self._probe_remb = True
        if previous is None:
            decreased = bitrate < sent_video * FIRST_REMB_DROP
        else:
            # a receiver's REMB also sinks when it is sent less (it is bounded
            # by what arrives): only one below what was sent means a queue
            decreased = bitrate < previous.bitrate * REMB_DROP and bitrate < sent_video
        if not decreased:
            return
        # the receiver saw its queue grow: the link carries what REMB says
        # for video, plus the audio that went through alongside it
        self._last_remb_decrease = now
        if self.probing:
            self._probe_decreased = True
            self._abort_probe(now, "remb")
        fresh = sum(r.bitrate for r in self._rembs.values() if now - r.at < REMB_TTL)
        self._decrease(fresh + sent_audio, now, "remb")

    def on_loss(
        self, fraction: float, sent: float, now: float, covers_probe: bool | None = None
    ) -> None:
        """The loss fraction of one receiver report, weighted over its streams.

        ``covers_probe``: whether the report shows the receiver got as far as
        the probe's last packet (None: not known, judged by time). Behind a
        long queue a report sent soon after the probe does not yet know
        what the queue dropped.
        """
        self.loss = fraction
        if self.probing:
            # the probe's own verdict decides (sfu/downlink.py pads on top of ``sent``)
            if covers_probe is None:
                covers_probe = now >= self._probe_until + PROBE_SETTLE
            if now - self._probe_started >= PROBE_SETTLE:
                self._probe_loss = max(self._probe_loss, fraction)
                if fraction >= self.clean_loss:
                    self._abort_probe(now, f"loss {fraction:.2f}")
            if covers_probe and now >= self._probe_until:
                self._probe_reported = True
                self.probe_state = ProbeState.SETTLING
                self._judge(now)
            return
        if fraction <= CONGESTION_LOSS:  # (an overload's loss is not the link's own)
            self._recent_loss.append(fraction)
        if fraction <= self.high_loss or sent <= 0:
            return
        congestion = (
            not self._rembs
            or fraction > CONGESTION_LOSS
            or now - max(self._last_remb_decrease, self._last_queue_decrease) < LOSS_WITH_REMB
        )
        if not congestion:
            return
        self._decrease(sent * (1 - fraction / 2), now, "loss")

    def on_queue_delay(
        self, delay: float, sent_at: float, now: float, jitter: float = 0.0, sent: float = 0.0
    ) -> None:
        """Queueing delay (s) measured by a report sent at ``sent_at`` (see sfu/downlink.py).

        ``jitter``: the interarrival jitter (s) the receiver reports lately;
        ``sent``: what is being sent (bit/s).
        """
        self.queue_delay = max(0.0, delay)
        if not self.probing:
            self._on_queue_between_probes(delay, jitter, sent, now)
            return
        if sent_at < self._probe_started:
            return
        if delay > PROBE_DELAY_LIMIT:
            # the probe built a queue: the link is full below the probed rate
            logger.debug("%r: probe to %d queued %.0f ms", self, self.probe_target, delay * 1000)
            self._probe_decreased = True
            self._abort_probe(now, f"queue {delay * 1000:.0f} ms")

    def _on_queue_between_probes(
        self, delay: float, jitter: float, sent: float, now: float
    ) -> None:
        if delay <= max(QUEUE_DELAY_LIMIT, JITTER_MARGIN * jitter):
            self._queued_reports = 0
            return
        self._queued_reports += 1
        if (
            self._queued_reports < QUEUE_DELAY_REPORTS
            or now - self.last_decrease < DECREASE_HOLD
            or sent <= 0
        ):
            return
        logger.debug("%r: a queue of %.0f ms between probes", self, delay * 1000)
        self._queued_reports = 0
        self._last_queue_decrease = now
        self._decrease(sent * QUEUE_DECREASE, now, f"queue {delay * 1000:.0f} ms")

    def carried(self, bitrate: float) -> None:
        """The link carried ``bitrate`` without complaint: the estimate rises to it."""
        self.estimate = min(self.max_bps, max(self.estimate, bitrate))
        self._guessed = False

    def cap(self, bitrate: float, now: float, why: str) -> None:
        """Never assume more than ``bitrate`` (e.g. what is left after a pause)."""
        self._decrease(bitrate, now, why, replaces_guess=False)

    def _decrease(self, bitrate: float, now: float, why: str, replaces_guess: bool = True) -> None:
        """Lower the estimate to ``bitrate`` (a signal's measure of the link).

        ``replaces_guess``: ``bitrate`` never exceeds what was sent, so it may
        replace the start value even upwards (not so a failed probe's rate).
        """
        bitrate = max(MIN_ESTIMATE, bitrate)
        self._validated = False
        if bitrate < self.estimate or (self._guessed and replaces_guess):
            # the first measurement replaces the start value even when it is
            # higher: a lossy but wide link is not held to the guess
            logger.debug("%r down to %d (%s)", self, bitrate, why)
            self.estimate = bitrate
            self._guessed = False
        self.last_decrease = now
        self.decreases += 1
        self.last_decrease_reason = f"{why} -> {int(bitrate)}"

    # -- probing ---------------------------------------------------------------

    def padding_target(
        self, desired: float, now: float, sent: float, paused: bool = False
    ) -> float:
        """The total rate to pad up to right now (0: no probe).

        A probe steps up from what is being sent (what the link has shown it
        carries), not from the estimate, which may be an untested guess.
        ``paused``: some video is paused for bandwidth; probes come back
        sooner and step by half after a failure, so a link that recovers gets
        its video back within seconds.
        """
        self._paused = paused
        state = self.probe_state
        if state is ProbeState.PROBING:
            if now < self._probe_until:
                return self.probe_target
            self.probe_state = ProbeState.SETTLING
            return 0.0
        if state is ProbeState.SETTLING:
            self._judge(now)
            return 0.0
        if (
            desired > self.estimate
            and self.estimate < self.max_bps
            and now >= self._next_probe
            and now - self.last_decrease >= DECREASE_HOLD
            and self.looks_clean
        ):
            # from the estimate if a probe proved it, else from what is being sent
            base = self.estimate if self._validated else sent
            base = max(base, MIN_ESTIMATE)
            factor = max(self._factor, PROBE_FACTOR_PAUSED) if paused else self._factor
            target = min(max(base * factor, base + PROBE_MIN_STEP), self.max_bps)
            target = min(target, desired * 1.1)
            hold = CEILING_HOLD_PAUSED if paused else CEILING_HOLD
            if now < self._ceiling_at + hold:
                # a probe failed around here lately: search half-way to it
                target = min(target, (base + self._ceiling) / 2)
            if target < base + PROBE_MIN_STEP / 2:
                self._next_probe = now + PROBE_BACKOFF_MIN
                return 0.0
            self.probe_target = target
            self.probe_state = ProbeState.PROBING
            self._probe_started = now
            self._probe_until = now + PROBE_DURATION
            self._probe_reported = False
            self._probe_remb = False
            self._probe_loss = 0.0
            self._probe_decreased = False
            return self.probe_target
        return 0.0

    def _judge(self, now: float) -> None:
        """Finish a settling probe once its feedback is in (or overdue)."""
        waited = now - self._probe_until
        # while video is paused its receiver's REMB is not used (sfu/downlink.py)
        remb_seen = self._probe_remb or self._paused or not self._rembs or waited >= PROBE_REMB_WAIT
        if (self._probe_reported and remb_seen) or waited >= PROBE_FEEDBACK_WAIT:
            self._finish_probe(now)

    def _finish_probe(self, now: float) -> None:
        self.probe_state = ProbeState.IDLE
        clean = (
            self._probe_reported
            and not self._probe_decreased
            and self._probe_loss < self.clean_loss
        )
        logger.debug(
            "%r: probe to %d %s (report %s, remb %s, decrease %s, loss %.2f, floor %.2f)",
            self,
            self.probe_target,
            "clean" if clean else "failed",
            self._probe_reported,
            self._probe_remb,
            self._probe_decreased,
            self._probe_loss,
            self.loss_floor,
        )
        if clean:
            self.probes_ok += 1
            # an untested estimate (the start value) gives way to a proven one
            proven = max(self.estimate, self.probe_target) if self._validated else self.probe_target
            self.estimate = proven
            self._validated = True
            self._guessed = False
            if self.probe_target >= self._ceiling * 0.9:
                self._ceiling_at = -1e9  # the search reached the failed rate: look past it
            self._backoff = PROBE_BACKOFF_MIN
            self._factor = PROBE_FACTOR
        else:
            self.probes_failed += 1
            self._ceiling = self.probe_target
            if self._probe_loss >= self.clean_loss:
                # what got through during the probe is what the link carries
                # (the link's own random loss aside: it is not the probe's)
                lost = max(0.0, self._probe_loss - self.loss_floor)
                delivered = self.probe_target * (1 - lost) * 0.95
                self._decrease(delivered, now, "probe", replaces_guess=False)
                self._ceiling = delivered
            self._ceiling_at = now
            limit = PROBE_BACKOFF_MAX_PAUSED if self._paused else PROBE_BACKOFF_MAX
            self._backoff = min(limit, self._backoff * 2)
            self._factor = PROBE_FACTOR_CAREFUL
        self._next_probe = now + self._backoff
