"""The widget and the console as clinicians and patients meet them (issue 20), in real Chromium.

Each test here is one defect a clinic noticed, checked on the page as a person
would see it: the text on the screen, its language, where things are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sfu.participant import Role
from tests.browser.conftest import SCREENSHOTS, OpenWidget
from tests.browser.widget_helpers import wait_video_element
from tests.conftest import RunningServer


async def test_a_patient_admitted_into_a_room_on_hold_is_told_the_specialist_will_come(
    server: RunningServer, open_console: Callable[..., Any], open_widget: OpenWidget
) -> None:
    """Not "camera off" and a muted microphone: the specialist is busy elsewhere, and comes back."""
    console = await open_console(rooms="2", prefix="ux-hold", lang="en", name="Dr. Okafor")
    summary = await console.summary()
    assert [r["tileState"] for r in summary] == ["in-call", "on-hold"], await console.dump()
    patient = await open_widget("ux-hold-2", "patient-amina", Role.PATIENT, name="Amina Uwase")
    await patient.wait_screen("lobby")
    admit = console.page.locator('button[aria-label="Admit Amina Uwase to ux-hold-2"]')
    await admit.first.click()
    await patient.wait_screen("call")

    notice = patient.shadow(".dc-on-hold")
    await notice.wait_for(state="visible", timeout=15000)
    text = await notice.inner_text()
    assert "will be with you shortly" in text, text
    doctor_tile = patient.shadow('.dc-tile[data-kind="camera"]:not([data-participant="self"])')
    tile_text = await doctor_tile.inner_text()
    assert "On hold" in tile_text and "Camera off" not in tile_text, tile_text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await patient.screenshot("widget-patient-specialist-on-hold.png")

    # the specialist switches to this room: the notice goes, the doctor's video plays
    await console.page.keyboard.press("2")
    await notice.wait_for(state="hidden", timeout=15000)
    doctor_id = summary[1]["participantId"]
    assert await wait_video_element(patient, doctor_id) > 0
    assert "On hold" not in await doctor_tile.inner_text()
    # and back: on hold again
    await console.page.keyboard.press("1")
    await notice.wait_for(state="visible", timeout=15000)
