"""How much one subscriber's link carries: REMB, loss, and careful probing.

The estimate starts low (a weak link is never flooded at the start) and
moves on three signals:

- REMB from the subscriber (Chrome, aiortc): a delay-based estimate whose
  *decrease* means the link's queue is growing. Receivers only raise REMB
  slowly (8 %/s, bounded by what they receive), so a REMB that goes up is
  not taken as an invitation; a REMB that goes down caps the estimate.
- Loss in receiver reports: above 10 % the estimate drops to what was sent
  times (1 - loss/2); between 2 and 10 % it holds; below 2 % the link is
  clean (as in GCC's loss-based controller).
- Probes: when the allocation wants more than the estimate and the link is
  clean, the sender pads up to ``estimate x factor`` for a short window. No
  REMB decrease and no loss through the window and a short settle time:
  the estimate becomes the probed rate. A failed probe backs off
  (exponentially, bounded so a link that recovers is found again within
  seconds) and the next one steps more carefully.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MIN_ESTIMATE = 40_000
HIGH_LOSS = 0.10
CLEAN_LOSS = 0.02
REMB_DROP = 0.97  # a REMB below 97 % of the previous one from the same receiver is a decrease
FIRST_REMB_DROP = 0.75  # a first REMB this far below what was sent is a decrease
REMB_TTL = 5.0
PROBE_DURATION = 0.8
PROBE_SETTLE = 0.6
PROBE_FACTOR = 1.5
PROBE_FACTOR_CAREFUL = 1.25
PROBE_BACKOFF_MIN = 0.5
PROBE_BACKOFF_MAX = 3.0
DECREASE_HOLD = 1.5  # no probe this soon after a decrease


class ProbeState(enum.Enum):
    IDLE = "idle"
    PROBING = "probing"  # padding is being sent
    SETTLING = "settling"  # padding stopped, waiting for late feedback


@dataclass(slots=True)
class _Remb:
    bitrate: int
    at: float


class DownlinkEstimator:
    def __init__(self, start_bps: int, max_bps: int, now: float) -> None:
        self.estimate = float(start_bps)
        self.max_bps = float(max_bps)
        self.loss = 0.0
        self.rtt_ms: float | None = None
        self.probe_state = ProbeState.IDLE
        self.probe_target = 0.0
        self.probes_ok = 0
        self.probes_failed = 0
        self._rembs: dict[tuple[str, ...], _Remb] = {}
        self.last_decrease = now - DECREASE_HOLD
        self.decreases = 0
        self.last_decrease_reason = ""
        self._probe_until = 0.0
        self._next_probe = now + 1.0
        self._backoff = PROBE_BACKOFF_MIN
        self._factor = PROBE_FACTOR
        self._decreased_in_probe = False

    def __repr__(self) -> str:
        return f"DownlinkEstimator({int(self.estimate)} bit/s {self.probe_state.value})"

    # -- signals -------------------------------------------------------------

    def on_remb(
        self, key: tuple[str, ...], bitrate: int, sent_video: float, sent_audio: float, now: float
    ) -> None:
        """A REMB covering the video streams ``key``; ``sent_*`` is what was sent (bit/s)."""
        previous = self._rembs.get(key)
        self._rembs[key] = _Remb(bitrate, now)
        if previous is None:
            decreased = bitrate < sent_video * FIRST_REMB_DROP
        else:
            decreased = bitrate < previous.bitrate * REMB_DROP
        if not decreased:
            return
        # the receiver saw its queue grow: the link carries what REMB says
        # for video, plus the audio that went through alongside it
        fresh = sum(r.bitrate for r in self._rembs.values() if now - r.at < REMB_TTL)
        self._decrease(fresh + sent_audio, now, "remb")

    def on_loss(self, fraction: float, sent: float, now: float) -> None:
        """The loss fraction of one receiver report, weighted over its streams."""
        self.loss = fraction
        if fraction > HIGH_LOSS:
            self._decrease(sent * (1 - fraction / 2), now, "loss")

    def _decrease(self, bitrate: float, now: float, why: str) -> None:
        bitrate = max(MIN_ESTIMATE, bitrate)
        if self.probe_state is not ProbeState.IDLE:
            self._decreased_in_probe = True
        if bitrate < self.estimate:
            logger.debug("%r down to %d (%s)", self, bitrate, why)
            self.estimate = bitrate
        self.last_decrease = now
        self.decreases += 1
        self.last_decrease_reason = f"{why} -> {int(bitrate)}"

    # -- probing ---------------------------------------------------------------

    def padding_target(self, desired: float, now: float) -> float:
        """The total rate to pad up to right now (0: no probe)."""
        state = self.probe_state
        if state is ProbeState.PROBING:
            if now < self._probe_until:
                return self.probe_target
            self.probe_state = ProbeState.SETTLING
            self._probe_until = now + PROBE_SETTLE
            return 0.0
        if state is ProbeState.SETTLING:
            if now >= self._probe_until:
                self._finish_probe(now)
            return 0.0
        if (
            desired > self.estimate * 1.05
            and self.estimate < self.max_bps
            and now >= self._next_probe
            and now - self.last_decrease >= DECREASE_HOLD
            and self.loss < CLEAN_LOSS
        ):
            self.probe_target = min(self.max_bps, self.estimate * self._factor, desired * 1.1)
            self.probe_state = ProbeState.PROBING
            self._probe_until = now + PROBE_DURATION
            self._decreased_in_probe = False
            return self.probe_target
        return 0.0

    def _finish_probe(self, now: float) -> None:
        self.probe_state = ProbeState.IDLE
        if self._decreased_in_probe or self.loss >= CLEAN_LOSS:
            self.probes_failed += 1
            self._backoff = min(PROBE_BACKOFF_MAX, self._backoff * 2)
            self._factor = PROBE_FACTOR_CAREFUL
        else:
            self.probes_ok += 1
            self.estimate = max(self.estimate, self.probe_target * 0.95)
            self._backoff = PROBE_BACKOFF_MIN
            self._factor = PROBE_FACTOR
        self._next_probe = now + self._backoff
