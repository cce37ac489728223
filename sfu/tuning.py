"""AdaptationTuning: every tuning constant of a subscriber link's adaptation.

One frozen dataclass for what sfu/bandwidth.py (the REMB / receiver-report
estimate and its probes, with its parts sfu/loss_floor.py,
sfu/remb_history.py, sfu/queue_watch.py, sfu/probe_round.py,
sfu/probe_search.py) and sfu/downlink.py (allocation with hysteresis,
pauses, pacing) are tuned by; they read the module-level ``TUNING``. The
send-side estimate from transport feedback has its own: ``GccConfig``
(sfu/gcc.py). Units: seconds, bit/s and fractions (0..1) unless a field
says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AdaptationTuning:
    """Tuning of the REMB / receiver-report estimator and the downlink controller."""

    # -- the estimate (sfu/bandwidth.py) --
    min_estimate: int = 40_000  # bit/s: the estimate never goes below this
    decrease_hold: float = 1.5  # s: no probe (nor "carried" rise) this soon after a decrease
    # -- loss in receiver reports (sfu/bandwidth.py, sfu/loss_floor.py) --
    clean_loss: float = 0.02  # fraction: loss below this (plus the floor margin) is clean
    high_loss: float = 0.10  # fraction: loss above this (plus the margin) may be congestion
    congestion_loss: float = 0.25  # fraction: this much loss is congestion whatever REMB says
    loss_with_remb: float = 5.0  # s after a REMB (or queue) decrease that loss counts as congestion
    loss_floor_reports: int = 11  # reports outside probes whose median loss is the link's own
    loss_floor_min_reports: int = 3  # reports: fewer than this, no floor yet
    loss_floor_margin: float = 2.0  # factor: the loss bars rise by this many times the floor
    # -- REMB (sfu/remb_history.py) --
    remb_drop: float = 0.97  # factor: a REMB below this x the receiver's previous one decreased
    first_remb_drop: float = 0.75  # factor: a first REMB below this x what was sent decreased
    remb_ttl: float = 5.0  # s: a REMB older than this no longer counts in the link's sum
    # -- queueing delay between probes (sfu/queue_watch.py) --
    queue_delay_limit: float = 0.1  # s of round trip above the link's own that is a queue...
    jitter_margin: float = 4.0  # factor: ...or this x the reported jitter, whichever is more
    queue_delay_reports: int = 2  # reports in a row over that bar: the link is full
    queue_decrease: float = 0.85  # factor: a full queue: the link carries this x what is sent
    # -- one probe (sfu/probe_round.py) --
    probe_duration: float = 0.5  # s of padding per probe
    probe_settle: float = 0.2  # s: a report this long after the padding stopped covers the probe
    probe_remb_wait: float = 1.0  # s a REMB is waited for (receivers send one each second)...
    probe_feedback_wait: float = 2.0  # s: ...and a receiver report, or the probe failed
    probe_delay_limit: float = 0.06  # s: a probe that queues its reports this much longer failed
    # -- the probe search (sfu/probe_search.py) --
    probe_factor_careful: float = 1.25  # factor: the first step, and the first after a failure
    probe_factor: float = 2.0  # factor: the step after a clean probe
    probe_factor_paused: float = 1.5  # factor: at least this step while video is paused
    probe_min_step: int = 10_000  # bit/s: a probe steps at least this far (half of it: no probe)
    probe_backoff_min: float = 0.3  # s before the next probe (doubles after each failure)...
    probe_backoff_max: float = 10.0  # s: ...up to this
    probe_backoff_max_paused: float = 2.0  # s: ...or this while video is paused (look again soon)
    ceiling_hold: float = 10.0  # s a failed probe's rate bounds later probes (half-way to it)
    ceiling_hold_paused: float = 3.0  # s: the same while video is paused
    # -- allocation and its actuators (sfu/downlink.py) --
    upgrade_hold: float = 3.0  # s after a step down before the same track steps up
    headroom: float = 0.85  # factor: a step up must fit in this share of the estimate
    tolerance: float = 1.15  # factor: a step down once prices exceed the estimate by this much
    # (prices are measured and jump with keyframes; congestion shows as a lower estimate)
    pause_tolerance: float = 2.0  # factor: a track is paused only once its lowest option exceeds
    # the budget this much (a REMB decrease asks for 15 % less than what arrives, and random
    # loss lowers the loss-based estimate a little: neither should turn a picture off)
    quiet_rate: float = 1000.0  # bit/s: a report only about streams carrying less says no loss
    layer_stale_ms: int = 2000  # ms: a layer silent this long is not offered
    size_slack: float = 0.9  # factor: a layer this close to the rendered size is big enough
    remb_grace: float = 2.0  # s after a resume before the track's REMB counts again
    pacing_factor: float = 1.5  # factor: packets leave at up to this x the estimate (or probe)


TUNING = AdaptationTuning()
"""The tuning sfu/bandwidth.py, sfu/downlink.py and their parts use."""
