"""Who joined and who left, told to everyone else: one by one in a consult, in batches when large.

Every arrival used to be announced to every participant at once
(``participant_joined``): a room's join cost grew with the square of its
size, and a storm of 200 observers joining a teaching session (a node
failure or a 9 o'clock clinic start produces one) sent 20,000 messages.

- While the room has fewer than ``batch_from`` active participants and
  nothing is pending, an arrival or departure is announced at once, as
  before (``participant_joined`` / ``participant_left``): a consult of a
  few people sees no change and no delay.
- From that size on, arrivals and departures are gathered for ``window``
  seconds and announced together in one ``participants_changed``
  (``joined``: participant infos; ``left``: ``{participant_id, reason}``),
  encoded once for everyone. Someone who joined and left within the window
  is not announced at all. A recipient applies ``joined`` before ``left``
  and skips its own entry; an entry it already knows (it was in the roster
  it joined with) is simply taken again.
- Anything else the room broadcasts first sends what is pending, so no
  event about a participant ever arrives before that participant's
  arrival.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sfu.participant import Participant

BATCH_FROM = 10  # active participants from which arrivals are announced in batches
WINDOW = 0.25  # seconds an arrival may wait to be announced with others

Broadcast = Callable[[dict[str, object], "Participant | None"], None]


class Announcements:
    """Arrivals and departures of one room, on their way to everyone else."""

    __slots__ = ("_batch_from", "_broadcast", "_closed", "_joined", "_left", "_timer", "_window")

    def __init__(
        self, broadcast: Broadcast, batch_from: int = BATCH_FROM, window: float = WINDOW
    ) -> None:
        self._broadcast = broadcast  # to every active participant (but the one given)
        self._batch_from = batch_from
        self._window = window
        self._joined: dict[str, Participant] = {}  # by id, in order of arrival
        self._left: list[dict[str, object]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False  # the room closed: everyone is told that instead

    @property
    def pending(self) -> bool:
        return bool(self._joined or self._left)

    def joined(self, participant: Participant, active: int) -> None:
        """``participant`` became active; ``active``: the room's active participants now."""
        if self._closed:
            return
        if not self.pending and active < self._batch_from:
            self._broadcast(
                {"type": "participant_joined", "participant": participant.info()}, participant
            )
            return
        self._joined[participant.id] = participant
        self._schedule()

    def left(self, participant_id: str, reason: str, active: int) -> None:
        """An active participant left; ``active``: the room's active participants now."""
        if self._closed:
            return
        if self._joined.pop(participant_id, None) is not None:
            return  # never announced: nobody needs to hear it left
        if not self.pending and active < self._batch_from:
            self._broadcast(
                {"type": "participant_left", "participant_id": participant_id, "reason": reason},
                None,
            )
            return
        self._left.append({"participant_id": participant_id, "reason": reason})
        self._schedule()

    def flush(self) -> None:
        """Announce what is pending now (before any other broadcast, and when the window ends)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.pending:
            return
        joined = [p.info() for p in self._joined.values()]
        left, self._left = self._left, []
        self._joined = {}
        self._broadcast({"type": "participants_changed", "joined": joined, "left": left}, None)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._joined.clear()
        self._left.clear()

    def _schedule(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self.flush)
