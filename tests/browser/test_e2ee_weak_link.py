"""An end-to-end encrypted consult over a capped link, in real Chromium at both ends.

The SFU adapts on the clear bytes alone (docs/e2ee.md): when the patient's
link drops to 60 kbit/s both ways, the specialist's video to the patient is
paused for bandwidth, and when the link comes back it resumes (at a key frame
the SFU finds in encrypted frames); packets lost at the cap are NACKed and
resent. Every frame on both sides decrypts: the pause, the resume and the
retransmissions never hand a page a frame it cannot open.

One run, about a minute (benchmarks/browser_link.py; marked slow).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from benchmarks.browser_link import BrowserConsult, Phase
from e2ee.frames import encode_key
from tests.helpers.chromium_netns import skip_unless_browser_rig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COUNTS_JS = "() => widgetTest.element.session.e2ee.counts()"


def video_rows(consult: BrowserConsult, side: str) -> list[tuple[float, dict[str, Any]]]:
    return [
        (s.t, s.data["video"]) for s in consult.samples if s.side == side and s.data.get("video")
    ]


def test_a_bandwidth_pause_and_resume_in_an_encrypted_consult() -> None:
    skip_unless_browser_rig()
    asyncio.run(_run())


async def _run() -> None:
    key = encode_key(9, os.urandom(32))
    async with BrowserConsult(room="e2ee-weak", e2ee_key=key) as consult:
        await consult.start()
        assert consult.clinic is not None and consult.patient is not None
        cap_at, lift_at, end = 8.0, 30.0, 60.0
        await consult.record(end, [Phase(cap_at, 60_000), Phase(lift_at, None)])
        patient = video_rows(consult, "patient")
        paused = [
            (round(t, 1), m.get("paused"))
            for t, m in consult.patient.messages
            if m.get("type") == "track_paused" and m.get("reason") == "bandwidth"
        ]
        counts = {
            side.name: await side.page.evaluate(COUNTS_JS)
            for side in (consult.clinic, consult.patient)
        }
        print("pauses (t, paused):", paused)
        print("patient video:", [(round(t), v["framesDecoded"], v["width"]) for t, v in patient])
        print("e2ee counts:", counts)
        # paused while capped, resumed after the lift
        assert any(p for t, p in paused if t >= cap_at - 1), paused
        assert any(not p for t, p in paused if t >= lift_at), paused
        before = max(v["framesDecoded"] for t, v in patient if t <= lift_at)
        after = [v for t, v in patient if t >= end - 5]
        assert after and after[-1]["framesDecoded"] > before + 20, (before, after)
        assert after[-1]["width"] > 0
        # packets lost at the cap were asked for again (NACK) and resent by the SFU as
        # they were: the frames they completed decrypted like any other
        nacks = max(v["nacks"] for _, v in patient)
        print("patient NACKs sent:", nacks)
        assert nacks > 0
        # and nothing failed to decrypt on either side, paused or not
        for side, seen in counts.items():
            assert seen["dropped"] == 0 and seen["decrypted"] > 500, (side, seen)
