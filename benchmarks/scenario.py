"""Scenarios: YAML files in benchmarks/scenarios/, turned into participant plans."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
KINDS = ("fanout", "consult_grid", "specialist", "churn", "soak")


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class ParticipantSpec:
    """One participant of one step: where, what it publishes, when it comes and goes."""

    key: str  # unique in the step: identity@room
    room: str
    identity: str
    role: str
    publish_video: bool
    publish_audio: bool
    subscribe: bool
    join_at: float  # seconds after the step starts
    leave_at: float | None = None
    reconnect_at: float | None = None  # drop the connection without leaving, then rejoin


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str
    description: str
    sizes: list[int]
    duration: float
    ramp: float
    settle: float
    video_bitrate: int
    audio: bool = True
    participants_per_room: int = 3
    stay: float = 6.0
    gap: float = 1.0
    baseline_sizes: list[int] = field(default_factory=list)
    # soak only (benchmarks/soak.py): every n-th arrival also publishes / drops and rejoins
    publish_every: int = 0
    reconnect_every: int = 0
    sample_every: float = 10.0  # seconds between samples of the server
    warmup: float = 60.0  # seconds of samples left out of the slope

    @classmethod
    def load(cls, name_or_path: str) -> Scenario:
        path = Path(name_or_path)
        if not path.suffix:
            path = SCENARIO_DIR / f"{name_or_path}.yaml"
        try:
            data: dict[str, Any] = yaml.safe_load(path.read_text())
        except OSError:
            known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
            raise ScenarioError(f"no scenario {name_or_path!r} (known: {known})") from None
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ScenarioError(f"{path.name}: unknown key(s) {', '.join(sorted(unknown))}")
        scenario = cls(**data)
        if scenario.kind not in KINDS:
            raise ScenarioError(f"{path.name}: kind must be one of {', '.join(KINDS)}")
        if not scenario.sizes or min(scenario.sizes) < 1 or scenario.ramp <= 0:
            raise ScenarioError(f"{path.name}: sizes must be positive and ramp > 0")
        return scenario

    def plan(self, size: int) -> list[ParticipantSpec]:
        """Every participant of one step, with join times spread by the ramp."""
        build = {
            "fanout": self._fanout,
            "consult_grid": self._grid,
            "specialist": self._specialist,
            "churn": self._churn,
            "soak": self._soak,
        }[self.kind]
        specs = build(size)
        return sorted(specs, key=lambda s: s.join_at)

    def ramp_end(self, specs: list[ParticipantSpec]) -> float:
        return max(s.join_at for s in specs)

    def step_length(self, specs: list[ParticipantSpec]) -> float:
        return self.ramp_end(specs) + self.settle + self.duration

    def _at(self, i: int) -> float:
        return i / self.ramp

    def _fanout(self, n: int) -> list[ParticipantSpec]:
        room = f"{self.name}-{n}"
        specs = [self._spec(room, "publisher", "specialist", True, False, 0.0)]
        specs += [
            self._spec(room, f"sub{i}", "observer", False, True, self._at(i + 1)) for i in range(n)
        ]
        return specs

    def _grid(self, rooms: int) -> list[ParticipantSpec]:
        roles = ["specialist", "health_worker", "interpreter", "observer"]
        specs = []
        for r in range(rooms):
            for p in range(self.participants_per_room):
                i = r * self.participants_per_room + p
                role = roles[p % len(roles)]
                specs.append(self._spec(f"grid-{r}", f"p{p}", role, True, True, self._at(i)))
        return specs

    def _specialist(self, rooms: int) -> list[ParticipantSpec]:
        specs = []
        for r in range(rooms):
            room = f"clinic-{r}"
            base = r * 3
            specs.append(
                self._spec(room, "health-worker", "health_worker", True, True, self._at(base))
            )
            specs.append(
                self._spec(room, "patient-side", "interpreter", True, True, self._at(base + 1))
            )
            # the specialist publishes only in the focused room
            specs.append(
                self._spec(room, "specialist", "specialist", r == 0, True, self._at(base + 2))
            )
        return specs

    def _churn(self, rooms: int) -> list[ParticipantSpec]:
        return self._turnover(rooms, "churn", anchor_subscribes=False)

    def _soak(self, rooms: int) -> list[ParticipantSpec]:
        return self._turnover(rooms, "soak", anchor_subscribes=True)

    def _turnover(self, rooms: int, prefix: str, anchor_subscribes: bool) -> list[ParticipantSpec]:
        """One steady publisher per room; the other seats turn over (stay, leave, gap).

        Every ``publish_every``-th arrival also publishes, and every
        ``reconnect_every``-th drops its connection halfway through its stay
        and rejoins (0: none).
        """
        specs = []
        seats = self.participants_per_room - 1
        horizon = rooms * self.participants_per_room / self.ramp + self.settle + self.duration
        arrival = 0
        for r in range(rooms):
            room = f"{prefix}-{r}"
            specs.append(
                self._spec(room, "anchor", "specialist", True, anchor_subscribes, self._at(r))
            )
            for seat in range(seats):
                t = self._at(rooms + r * seats + seat)
                turn = 0
                while t < horizon:
                    arrival += 1
                    publish = bool(self.publish_every) and arrival % self.publish_every == 0
                    role = "health_worker" if publish else "observer"
                    spec = self._spec(
                        room, f"s{seat}-{turn}", role, publish, True, t, t + self.stay
                    )
                    if self.reconnect_every and (arrival - 1) % self.reconnect_every == 0:
                        spec = replace(spec, reconnect_at=round(t + self.stay / 2, 3))
                    specs.append(spec)
                    t += self.stay + self.gap
                    turn += 1
        return specs

    def _spec(
        self,
        room: str,
        identity: str,
        role: str,
        publish: bool,
        subscribe: bool,
        join_at: float,
        leave_at: float | None = None,
    ) -> ParticipantSpec:
        return ParticipantSpec(
            key=f"{identity}@{room}",
            room=room,
            identity=identity,
            role=role,
            publish_video=publish,
            publish_audio=publish and self.audio,
            subscribe=subscribe,
            join_at=round(join_at, 3),
            leave_at=leave_at,
        )
