"""Unit tests for sfu/probe_round.py: one probe's timing and the evidence that judges it.

The estimator-level behaviour (when probes start, what a verdict does to
the estimate) is in test_bandwidth_probes.py; these check the round alone.
"""

from __future__ import annotations

from sfu.probe_round import ProbeRound, ProbeState
from sfu.tuning import TUNING

T0 = 10.0
END = T0 + TUNING.probe_duration


def started(target: float = 500_000) -> ProbeRound:
    probe = ProbeRound()
    probe.start(target, T0)
    return probe


def test_idle_until_started_then_pads_for_the_probe_duration() -> None:
    probe = ProbeRound()
    assert probe.state is ProbeState.IDLE and not probe.padding_now(T0)
    probe = started()
    assert probe.state is ProbeState.PROBING and probe.target == 500_000
    assert (probe.started, probe.until) == (T0, END)
    assert probe.padding_now(END - 0.01)
    assert not probe.padding_now(END)


def test_a_new_probe_starts_without_the_last_ones_evidence() -> None:
    probe = started()
    probe.reported = probe.remb = probe.decreased = True
    probe.loss = 0.3
    probe.start(600_000, T0 + 5)
    assert not (probe.reported or probe.remb or probe.decreased)
    assert probe.loss == 0.0 and probe.target == 600_000


def test_stopped_early_only_while_padding() -> None:
    probe = started()
    assert probe.stop_early(T0 + 0.1)
    assert probe.state is ProbeState.SETTLING and probe.until == T0 + 0.1
    assert not probe.padding_now(T0 + 0.2)
    assert not probe.stop_early(T0 + 0.2)  # already stopped
    assert probe.until == T0 + 0.1
    assert not ProbeRound().stop_early(T0)


def test_ready_once_a_report_and_a_remb_are_in() -> None:
    probe = started()
    probe.state = ProbeState.SETTLING
    probe.reported = True
    assert not probe.ready(END + 0.1, remb_expected=True)
    assert probe.ready(END + 0.1, remb_expected=False)
    probe.remb = True
    assert probe.ready(END + 0.1, remb_expected=True)


def test_a_late_remb_is_not_waited_for_and_missing_feedback_is_overdue() -> None:
    probe = started()
    probe.reported = True
    assert probe.ready(END + TUNING.probe_remb_wait, remb_expected=True)
    probe = started()  # no report at all: overdue, and then it failed
    assert not probe.ready(END + TUNING.probe_feedback_wait - 0.01, remb_expected=False)
    assert probe.ready(END + TUNING.probe_feedback_wait, remb_expected=False)
    assert not probe.clean(TUNING.clean_loss)


def test_clean_needs_a_report_no_decrease_and_little_loss() -> None:
    probe = started()
    probe.reported = True
    assert probe.clean(0.02)
    probe.loss = 0.02
    assert not probe.clean(0.02)
    assert probe.clean(0.05)  # the bar the link's own loss raised
    probe.decreased = True
    assert not probe.clean(0.05)
