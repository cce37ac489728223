"""Every main screen at a phone's, a tablet's, a laptop's and a desktop's width, in en/fr/rw.

Pre-call check, lobby, a call with 2 and with 4 tiles, the chat, and the
console with 3 and with 10 rooms. On each, at 400, 768, 1024 and 1440 px:
no text cut or overflowing its box, no overlapping controls, nothing off the
window (tests/browser/layout_check.js, from the DOM), and no serious or
critical axe-core violation. Screenshots: artifacts/screenshots/layout/.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from sfu.media import Source
from sfu.participant import Role
from signaling.client import ConsultClient
from signaling.demo_media import CameraTrack, ToneTrack
from tests.browser.conftest import OpenWidget, WidgetPage
from tests.browser.layout import check_widths
from tests.browser.widget_helpers import wait_video_element
from tests.conftest import RunningServer

ADMIT = 'button[data-action="admit"]'
SELF_AND_DOCTOR_AREAS = """() => {
    const root = widgetTest.element.shadowRoot;
    const area = (el) => { const r = el.getBoundingClientRect(); return r.width * r.height; };
    const tile = (who) => root.querySelector(`.dc-tile[data-kind="camera"]${who}`);
    return {self: area(tile('[data-participant="self"]')),
            doctor: area(tile(':not([data-participant="self"])'))};
}"""


async def guest(server: RunningServer, room: str, identity: str, role: Role) -> ConsultClient:
    """An aiortc participant publishing a test pattern and a tone (a tile with video)."""
    client = server.client(server.token(room, identity, role, name=identity.title()))
    await client.connect()
    await client.join()
    await client.publish([(ToneTrack(), Source.MICROPHONE), (CameraTrack(320, 240), Source.CAMERA)])
    return client


async def shown_tiles(page: WidgetPage) -> int:
    count: int = await page.js(
        "widgetTest.element.shadowRoot.querySelectorAll('.dc-tile[data-kind=camera]').length"
    )
    return count


@pytest.mark.parametrize("lang", ["en", "fr", "rw"])
async def test_every_screen_at_every_width(
    server: RunningServer,
    open_widget: OpenWidget,
    open_console: Callable[..., Any],
    lang: str,
) -> None:
    found: dict[str, list[str]] = {}
    room = f"layout-{lang}"
    guests: list[ConsultClient] = []
    try:
        doctor = await open_widget(room, "dr-okafor", Role.SPECIALIST, name="Dr. Okafor", lang=lang)
        await doctor.wait_screen("call")
        patient = await open_widget(
            room, "patient", Role.PATIENT, name="Amina Uwase", skip=False, lang=lang
        )
        await patient.wait_screen("precall")
        await patient.wait_for("widgetTest.element.precallResults?.verdict", what="verdict")
        await check_widths(patient.page, f"precall-{lang}", found)

        await patient.shadow('button[data-action="join"]').click()
        await patient.wait_screen("lobby")
        await check_widths(patient.page, f"lobby-{lang}", found)

        await doctor.shadow(ADMIT).click()
        await patient.wait_screen("call")
        doctor_id = await doctor.participant_id()
        await wait_video_element(patient, doctor_id)
        assert await shown_tiles(patient) == 2
        await check_widths(patient.page, f"call-2-tiles-{lang}", found)
        # the doctor's video is what the patient came for: our own picture is small
        for width, height in ((400, 844), (1440, 900)):
            await patient.page.set_viewport_size({"width": width, "height": height})
            areas = await patient.js(SELF_AND_DOCTOR_AREAS)
            assert areas["self"] <= 0.25 * areas["doctor"], (width, areas)
        if lang == "rw":  # Kinyarwanda, not the French "ecran"
            share = await patient.shadow('button[data-action="share"]').text_content()
            assert share == "Sangiza mugaragaza", share

        # the chat: a message each way, times in the UI language
        await doctor.shadow('button[data-action="chat"]').click()
        await doctor.shadow(".dc-chat-input").fill("Bonjour / Muraho / Hello")
        await doctor.shadow('button[data-action="send"]').click()

        async def open_chat() -> None:
            if not await patient.js("widgetTest.element.call.chatOpen"):
                await patient.shadow('button[data-action="chat"]').click()

        await open_chat()
        await patient.wait_for(
            "widgetTest.element.shadowRoot.querySelectorAll('.dc-msg').length >= 1",
            what="chat message",
        )
        clock = await patient.shadow(".dc-msg time").first.inner_text()
        if lang == "en":
            assert re.fullmatch(r"\d\d:\d\d [AP]M", clock), clock
        else:  # 24-hour clock, whatever the browser's own locale
            assert re.fullmatch(r"\d\d:\d\d", clock), clock
        await check_widths(patient.page, f"chat-{lang}", found, before=open_chat)
        await patient.shadow('button[data-action="chat"]').click()  # closed again

        guests += await asyncio.gather(
            guest(server, room, "nurse-ines", Role.HEALTH_WORKER),
            guest(server, room, "interpreter-jean", Role.INTERPRETER),
        )
        await patient.wait_for(
            "widgetTest.element.shadowRoot.querySelectorAll('.dc-tile[data-kind=camera] video')"
            ".length >= 4",
            what="4 tiles with video",
        )
        await check_widths(patient.page, f"call-4-tiles-{lang}", found)

        for count in (3, 10):
            console = await open_console(rooms=str(count), prefix=f"layout-{lang}-c", lang=lang)
            if count == 3:  # a patient waiting in room 2: the lobby list and the banner
                await open_widget(
                    f"layout-{lang}-c-2", "patient-2", Role.PATIENT, name="Uwase", lang=lang
                )
                await console.wait_for(
                    "digiclinicConsole.summary()[1].tileState === 'waiting'", what="waiting"
                )
            await check_widths(console.page, f"console-{count}-rooms-{lang}", found)
            await console.page.context.close()
    finally:
        await asyncio.gather(*(g.leave() for g in guests), return_exceptions=True)
    assert not found, json.dumps(found, indent=1, ensure_ascii=False)
