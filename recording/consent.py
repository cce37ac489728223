"""Who may be recorded, and when: the room's consent policy as a state machine.

Policies:

- ``all`` (default): every participant present must consent. While anyone
  present has not (a late joiner, a withdrawal), nothing is written.
- ``patient``: the patient(s) and the clinicians (health workers,
  specialists) present must consent; others (interpreters, observers) are
  written only if they consented themselves.

Whoever has not consented is never written. The caller applies
``writers()`` after every change, synchronously, before acknowledging it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from sfu.participant import Role


class ConsentPolicy(enum.StrEnum):
    ALL = "all"
    PATIENT = "patient"


class RecordingState(enum.Enum):
    OFF = "off"
    AWAITING_CONSENT = "awaiting_consent"  # requested, not everyone required agreed yet
    RECORDING = "recording"
    PAUSED = "paused"  # was recording; someone required has not consented now
    STOPPED = "stopped"


REQUIRED_UNDER_PATIENT = frozenset({Role.PATIENT, Role.HEALTH_WORKER, Role.SPECIALIST})


@dataclass
class ConsentState:
    policy: ConsentPolicy = ConsentPolicy.ALL
    state: RecordingState = RecordingState.OFF
    present: dict[str, Role] = field(default_factory=dict)  # participant id -> role
    consented: set[str] = field(default_factory=set)

    # -- events ---------------------------------------------------------------------

    def request(self) -> None:
        if self.state in (RecordingState.OFF, RecordingState.STOPPED):
            self.consented.clear()
            self.state = RecordingState.AWAITING_CONSENT
            self._update()

    def joined(self, participant_id: str, role: Role) -> None:
        self.present[participant_id] = role
        self._update()

    def left(self, participant_id: str) -> None:
        self.present.pop(participant_id, None)
        self.consented.discard(participant_id)
        self._update()

    def absent(self, participant_id: str) -> None:
        """Gone for now (a dropped connection, a reload): no longer required, consent kept."""
        self.present.pop(participant_id, None)
        self._update()

    def give(self, participant_id: str) -> None:
        if participant_id in self.present and self.active:
            self.consented.add(participant_id)
            self._update()

    def withdraw(self, participant_id: str) -> None:
        self.consented.discard(participant_id)
        self._update()

    def stop(self) -> None:
        self.state = RecordingState.STOPPED
        self.consented.clear()

    # -- decisions --------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.state in (
            RecordingState.AWAITING_CONSENT,
            RecordingState.RECORDING,
            RecordingState.PAUSED,
        )

    def required(self) -> set[str]:
        if self.policy is ConsentPolicy.ALL:
            return set(self.present)
        return {p for p, role in self.present.items() if role in REQUIRED_UNDER_PATIENT}

    def writers(self) -> set[str]:
        """Participants whose media is written right now."""
        if self.state is not RecordingState.RECORDING:
            return set()
        return self.consented & set(self.present)

    def _update(self) -> None:
        if not self.active:
            return
        required = self.required()
        satisfied = bool(required) and required <= self.consented
        if satisfied:
            self.state = RecordingState.RECORDING
        elif self.state is RecordingState.RECORDING:
            self.state = RecordingState.PAUSED
