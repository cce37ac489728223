"""tests/helpers/loop_stalls.py sees the event loop held up, and only then."""

from __future__ import annotations

import asyncio
import time

from tests.helpers.loop_stalls import LoopStalls


async def test_a_blocked_loop_shows_as_a_stall_of_about_its_length() -> None:
    async with LoopStalls.watching() as stalls:
        await asyncio.sleep(0.05)
        start = time.monotonic()
        time.sleep(0.2)  # noqa: ASYNC251 (the point: the loop is held up)
        await asyncio.sleep(0.05)
        end = time.monotonic()
    assert 0.15 <= stalls.longest(start, end) <= 0.3
    assert stalls.longest(end + 1, end + 2) == 0.0


async def test_an_idle_loop_shows_no_long_stall() -> None:
    async with LoopStalls.watching() as stalls:
        start = time.monotonic()
        await asyncio.sleep(0.2)
        end = time.monotonic()
    assert stalls.longest(start, end) < 0.1
