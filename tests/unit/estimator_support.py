"""Shared setup of the estimator unit tests (test_bandwidth_estimator/_probes.py)."""

from __future__ import annotations

from sfu.bandwidth import DownlinkEstimator, ProbeState

START = 300_000
MAX = 5_000_000
WANT = 3_000_000  # what the allocation would like: always more than the estimate
T0 = 100.0  # the estimator is created at this time; the first probe may start a second later
FIRST_PROBE = T0 + 1.0
EPS = 1e-6  # past a threshold despite float rounding


def estimator(start: int = START, max_bps: int = MAX) -> DownlinkEstimator:
    return DownlinkEstimator(start, max_bps, T0)


def probe_state(est: DownlinkEstimator) -> ProbeState:
    """Not narrowed by mypy across calls that change it."""
    return est.probe_state
