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
  link's own) is the queue in front of the receiver. Over ``queue_delay_limit``
  or ``jitter_margin`` times the jitter the receivers report, whichever is
  more (a radio link's delay varies by itself), on ``queue_delay_reports``
  reports in a row, the link is full: the estimate drops to 85 % of what is
  sent, as on a REMB decrease, and loss counts as congestion for a while.
  This needs no REMB, so it also holds for receivers whose REMB is slow or
  absent.

The class below keeps the estimate and decides; its parts, one job each:
sfu/remb_history.py (the receivers' REMBs, which ones are decreases),
sfu/loss_floor.py (the link's own random loss and the bars it raises),
sfu/queue_watch.py (a queue between probes), sfu/probe_round.py (one probe's
timing and evidence) and sfu/probe_search.py (the next probe's step,
back-off and ceiling). Every tuning constant: ``AdaptationTuning``
(sfu/tuning.py).
"""

from __future__ import annotations

import logging

from sfu.loss_floor import LossFloor
from sfu.probe_round import ProbeRound, ProbeState
from sfu.probe_search import ProbeSearch
from sfu.queue_watch import QueueWatch
from sfu.remb_history import RembHistory
from sfu.tuning import TUNING

__all__ = ["DownlinkEstimator", "ProbeState"]

logger = logging.getLogger(__name__)


class DownlinkEstimator:
    def __init__(self, start_bps: int, max_bps: int, now: float) -> None:
        self.estimate = float(start_bps)
        self.max_bps = float(max_bps)
        self.loss = 0.0  # the latest receiver report's
        self.probes_ok = 0
        self.probes_failed = 0
        self.decreases = 0
        self.last_decrease = now - TUNING.decrease_hold
        self.last_decrease_reason = ""
        self._rembs = RembHistory()
        self._loss_floor = LossFloor()  # reports outside probes
        self._queue = QueueWatch()
        self._probe = ProbeRound()  # the probe running or being judged
        self._search = ProbeSearch(now)  # where and when the next one goes
        self._validated = False  # the estimate was reached by a clean probe
        self._guessed = True  # the estimate is still the start value: nothing measured it
        self._paused = False

    def __repr__(self) -> str:
        return f"DownlinkEstimator({int(self.estimate)} bit/s {self.probe_state.value})"

    @property
    def probe_state(self) -> ProbeState:
        return self._probe.state

    @property
    def probe_target(self) -> float:
        """The rate the latest probe padded up to (bit/s)."""
        return self._probe.target

    @property
    def queue_delay(self) -> float:
        """The latest queueing delay measured (s)."""
        return self._queue.delay

    @property
    def loss_floor(self) -> float:
        """The link's own random loss: the median of the last reports outside probes."""
        return self._loss_floor.floor

    @property
    def clean_loss(self) -> float:
        """Loss below this is no complaint: probes pass, what was sent is carried."""
        return self._loss_floor.clean

    @property
    def high_loss(self) -> float:
        """Loss above this may be congestion (see :meth:`on_loss`)."""
        return self._loss_floor.high

    @property
    def looks_clean(self) -> bool:
        return self.loss < self._loss_floor.clean

    @property
    def may_pause(self) -> bool:
        """A congestion signal was seen: a track may be paused for bandwidth."""
        return self.decreases > 0

    @property
    def probing(self) -> bool:
        return self._probe.state is not ProbeState.IDLE

    def new_success(self) -> bool:
        """Receiver-report probes are decided at the allocation tick itself."""
        return False

    def padding_now(self, now: float) -> bool:
        """Whether probe padding should be on the wire at ``now``."""
        return self._probe.padding_now(now)

    def _abort_probe(self, now: float, why: str) -> None:
        if self._probe.stop_early(now):
            logger.debug("%r: probe to %d stopped early (%s)", self, self._probe.target, why)

    # -- signals -------------------------------------------------------------

    def on_remb(
        self, key: tuple[str, ...], bitrate: int, sent_video: float, sent_audio: float, now: float
    ) -> None:
        """A REMB covering the video streams ``key``; ``sent_*`` is what was sent (bit/s)."""
        rembs = self._rembs
        decreased = rembs.add(key, bitrate, sent_video, now)
        probe = self._probe
        if probe.state is not ProbeState.IDLE and now >= probe.until + TUNING.probe_settle:
            probe.remb = True
        if not decreased:
            return
        # the receiver saw its queue grow: the link carries what REMB says
        # for video, plus the audio that went through alongside it
        if probe.state is not ProbeState.IDLE:
            probe.decreased = True
            self._abort_probe(now, "remb")
        self._decrease(rembs.fresh_total(now) + sent_audio, now, "remb")

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
        probe = self._probe
        if probe.state is not ProbeState.IDLE:
            # the probe's own verdict decides (sfu/downlink.py pads on top of ``sent``)
            settle = TUNING.probe_settle
            if covers_probe is None:
                covers_probe = now >= probe.until + settle
            if now - probe.started >= settle:
                probe.loss = max(probe.loss, fraction)
                if fraction >= self._loss_floor.clean:
                    self._abort_probe(now, f"loss {fraction:.2f}")
            if covers_probe and now >= probe.until:
                probe.reported = True
                probe.state = ProbeState.SETTLING
                self._judge(now)
            return
        floor = self._loss_floor
        floor.add(fraction)
        if fraction <= floor.high or sent <= 0:
            return
        rembs = self._rembs
        congestion = (
            not rembs.seen
            or fraction > TUNING.congestion_loss
            or now - max(rembs.last_decrease, self._queue.last_full) < TUNING.loss_with_remb
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
        queue = self._queue
        queue.delay = max(0.0, delay)
        probe = self._probe
        if probe.state is ProbeState.IDLE:
            if (
                not queue.over(delay, jitter)
                or now - self.last_decrease < TUNING.decrease_hold
                or sent <= 0
            ):
                return
            logger.debug("%r: a queue of %.0f ms between probes", self, delay * 1000)
            queue.full(now)
            self._decrease(sent * TUNING.queue_decrease, now, f"queue {delay * 1000:.0f} ms")
            return
        if sent_at < probe.started:
            return
        if delay > TUNING.probe_delay_limit:
            # the probe built a queue: the link is full below the probed rate
            logger.debug("%r: probe to %d queued %.0f ms", self, probe.target, delay * 1000)
            probe.decreased = True
            self._abort_probe(now, f"queue {delay * 1000:.0f} ms")

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
        bitrate = max(TUNING.min_estimate, bitrate)
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
        probe = self._probe
        state = probe.state
        if state is ProbeState.PROBING:
            if now < probe.until:
                return probe.target
            probe.state = ProbeState.SETTLING
            return 0.0
        if state is ProbeState.SETTLING:
            self._judge(now)
            return 0.0
        if (
            desired > self.estimate
            and self.estimate < self.max_bps
            and now >= self._search.next_at
            and now - self.last_decrease >= TUNING.decrease_hold
            and self.looks_clean
        ):
            # from the estimate if a probe proved it, else from what is being sent
            base = self.estimate if self._validated else sent
            base = max(base, TUNING.min_estimate)
            target = self._search.target(base, desired, self.max_bps, paused, now)
            if target:
                probe.start(target, now)
            return target
        return 0.0

    def _judge(self, now: float) -> None:
        """Finish a settling probe once its feedback is in (or overdue)."""
        # while video is paused its receiver's REMB is not used (sfu/downlink.py)
        if self._probe.ready(now, remb_expected=self._rembs.seen and not self._paused):
            self._finish_probe(now)

    def _finish_probe(self, now: float) -> None:
        probe = self._probe
        probe.state = ProbeState.IDLE
        clean = probe.clean(self._loss_floor.clean)
        logger.debug(
            "%r: probe to %d %s (report %s, remb %s, decrease %s, loss %.2f, floor %.2f)",
            self,
            probe.target,
            "clean" if clean else "failed",
            probe.reported,
            probe.remb,
            probe.decreased,
            probe.loss,
            self.loss_floor,
        )
        if clean:
            self.probes_ok += 1
            # an untested estimate (the start value) gives way to a proven one
            proven = max(self.estimate, probe.target) if self._validated else probe.target
            self.estimate = proven
            self._validated = True
            self._guessed = False
            self._search.passed(probe.target, now)
            return
        self.probes_failed += 1
        ceiling = probe.target
        if probe.loss >= self._loss_floor.clean:
            # what got through during the probe is what the link carries
            # (the link's own random loss aside: it is not the probe's)
            lost = max(0.0, probe.loss - self.loss_floor)
            delivered = probe.target * (1 - lost) * 0.95
            self._decrease(delivered, now, "probe", replaces_guess=False)
            ceiling = delivered
        self._search.failed(ceiling, now, self._paused)
