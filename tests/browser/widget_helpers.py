"""Helpers for the widget's browser tests: a consult between two widgets, decoding checks.

``WidgetPage`` and the ``open_widget`` fixture are in conftest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sfu.participant import Role
from tests.browser.conftest import OpenWidget, WidgetPage

ROOT = Path(__file__).resolve().parents[2]
WIDGET_DIR = ROOT / "web-client" / "widget"


def pick(
    stats: list[dict[str, Any]], participant_id: str, source: str, kind: str
) -> dict[str, Any] | None:
    return next(
        (
            s
            for s in stats
            if s["participantId"] == participant_id and s["source"] == source and s["kind"] == kind
        ),
        None,
    )


async def inbound_of(
    page: WidgetPage, participant_id: str, source: str = "camera", kind: str = "video"
) -> dict[str, Any]:
    stats = pick(await page.inbound(), participant_id, source, kind)
    assert stats is not None, await page.dump()
    return stats


async def wait_decoding(
    page: WidgetPage,
    participant_id: str,
    source: str = "camera",
    kind: str = "video",
    frames: int = 6,
    since: int = 0,
) -> dict[str, Any]:
    """``page`` decodes that participant's track (``frames`` more than ``since``), and keeps on."""
    loop = asyncio.get_running_loop()

    async def until(ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = loop.time() + 25
        last = None
        while loop.time() < deadline:
            last = pick(await page.inbound(), participant_id, source, kind)
            if last is not None and ok(last):
                return last
            await asyncio.sleep(0.25)
        raise AssertionError(
            f"{page.name}: {source} of {participant_id} not decoded: {last}\n{await page.dump()}"
        )

    if kind == "audio":
        first = await until(lambda s: s["packetsReceived"] >= 25)
        return await until(lambda s: s["totalSamplesReceived"] > first["totalSamplesReceived"])
    first = await until(lambda s: s["framesDecoded"] >= since + frames)
    later = await until(lambda s: s["framesDecoded"] >= first["framesDecoded"] + frames)
    assert later["frameWidth"] > 0, later
    return later


async def wait_video_element(page: WidgetPage, participant_id: str, kind: str = "camera") -> int:
    """A <video> of that participant's tile (or the spotlight) plays: videoWidth > 0."""
    width: int = await page.wait_for(
        f"""() => {{
            const root = widgetTest.element.shadowRoot;
            const v = [...root.querySelectorAll('.dc-tile[data-participant="{participant_id}"]'
                                                + '[data-kind="{kind}"] video')]
                      .find(v => v.videoWidth > 0 && v.currentTime > 0.2);
            return v ? v.videoWidth : 0;
        }}""",
        what=f"a playing {kind} video of {participant_id}",
    )
    return width


async def start_consult(
    open_widget: OpenWidget, room: str, *, patient_skip: bool = True
) -> tuple[WidgetPage, WidgetPage, str, str]:
    """A specialist's widget admits a patient's widget (through the Admit button)."""
    doctor = await open_widget(room, "dr-okafor", Role.SPECIALIST, name="Dr. Okafor")
    await doctor.wait_screen("call")
    doctor_id = await doctor.participant_id()
    patient = await open_widget(
        room, "patient-amina", Role.PATIENT, name="Amina Uwase", skip=patient_skip
    )
    if not patient_skip:
        return doctor, patient, doctor_id, ""
    await admit_through_button(doctor, patient)
    return doctor, patient, doctor_id, await patient.participant_id()


async def admit_through_button(doctor: WidgetPage, patient: WidgetPage) -> None:
    await patient.wait_screen("lobby")
    lobby_text = await patient.shadow(".dc-lobby").inner_text()
    assert "Please wait" in lobby_text, lobby_text
    admit = doctor.shadow('button[aria-label="Admit Amina Uwase"]')
    await admit.wait_for(timeout=15000)
    await admit.click()
    await patient.wait_screen("call")
