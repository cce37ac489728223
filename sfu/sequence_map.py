"""Renumbering with holes closed: sequence numbers and VP8 picture ids.

When a Consumer drops packets on purpose (a VP8 temporal layer it does not
forward), the numbers it sends must stay contiguous, or the subscriber NACKs
packets that will never come and waits for pictures that were never meant
for it. A ``NumberMap`` keeps the offsets in force from each point on, so a
late (reordered or retransmitted) packet still gets the number it would
have had.
"""

from __future__ import annotations

from collections import deque

HISTORY = 128
"""Offset changes remembered; older input numbers are treated as too old."""


class NumberMap:
    """Input numbers are unwrapped against the highest seen, so a long run without
    drops never reads as old (the same idea as ReceiveStream's extended numbers)."""

    __slots__ = ("_changes", "_half", "_highest", "_mod")

    def __init__(self, modulus: int) -> None:
        self._mod = modulus
        self._half = modulus >> 1
        # (first extended input number the offset applies to, offset), oldest first
        self._changes: deque[tuple[int, int]] = deque(maxlen=HISTORY)
        self._highest = 0  # extended

    def _extend(self, number: int) -> int:
        d = (number - self._highest) % self._mod
        if d >= self._half:
            d -= self._mod
        return self._highest + d

    @property
    def started(self) -> bool:
        return bool(self._changes)

    def reset(self, first_in: int, first_out: int) -> None:
        """Input ``first_in`` is sent as ``first_out``; nothing older is mapped."""
        self._changes.clear()
        self._highest = first_in
        self._changes.append((first_in, (first_out - first_in) % self._mod))

    def map(self, number: int) -> int | None:
        """The output number for an input one, or None if it is too old to send."""
        changes = self._changes
        if not changes:
            return None
        ext = self._extend(number)
        self._highest = max(self._highest, ext)
        for first, offset in reversed(changes):
            if ext >= first:
                return (number + offset) % self._mod
        return None

    def drop(self, number: int) -> None:
        """``number`` is not sent: later numbers close the hole.

        Only a drop at the head of the stream can be closed; a late packet
        being dropped leaves its number unused.
        """
        changes = self._changes
        if not changes:
            return
        ext = self._extend(number)
        if ext <= self._highest:
            return
        self._highest = ext
        first, offset = changes[-1]
        new = (ext + 1, (offset - 1) % self._mod)
        if ext == first:
            changes[-1] = new  # consecutive drops: one entry
        else:
            changes.append(new)
