"""Consent policies: whoever has not consented is never written."""

from __future__ import annotations

from recording.consent import ConsentPolicy, ConsentState, RecordingState
from sfu.participant import Role


def room(policy: ConsentPolicy) -> ConsentState:
    state = ConsentState(policy=policy)
    state.joined("pat", Role.PATIENT)
    state.joined("hw", Role.HEALTH_WORKER)
    state.joined("dr", Role.SPECIALIST)
    state.joined("obs", Role.OBSERVER)
    return state


def test_off_by_default_and_nothing_written_without_a_request() -> None:
    state = room(ConsentPolicy.ALL)
    state.give("pat")
    assert state.state is RecordingState.OFF and state.writers() == set()


def test_all_policy_needs_everyone_present() -> None:
    state = room(ConsentPolicy.ALL)
    state.request()
    for p in ("pat", "hw", "dr"):
        state.give(p)
        assert state.state is RecordingState.AWAITING_CONSENT and state.writers() == set()
    state.give("obs")
    assert state.state is RecordingState.RECORDING
    assert state.writers() == {"pat", "hw", "dr", "obs"}


def test_all_policy_pauses_for_a_late_joiner_until_they_consent() -> None:
    state = room(ConsentPolicy.ALL)
    state.request()
    for p in ("pat", "hw", "dr", "obs"):
        state.give(p)
    state.joined("interp", Role.INTERPRETER)
    assert state.state is RecordingState.PAUSED and state.writers() == set()
    state.give("interp")
    assert state.state is RecordingState.RECORDING and "interp" in state.writers()


def test_withdrawal_stops_writing_at_once_and_resumes_on_consent() -> None:
    state = room(ConsentPolicy.ALL)
    state.request()
    for p in ("pat", "hw", "dr", "obs"):
        state.give(p)
    state.withdraw("pat")
    assert state.state is RecordingState.PAUSED and state.writers() == set()
    state.give("pat")
    assert state.writers() == {"pat", "hw", "dr", "obs"}


def test_patient_policy_observers_only_with_their_own_consent() -> None:
    state = room(ConsentPolicy.PATIENT)
    state.request()
    for p in ("pat", "hw", "dr"):
        state.give(p)
    assert state.state is RecordingState.RECORDING
    assert state.writers() == {"pat", "hw", "dr"}  # the observer is present but never written
    state.give("obs")
    assert "obs" in state.writers()
    state.withdraw("obs")
    assert state.state is RecordingState.RECORDING and "obs" not in state.writers()
    state.withdraw("dr")  # a clinician withdraws: the recording pauses for everyone
    assert state.state is RecordingState.PAUSED and state.writers() == set()


def test_leaving_forgets_consent_and_stop_clears_everything() -> None:
    state = room(ConsentPolicy.PATIENT)
    state.request()
    for p in ("pat", "hw", "dr"):
        state.give(p)
    state.left("pat")
    state.joined("pat", Role.PATIENT)  # coming back means asking again
    assert state.state is RecordingState.PAUSED
    state.stop()
    assert state.writers() == set() and not state.active
    state.give("pat")
    assert state.consented == set()
