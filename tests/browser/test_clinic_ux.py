"""The widget and the console as clinicians and patients meet them (issue 20), in real Chromium.

Each test here is one defect a clinic noticed, checked on the page as a person
would see it: the text on the screen, its language, where things are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from sfu.media import MediaKind
from sfu.participant import Role
from tests.browser.conftest import SCREENSHOTS, OpenWidget
from tests.browser.widget_helpers import WIDGET_DIR, wait_video_element
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
    # the lobby banner offers "Go to room" only while that room is on hold
    go = console.page.locator("#banner-go")
    await go.wait_for(state="visible", timeout=10000)
    await console.page.keyboard.press("2")
    await go.wait_for(state="hidden", timeout=10000)
    await console.page.keyboard.press("1")
    await go.wait_for(state="visible", timeout=10000)
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


PORTAL_LISTENER = """
window.portalEvents = [];
document.addEventListener("digiclinic-error", (e) => window.portalEvents.push(e.detail));
"""


async def test_a_portal_that_is_not_allowed_sees_why_not_a_blank_box(
    server: RunningServer, chromium: Any, loopback_only: bool
) -> None:
    """A page of an origin missing from allowed_origins embeds the web component."""
    digiclinic = str(server.server.make_url("/")).rstrip("/")
    token = server.token("ux-refused", "patient-x", Role.PATIENT)
    page_html = (
        "<!doctype html><html lang='fr'><head><meta charset='utf-8'>"
        "<script type='module' src='/listener.js'></script>"
        f"<script type='module' src='{digiclinic}/client/widget/digiclinic-consult.js'></script>"
        "</head><body>"
        f"<digiclinic-consult lang='fr' token='{token}'></digiclinic-consult></body></html>"
    )
    policy = (
        f"default-src 'none'; script-src 'self' {digiclinic}; style-src 'self' {digiclinic}; "
        f"connect-src {digiclinic}; require-trusted-types-for 'script'"
    )

    async def index(request: web.Request) -> web.Response:
        return web.Response(
            text=page_html, content_type="text/html", headers={"Content-Security-Policy": policy}
        )

    async def listener(request: web.Request) -> web.Response:
        return web.Response(text=PORTAL_LISTENER, content_type="text/javascript")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/listener.js", listener)
    portal = TestServer(app, host="127.0.0.1")
    await portal.start_server()
    context = await chromium.new_context(viewport={"width": 400, "height": 700})
    try:
        page = await context.new_page()
        await page.goto(str(portal.make_url("/")))
        box = page.locator("digiclinic-consult .dc-refused")
        await box.wait_for(timeout=10000)
        text = await box.inner_text()
        portal_origin = str(portal.make_url("/")).rstrip("/")
        assert "Cette page ne peut pas afficher la consultation" in text, text
        assert portal_origin in text and "server.allowed_origins" in text, text
        events = await page.evaluate("window.portalEvents")
        assert [e["code"] for e in events] == ["origin_not_allowed"], events
        await page.screenshot(path=str(SCREENSHOTS / "widget-origin-not-allowed.png"))
    finally:
        await context.close()
        await portal.close()
    # nothing else of the web client is served to that origin
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            server.server.make_url("/client/digiclinic-client.js"),
            headers={"Origin": portal_origin},
        ) as resp,
    ):
        assert resp.status == 403


async def test_an_iframe_the_server_refuses_is_explained_by_the_portal(
    server: RunningServer, chromium: Any, loopback_only: bool
) -> None:
    """Iframe mode from an unlisted origin: frame-ancestors blocks it; the portal says why."""
    digiclinic = str(server.server.make_url("/")).rstrip("/")
    app = web.Application()
    app.router.add_static("/portal/", WIDGET_DIR)
    portal = TestServer(app, host="127.0.0.1")
    await portal.start_server()
    context = await chromium.new_context(viewport={"width": 800, "height": 700})
    try:
        page = await context.new_page()
        token = server.token("ux-iframe-refused", "patient-y", Role.PATIENT)
        query = urlencode({"digiclinic": digiclinic, "token": token, "readyTimeout": "3000"})
        await page.goto(str(portal.make_url("/portal/portal-example.html")) + "?" + query)
        notice = page.locator("#frame-error")
        await notice.wait_for(state="visible", timeout=10000)
        assert "allowed_origins" in await notice.inner_text()
        assert await page.evaluate("window.portalEvents.events") == []
    finally:
        await context.close()
        await portal.close()


async def test_the_console_mutes_ends_and_reconnects_one_room(
    server: RunningServer, open_console: Callable[..., Any]
) -> None:
    """Mute in one room only, a dropped room comes back by itself, End closes that room only."""
    rooms = ["ux-ctl-1", "ux-ctl-2"]
    nurses = [server.client(server.token(r, "nurse", Role.HEALTH_WORKER)) for r in rooms]
    for nurse in nurses:
        await nurse.connect()
        await nurse.join()
    try:
        console = await open_console(rooms="2", prefix="ux-ctl", lang="en")
        ids = [r["participantId"] for r in await console.summary()]

        def mic_muted(index: int) -> bool:
            room = server.room(rooms[index])
            participant = next(p for p in room.participants.values() if p.role is Role.SPECIALIST)
            assert participant.publisher is not None
            return next(
                p.muted
                for p in participant.publisher.producers.values()
                if p.kind is MediaKind.AUDIO
            )

        async def eventually(check: Callable[[], bool], what: str) -> None:
            for _ in range(100):
                if check():
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"{what}\n{await console.dump()}")

        assert not mic_muted(0) and mic_muted(1)  # focused room 1, room 2 on hold
        mute = console.page.locator('.tile[data-room="0"] .room-mute')
        await mute.click()
        assert await mute.get_attribute("aria-pressed") == "true"
        await eventually(lambda: mic_muted(0), "room 1 muted")
        await console.page.keyboard.press("2")  # room 2 gets the microphone: not muted there
        await eventually(lambda: not mic_muted(1) and mic_muted(0), "room 2 live, room 1 held")
        await console.page.keyboard.press("1")  # back: still muted in room 1, as left
        await eventually(lambda: mic_muted(0) and mic_muted(1), "room 1 still muted")
        await mute.click()
        await eventually(lambda: not mic_muted(0), "room 1 unmuted")

        # room 2's connection drops: it comes back by itself, on hold as before
        await console.js("digiclinicConsole.rooms[1].session._ws.close()")
        await console.wait_for(
            "digiclinicConsole.rooms[1].state === 'reconnecting'", what="reconnecting"
        )
        await console.wait_for(
            "digiclinicConsole.summary()[1].tileState === 'on-hold'", what="back on hold"
        )
        await eventually(lambda: mic_muted(1), "room 2 held again after the reconnection")
        assert (await console.summary())[1]["participantId"] != ids[1]

        # End, confirmed, closes room 2 for everyone; room 1 goes on
        end = console.page.locator('.tile[data-room="1"] .room-end')
        await end.click()
        assert await end.inner_text() == "Confirm end"
        await end.click()
        event = await nurses[1].wait_event("room_closed")
        assert event["reason"] == "ended"
        await console.wait_for(
            "digiclinicConsole.summary()[1].tileState === 'ended'", what="room 2 ended"
        )
        assert await console.page.locator('.tile[data-room="1"] .badge').inner_text() == (
            "Consultation ended"
        )
        assert (await console.summary())[0]["state"] == "active"
        assert not mic_muted(0)
    finally:
        await asyncio.gather(*(n.leave() for n in nurses), return_exceptions=True)
