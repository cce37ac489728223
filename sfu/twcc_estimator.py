"""A subscriber link's estimate from transport-wide feedback, for the DownlinkController.

Used instead of sfu/bandwidth.py's REMB/receiver-report estimator once a
subscriber (a browser) returns transport feedback: every packet the server
sends it carries a transport-wide sequence number (sfu/transport_sender.py),
so its feedback says when each one arrived, and sfu/gcc.py estimates the
link send-side, from the trend of the queueing delay and from loss, as
Chrome does for its own uplink.

This class gives that estimate the same face as ``DownlinkEstimator`` (the
controller's allocation, pause and probing code is shared) and decides
probes:

- **When**: the allocation wants more than the estimate, no congestion was
  seen in the last ``decrease_hold`` seconds (sfu/tuning.py), the feedback
  does not show a full link (loss over ``PROBE_MAX_LOSS``, 10 % while video
  is paused, above the link's own random loss), and the back-off allows it.
- **How much**: 1.5x the estimate (2x after a probe that succeeded, 3x
  while video is paused: from thin-link audio, 25-45 kbit/s, one step
  reaches the lowest layer's resume, instead of a small probe and a
  second one after it once a cap is lifted, and whatever is wanted: see
  ``PROBE_STEP_PAUSED``); otherwise never more than ``PROBE_OVERSHOOT`` times
  what is wanted (a probe proves a little less than it sends: one for
  exactly what was wanted proved just short of it, too close for another
  probe, and the estimate stayed below what the allocation wanted until the
  proof expired 5 s later); for ``PROBE_DURATION``
  seconds, or longer at a low rate so that the padding makes a measurable
  cluster (``PROBE_MIN_PADDING`` bytes, at most ``PROBE_MAX_DURATION``):
  padding on top of the media (the pacer lets it through at the probe's
  rate). A 60 kbit/s link paused its video and, once widened, its
  estimate crept up from 20 to 55 kbit/s in 24 s with every probe too
  small to judge. While video is paused, ``PROBE_PAUSED_DURATION``
  whatever the rate: such a probe decides a resume, and a quarter-second
  one at 160 kbit/s (5 kB) passed through a 60 kbit/s ``tbf`` whose bucket
  (4 kB) had filled while only audio flowed, was judged a success, and
  resumed video the link could not carry (a failed trial; the resume
  back-off then held the video for seconds after the cap was lifted).
  Stopped at the first sign of a queue like any probe, it costs little more.
- **Stopped early**: at the first feedback whose delay trend says the queue
  grows (``overusing_now``): within one feedback interval, before audio
  behind it suffers.
- **Judged** by sfu/gcc.py (the receive rate of the cluster's packets against
  its send rate), once every packet of it is reported or feedback has
  reported a packet sent after it (a feedback lost as a cap is lifted must
  not leave the probe undecided until its timeout, the next probe waiting
  behind it). A success raises the estimate to the probed rate in one
  step, and the next probe may double; a failure doubles the back-off
  (``PROBE_BACKOFF_MIN`` .. ``PROBE_BACKOFF_MAX``).

``estimate`` is only what the link has shown: while little is sent, GCC's
estimate is a bound (1.5x what arrived), and the allocation is given what
arrived (+15 %) or what a probe proved in the last 5 s instead, so an
up-switch beyond it waits for a probe.

``may_pause`` is the honest-signal rule: only a real congestion signal
(an overuse or a loss-based decrease in the last few seconds) lets the
controller pause video. A low estimate on a link that simply carries
little (the remote publisher is weak, video is paused) never does.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

from sfu.gcc import PacketFeedback, ProbeOutcome, SendSideEstimator
from sfu.probe_round import ProbeState
from sfu.tuning import TUNING

logger = logging.getLogger(__name__)

PROBE_DURATION = 0.25  # seconds of padding per probe...
PROBE_MIN_PADDING = 6 * 255  # ...at least this many bytes of it (a cluster needs 5 packets)...
PROBE_MAX_DURATION = 1.0  # ...within this
PROBE_PAUSED_DURATION = 1.0  # while video is paused for bandwidth: this long, whatever the rate
PROBE_STEP = 1.5  # first probe, and after a failure: this times the estimate
PROBE_STEP_AFTER_SUCCESS = 2.0
PROBE_STEP_PAUSED = 3.0  # while video is paused: one step from thin audio to the lowest layer,
# whatever is wanted: a second of probing passes a shaper unnoticed while its excess over the
# link fits in the shaper's bucket (tbf's 4 kB: 32 kbit/s over a 60 kbit/s cap), and a probe
# for 1.25x a lowest layer just above the cap was judged a success there and resumed the video
# into the cap (real Chromium at 60 kbit/s: a failed trial, the specialist lost 4.7 % of audio)
PROBE_MIN_STEP = 1.15  # a probe for less than this times the estimate is not worth it...
PROBE_OVERSHOOT = 1.25  # ...but one for what is wanted goes this far past it: a probe proves
# a little less than it sends, and one that proved just short of what the allocation
# wanted left the estimate below it with no further probe worth making
PROBE_SETTLE_MAX = 2.0  # seconds after a probe ends: given up on if still undecided
PROBE_MAX_LOSS = 0.05  # no probe while recent feedback shows more loss than this (smoothed;
PROBE_MAX_LOSS_PAUSED = 0.10  # while paused it decays too slowly after a link widens)
PROBE_BACKOFF_MIN = 1.0  # seconds before the next probe after a failure (doubles)
PAYLOAD_SHARE_SMOOTHING = 0.5
PROVEN_MARGIN = 1.15  # while little is sent, the link is trusted with this much more...
PROVEN_TTL = 5.0  # ...or with what a probe measured in the last few seconds
PROBE_BACKOFF_MAX = 30.0  # a link that keeps failing probes is full: each one costs a queue
PROBE_BACKOFF_PAUSED = 2.0  # ...but while video is paused, a link that widens is found within it


class TwccEstimator:
    """Estimate, congestion and probes of one subscriber link from transport feedback."""

    def __init__(self, start_bps: float, max_bps: float, now: float) -> None:
        self._gcc = SendSideEstimator(start_bps, TUNING.min_estimate, max_bps)
        self._clusters = itertools.count(1)
        self._cluster: int | None = None  # the probe cluster running or being judged
        self._cluster_target = 0.0
        self._probe_ends = 0.0
        self._schedule = ProbeSchedule(now)  # when the next probe may go, and its step
        self._seen_congestion: float | None = None
        self.probe_state = ProbeState.IDLE
        self.decreases = 0  # congestion signals seen (overuse or loss-based decrease)
        self.last_decrease = -1e9
        self.probes = 0
        self.probes_failed = 0
        # RTP bits per bit on the wire of what was sent lately: the estimate is
        # in wire bits, prices and rates are in RTP bits (TransportSender.payload_share)
        self.payload_share = 0.9
        self._cluster_result: float | None = None
        self._proven = 0.0  # bit/s (wire) the latest successful probe measured...
        self._proven_at = -1e9  # ...and when
        self._unseen_success = False  # a probe succeeded since new_success() was asked
        self._now = now

    def __repr__(self) -> str:
        gcc = self._gcc
        return (
            f"TwccEstimator({gcc.estimate / 1000:.0f} kbit/s, {gcc.usage.name.lower()}, "
            f"acked {(gcc.acked_bitrate or 0) / 1000:.0f}, loss {gcc.loss:.1%}, "
            f"{self.probe_state.value})"
        )

    # -- what the DownlinkController reads ------------------------------------------

    @property
    def estimate(self) -> float:
        """The link's estimate in RTP bits (what prices are in): only what the link has shown.

        While little is sent, GCC's estimate is a bound (1.5x what arrived), not
        a measurement; allocating into it switched a 250 kbit/s link's video up
        to 640x360 and back within 2 s. Then the estimate is what arrived (plus
        ``PROVEN_MARGIN``) or what a probe proved lately, whichever is more:
        an up-switch beyond it waits for a probe.
        """
        gcc = self._gcc
        value = gcc.estimate
        acked = gcc.acked_bitrate
        if acked is not None and gcc.limited_by_traffic:
            proven = self._proven if self._now - self._proven_at < PROVEN_TTL else 0.0
            value = min(value, max(acked * PROVEN_MARGIN, proven))
        return value * self.payload_share

    @property
    def loss(self) -> float:
        return self._gcc.loss

    @property
    def queue_delay(self) -> float:
        return self._gcc.queue_delay

    @property
    def looks_clean(self) -> bool:
        return not self._gcc.congested

    @property
    def may_pause(self) -> bool:
        """A real congestion signal lately: only then may video be paused for bandwidth."""
        return self._gcc.congested

    @property
    def probing(self) -> bool:
        return self.probe_state is ProbeState.PROBING

    def padding_now(self, now: float) -> bool:
        """Whether a probe's padding goes on; a probe whose time is up ends here and now.

        (Ended only at the next allocation tick, up to half a second later, its
        cluster took in the media sent meanwhile and measured half its rate.)
        """
        if self.probe_state is not ProbeState.PROBING:
            return False
        if now < self._probe_ends:
            return True
        self._end_probe(now)
        return False

    def new_success(self) -> bool:
        """True once after each probe that succeeded (decided by the feedback that ended it).

        The controller acts on it at once instead of at its next allocation
        tick: up to half a second more for a paused video after a cap was lifted.
        """
        success, self._unseen_success = self._unseen_success, False
        return success

    # -- feedback ------------------------------------------------------------------

    def on_sent(self, seq: int) -> None:
        """A packet left with this (unwrapped) transport-wide sequence number."""
        if self._cluster is not None and self.probe_state is ProbeState.PROBING:
            self._gcc.on_probe_packet_sent(self._cluster, seq)

    def on_feedback(self, results: Sequence[PacketFeedback], now: float, rtt: float | None) -> None:
        gcc = self._gcc
        self._now = now
        if rtt is not None:
            gcc.set_rtt(rtt)
        gcc.on_feedback(results, now)
        if gcc.last_congestion is not None and gcc.last_congestion != self._seen_congestion:
            self._seen_congestion = gcc.last_congestion
            self.decreases += 1
            self.last_decrease = now
        if self.probe_state is ProbeState.PROBING and gcc.overusing_now:
            logger.debug("%r: probe stopped, the queue grows", self)
            self._end_probe(now)
        self._judge(now)

    # -- signals the REMB/receiver-report estimator uses (transport feedback says more) ------

    def on_remb(self, *args: object) -> None:
        """REMB is ignored: transport feedback covers every packet."""

    def on_loss(self, *args: object) -> None:
        """Receiver-report loss is ignored: transport feedback counts every packet."""

    def on_queue_delay(self, *args: object) -> None:
        """The RTX round trip is ignored: the delay trend of every packet says more."""

    def carried(self, bitrate: float) -> None:
        """What went through raises the estimate by itself (acknowledged rate)."""

    def cap(self, bitrate: float, now: float, why: str) -> None:
        """A pause needs no cap: the estimate already follows the link."""

    def on_payload_share(self, share: float | None) -> None:
        """What share of the wire bits sent lately were RTP bits (smoothed)."""
        if share is not None:
            self.payload_share += PAYLOAD_SHARE_SMOOTHING * (share - self.payload_share)

    def set_application_limited(self, limited: bool) -> None:
        self._gcc.set_application_limited(limited)

    # -- probing -----------------------------------------------------------------------

    def padding_target(self, wanted: float, now: float, sent: float, paused: bool) -> float:
        """The total rate to send now (media + padding): above ``sent`` while probing, else 0."""
        schedule = self._schedule
        schedule.set_paused(paused, now)
        self._now = now
        if self.probe_state is ProbeState.PROBING:
            if now < self._probe_ends:
                return self._cluster_target
            self._end_probe(now)
        if self.probe_state is ProbeState.SETTLING:
            self._judge(now)
            return 0.0
        estimate = self.estimate
        if (
            wanted <= estimate
            or now < schedule.next_probe
            or now - self.last_decrease < TUNING.decrease_hold
            or self._gcc.overusing_now
            or (self._gcc.congested and not paused)
            # a full link (not a radio link's own random loss): a probe would only cost audio
            or self._recent_loss(paused) > self._loss_bar(paused)
        ):
            return 0.0  # (while paused, a link that was congested seconds ago is probed again)
        if paused:  # the full step whatever is wanted: see PROBE_STEP_PAUSED
            target = estimate * PROBE_STEP_PAUSED
        else:
            target = max(
                min(wanted * PROBE_OVERSHOOT, estimate * schedule.step), estimate * PROBE_MIN_STEP
            )
        self._cluster = next(self._clusters)
        self._cluster_target = target
        # long enough for the padding to make a measurable cluster at a low rate
        excess = max(target - sent, 1.0)
        duration = min(max(PROBE_DURATION, PROBE_MIN_PADDING * 8 / excess), PROBE_MAX_DURATION)
        if paused:  # it decides a resume: longer than a shaper's burst allowance can hide
            duration = PROBE_PAUSED_DURATION
        self._probe_ends = now + duration
        self._gcc.start_probe(self._cluster, target / self.payload_share, now)
        self.probe_state = ProbeState.PROBING
        self.probes += 1
        logger.debug("%r: probing at %d bit/s (sending %d)", self, target, sent)
        return target

    def _recent_loss(self, paused: bool) -> float:
        """The loss that gates a probe; while paused, not the failed probes' own.

        (With it, a probe failed into a cap just before the cap was lifted held
        the next one back 2 s. A link carrying video keeps the stricter gate:
        there a failed probe's loss is the media's too.)
        """
        return self._gcc.loss_outside_probes if paused else self._gcc.loss

    def _loss_bar(self, paused: bool) -> float:
        limit = PROBE_MAX_LOSS_PAUSED if paused else PROBE_MAX_LOSS
        return limit + 2 * self._gcc.loss_floor

    def _end_probe(self, now: float) -> None:
        if self._cluster is not None:
            self._gcc.end_probe(self._cluster)
        self.probe_state = ProbeState.SETTLING
        self._probe_ends = now

    def _judge(self, now: float) -> None:
        cluster = self._cluster
        if cluster is None or self.probe_state is not ProbeState.SETTLING:
            return
        outcome = self._gcc.probe_outcome(cluster)
        if outcome is ProbeOutcome.PENDING and now - self._probe_ends < PROBE_SETTLE_MAX:
            return
        self.probe_state = ProbeState.IDLE
        self._cluster_result = self._gcc.probe_result(cluster)
        self._cluster = None
        self._settle(outcome, now)
        logger.debug("%r: probe %s", self, outcome.value)

    def _settle(self, outcome: ProbeOutcome, now: float) -> None:
        if outcome is ProbeOutcome.SUCCEEDED:
            self._unseen_success = True
            if self._cluster_result is not None:
                self._proven, self._proven_at = self._cluster_result, now
            self._schedule.succeeded(now)
        else:
            self.probes_failed += 1
            self._schedule.failed(now)


class ProbeSchedule:
    """When the next probe may go and how far it steps: back-off after failures.

    A failure doubles the back-off (``PROBE_BACKOFF_MIN`` .. ``PROBE_BACKOFF_MAX``,
    or at most ``PROBE_BACKOFF_PAUSED`` while video is paused: a link that
    widens must give the video back within seconds); a success clears it
    and lets the next probe step ``PROBE_STEP_AFTER_SUCCESS``.
    """

    __slots__ = ("_backoff", "_paused", "next_probe", "step")

    def __init__(self, now: float) -> None:
        self.next_probe = now
        self.step = PROBE_STEP
        self._backoff = PROBE_BACKOFF_MIN
        self._paused = False  # some video is paused for bandwidth (shorter back-off)

    def set_paused(self, paused: bool, now: float) -> None:
        self._paused = paused
        if paused:
            self._backoff = min(self._backoff, PROBE_BACKOFF_PAUSED)
            self.next_probe = min(self.next_probe, now + PROBE_BACKOFF_PAUSED)

    def succeeded(self, now: float) -> None:
        self.step = PROBE_STEP_AFTER_SUCCESS
        self._backoff = PROBE_BACKOFF_MIN
        self.next_probe = now

    def failed(self, now: float) -> None:
        self.step = PROBE_STEP
        limit = PROBE_BACKOFF_PAUSED if self._paused else PROBE_BACKOFF_MAX
        self._backoff = min(self._backoff, limit)
        self.next_probe = now + self._backoff
        self._backoff = min(self._backoff * 2, limit)
