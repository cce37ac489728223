"""Share one subscriber's bandwidth between the video tracks it receives.

Pure functions, no I/O: the controller (sfu/downlink.py) prices each track's
options from its Producer's measured layer rates and applies the result.

Audio is never allocated: it is reserved off the top. Then video, in two
passes by priority (pinned tile, active speaker, screen share, the rest):
first every track gets its cheapest option if it fits, so one large tile
cannot starve the others to a pause; then each track, again by priority, is
raised to the best option the remaining budget pays for. A track whose
cheapest option does not fit is paused.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

PRIORITY_PINNED = 0
PRIORITY_SPEAKER = 1
PRIORITY_SCREEN = 2
PRIORITY_OTHER = 3


@dataclass(frozen=True, slots=True)
class Option:
    spatial: int
    temporal: int
    price: float  # bit/s


@dataclass(slots=True)
class Demand:
    key: Hashable
    priority: int
    options: Sequence[Option]  # cheapest first; empty: nothing to send


@dataclass(slots=True)
class Allocation:
    choice: dict[Hashable, int | None] = field(default_factory=dict)  # option index, None: paused
    total: float = 0.0  # bit/s of video allocated
    wanted: float = 0.0  # bit/s of video if every track had its best option


def allocate(budget: float, demands: Sequence[Demand]) -> Allocation:
    result = Allocation()
    ordered = sorted(demands, key=lambda d: d.priority)
    left = budget
    for demand in ordered:
        if demand.options:
            result.wanted += demand.options[-1].price
        if demand.options and demand.options[0].price <= left:
            result.choice[demand.key] = 0
            left -= demand.options[0].price
        else:
            result.choice[demand.key] = None
    for demand in ordered:
        index = result.choice[demand.key]
        if index is None:
            continue
        base = demand.options[index].price
        best = index
        for i in range(len(demand.options) - 1, index, -1):
            if demand.options[i].price - base <= left:
                best = i
                break
        left -= demand.options[best].price - base
        result.choice[demand.key] = best
    result.total = budget - left
    return result


def with_hysteresis(
    current: int | None, cautious: int | None, eager: int | None, may_raise: bool
) -> int | None:
    """Keep the current option unless it no longer fits or a better one fits well.

    ``cautious`` was allocated from a reduced budget (what fits with headroom),
    ``eager`` from the full one (what must not be exceeded).
    """
    if current is None:
        # resuming a paused track: its lowest option fitting is enough; a
        # picture back is worth more than headroom
        if not may_raise:
            return None
        return cautious if cautious is not None else (0 if eager is not None else None)
    if eager is None or eager < current:
        return eager  # too expensive now: step down at once
    if may_raise and cautious is not None and cautious > current:
        return cautious
    return current
