"""How long this process's event loop was held up: the harness's own delays.

In the in-process tests the server, the impairment relay and the aiortc
subscriber share one event loop. When the loop is held up (a garbage
collection on a large heap, the replaying publisher, a busy CI machine),
every arrival is recorded that much late, and a gap between two audio
packets measured there grows by the same amount although the link carried
them on time. ``LoopStalls`` samples the loop every few milliseconds so a
test can tell the link's gaps from its own:

    async with LoopStalls.watching() as stalls:
        ...
        gap = audio.max_gap(start, end) - stalls.longest(start, end)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

INTERVAL = 0.005  # s between samples: a stall shorter than this is not seen


@dataclass
class LoopStalls:
    """(when the loop woke, how late it woke) for every sample that was late."""

    late: list[tuple[float, float]] = field(default_factory=list)

    @classmethod
    @contextlib.asynccontextmanager
    async def watching(cls) -> AsyncIterator[LoopStalls]:
        stalls = cls()
        task = asyncio.get_running_loop().create_task(stalls._run())
        try:
            yield stalls
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(INTERVAL)
            woke = time.monotonic()
            lateness = woke - before - INTERVAL
            if lateness > INTERVAL:
                self.late.append((woke, lateness))

    def longest(self, start: float, end: float) -> float:
        """The longest stall that overlapped ``[start, end]`` (s; 0 if none was seen)."""
        return max(
            (late for woke, late in self.late if woke >= start and woke - late <= end),
            default=0.0,
        )
