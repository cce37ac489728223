"""How much one subscriber's link carries: REMB, loss, and careful probing.

The estimate starts low (a weak link is never flooded at the start) and
moves on three signals:

- REMB from the subscriber (Chrome, aiortc): a delay-based estimate whose
  *decrease* means the link's queue is growing. Receivers only raise REMB
  slowly (8 %/s, bounded by what they receive), so a REMB that goes up is
  not taken as an invitation; a REMB that goes down caps the estimate.
- Loss in receiver reports: above 10 % the estimate drops to what was sent
  times (1 - loss/2), as in GCC's loss-based controller, but only when the
  loss looks like congestion: no REMB yet, a REMB decrease in the last few
  seconds, or loss above 25 %. Random loss on a radio link that NACK/RTX
  repairs is not a reason to send less. Between 2 and 10 % it holds;
  below 2 % the link is clean.
- Probes: when the allocation wants more than the estimate and the link is
  clean, the sender pads up to ``estimate x factor`` for a short window,
  then waits for a receiver report that covers it. Clean (no REMB decrease,
  loss under 2 %): the estimate becomes the probed rate, and the next step
  doubles. Not clean: the estimate drops to what the link delivered during
  the probe, the next probe waits longer (exponential back-off, bounded so a
  link that recovers is found again within seconds) and steps by only 25 %.
  A first probe also steps by 25 %, so an optimistic start estimate costs
  at most one short burst of queueing.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MIN_ESTIMATE = 40_000
HIGH_LOSS = 0.10
CONGESTION_LOSS = 0.25  # this much loss is congestion whatever REMB says
LOSS_WITH_REMB = 5.0  # seconds after a REMB decrease during which loss counts as congestion
CLEAN_LOSS = 0.02
REMB_DROP = 0.97  # a REMB below 97 % of the previous one from the same receiver is a decrease
FIRST_REMB_DROP = 0.75  # a first REMB this far below what was sent is a decrease
REMB_TTL = 5.0
PROBE_DURATION = 1.0
PROBE_SETTLE = 0.8  # at least this long after the padding stops...
PROBE_FEEDBACK_WAIT = 2.0  # ...and at most this long for a report covering the probe
PROBE_FACTOR_CAREFUL = 1.25
PROBE_FACTOR = 2.0
PROBE_MIN_STEP = 10_000
CEILING_HOLD = 3.0  # seconds a failed probe's delivered rate caps later probes
PROBE_BACKOFF_MIN = 0.3
PROBE_BACKOFF_MAX = 10.0
PROBE_BACKOFF_MAX_PAUSED = 3.0  # while video is paused for bandwidth: look again soon
PROBE_FACTOR_PAUSED = 1.5
DECREASE_HOLD = 1.5  # no probe this soon after a decrease


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
        self.probe_state = ProbeState.IDLE
        self.probe_target = 0.0
        self.probes_ok = 0
        self.probes_failed = 0
        self.decreases = 0
        self.last_decrease = now - DECREASE_HOLD
        self.last_decrease_reason = ""
        self._rembs: dict[tuple[str, ...], _Remb] = {}
        self._last_remb_decrease = -1e9
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
        self._ceiling_until = 0.0
        self._validated = False  # the estimate was reached by a clean probe
        self._paused = False

    def __repr__(self) -> str:
        return f"DownlinkEstimator({int(self.estimate)} bit/s {self.probe_state.value})"

    @property
    def probing(self) -> bool:
        return self.probe_state is not ProbeState.IDLE

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
        if self.probe_state is ProbeState.SETTLING:
            self._probe_remb = True
        if previous is None:
            decreased = bitrate < sent_video * FIRST_REMB_DROP
        else:
            decreased = bitrate < previous.bitrate * REMB_DROP
        if not decreased:
            return
        # the receiver saw its queue grow: the link carries what REMB says
        # for video, plus the audio that went through alongside it
        self._last_remb_decrease = now
        if self.probing:
            self._probe_decreased = True
        fresh = sum(r.bitrate for r in self._rembs.values() if now - r.at < REMB_TTL)
        self._decrease(fresh + sent_audio, now, "remb")

    def on_loss(self, fraction: float, sent: float, now: float) -> None:
        """The loss fraction of one receiver report, weighted over its streams."""
        self.loss = fraction
        if self.probing:
            # the probe's own verdict decides (sfu/downlink.py pads on top of ``sent``)
            if now - self._probe_started >= PROBE_SETTLE:
                self._probe_reported = True
            self._probe_loss = max(self._probe_loss, fraction)
            return
        if fraction <= HIGH_LOSS or sent <= 0:
            return
        congestion = (
            not self._rembs
            or fraction > CONGESTION_LOSS
            or now - self._last_remb_decrease < LOSS_WITH_REMB
        )
        if not congestion:
            return
        self._decrease(sent * (1 - fraction / 2), now, "loss")

    def cap(self, bitrate: float, now: float, why: str) -> None:
        """Never assume more than ``bitrate`` (e.g. what is left after a pause)."""
        self._decrease(bitrate, now, why)

    def _decrease(self, bitrate: float, now: float, why: str) -> None:
        bitrate = max(MIN_ESTIMATE, bitrate)
        self._validated = False
        if bitrate < self.estimate:
            logger.debug("%r down to %d (%s)", self, bitrate, why)
            self.estimate = bitrate
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
            waited = now - self._probe_until
            covered = self._probe_reported and (self._probe_remb or not self._rembs)
            if (covered and waited >= PROBE_SETTLE) or waited >= PROBE_FEEDBACK_WAIT:
                self._finish_probe(now)
            return 0.0
        if (
            desired > self.estimate * 1.05
            and self.estimate < self.max_bps
            and now >= self._next_probe
            and now - self.last_decrease >= DECREASE_HOLD
            and self.loss < CLEAN_LOSS
        ):
            # from the estimate if a probe proved it, else from what is being sent
            base = self.estimate if self._validated else min(self.estimate, sent)
            base = max(base, MIN_ESTIMATE)
            factor = max(self._factor, PROBE_FACTOR_PAUSED) if paused else self._factor
            target = min(max(base * factor, base + PROBE_MIN_STEP), self.max_bps)
            target = min(target, desired * 1.1)
            if now < self._ceiling_until:
                # a probe just failed around here: don't hammer the link again
                target = min(target, self._ceiling * 0.9)
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

    def _finish_probe(self, now: float) -> None:
        self.probe_state = ProbeState.IDLE
        clean = (
            self._probe_reported
            and (self._probe_remb or not self._rembs)
            and not self._probe_decreased
            and self._probe_loss < CLEAN_LOSS
        )
        if clean:
            self.probes_ok += 1
            self.estimate = max(self.estimate, self.probe_target)
            self._validated = True
            self._backoff = PROBE_BACKOFF_MIN
            self._factor = PROBE_FACTOR
        else:
            self.probes_failed += 1
            self._ceiling = self.probe_target
            if self._probe_reported and self._probe_loss >= CLEAN_LOSS:
                # what got through during the probe is what the link carries
                delivered = self.probe_target * (1 - self._probe_loss) * 0.95
                self._decrease(delivered, now, "probe")
                self._ceiling = delivered
            self._ceiling_until = now + CEILING_HOLD
            limit = PROBE_BACKOFF_MAX_PAUSED if self._paused else PROBE_BACKOFF_MAX
            self._backoff = min(limit, self._backoff * 2)
            self._factor = PROBE_FACTOR_CAREFUL
        self._next_probe = now + self._backoff
