"""The embeddable consult widget (web-client/widget/) in real Chromium pages: the call.

Page: web-client/widget/example.html (a portal page with a strict meta CSP
hosting ``<digiclinic-consult>``). Media: Chromium's fake camera, microphone
and screen. Pre-call check, lobby and admission, media both ways, screen
share, chat, audio-only mode, reconnection (and the heartbeat: a late pong
is not a lost connection while the server keeps talking; silence is, once
it has lasted ~3 heartbeats while media still flows).
"""

from __future__ import annotations

import asyncio
from typing import Any

from signaling.app import SESSIONS
from tests.browser.conftest import OpenWidget, WidgetPage
from tests.browser.widget_helpers import (
    admit_through_button,
    inbound_of,
    start_consult,
    wait_decoding,
    wait_video_element,
)
from tests.conftest import RunningServer


async def test_patient_and_specialist_widgets_see_and_hear_each_other(
    server: RunningServer, open_widget: OpenWidget
) -> None:
    room = "widget-consult"
    doctor, patient, doctor_id, _ = await start_consult(open_widget, room, patient_skip=False)

    # the patient's pre-call check: preview, mic level, server RTT, ICE, throughput, verdict
    await patient.wait_screen("precall")
    verdict = patient.shadow(".dc-verdict")
    await patient.wait_for(
        "widgetTest.element.precallResults?.verdict", timeout=15, what="pre-call verdict"
    )
    results = await patient.js("widgetTest.element.precallResults")
    assert results["verdict"] == "video", results
    assert results["camera"] and results["microphone"], results
    assert 0 <= results["rttMs"] < 600, results
    assert results["kbps"] > 300, results
    assert results["ice"]["host"] > 0, results  # loopback: a direct path
    assert "Video OK" in await verdict.inner_text()
    assert (
        "Direct connection possible" in await patient.shadow('[data-check="network"]').inner_text()
    )
    await patient.wait_for(
        "widgetTest.element.precallResults.micLevel > 0.2", what="the mic meter moves"
    )
    await patient.wait_for(
        """widgetTest.element.shadowRoot.querySelector('.dc-preview-video').videoWidth > 0""",
        what="camera preview",
    )
    print("pre-call results:", results)
    await patient.screenshot("widget-patient-precall.png")
    await patient.shadow('button[data-action="join"]').click()
    await patient.wait_screen("lobby")
    await doctor.shadow('button[aria-label="Admit Amina Uwase"]').wait_for(timeout=15000)
    await patient.screenshot("widget-patient-lobby.png")
    await doctor.screenshot("widget-specialist-waiting-room.png")
    await admit_through_button(doctor, patient)
    patient_id = await patient.participant_id()

    for page, other in ((doctor, patient_id), (patient, doctor_id)):
        video = await wait_decoding(page, other)
        audio = await wait_decoding(page, other, source="microphone", kind="audio")
        width = await wait_video_element(page, other)
        print(f"{page.name} decodes {other}: {video}; audio {audio}; <video> {width}px wide")

    # tiles carry the name and the role; the quality indicator gets a level
    doctor_tiles = await doctor.shadow(".dc-tiles").inner_text()
    assert "Amina Uwase" in doctor_tiles and "Patient" in doctor_tiles, doctor_tiles
    patient_tiles = await patient.shadow(".dc-tiles").inner_text()
    assert "Dr. Okafor" in patient_tiles and "Specialist" in patient_tiles, patient_tiles
    await doctor.wait_for(
        f"""widgetTest.element.shadowRoot.querySelector(
              '.dc-tile[data-participant="{patient_id}"] .dc-quality')?.dataset.level === 'good'""",
        what="quality indicator",
    )
    # every control is a real, labelled button
    labels = await doctor.js(
        """[...widgetTest.element.shadowRoot.querySelectorAll('.dc-controls button')]
             .map(b => b.getAttribute('aria-label'))"""
    )
    assert labels == [
        "Mute your microphone",
        "Turn your camera off",
        "Share screen with the others",
        "Audio only: pause all video to save bandwidth",
        "Show the chat",
        "Ask for a photo or a short clip from the patient's side",  # the capture grant
        "Record",  # the specialist has the record grant
        "Leave the consultation",
    ], labels

    # Chromium's fake microphone beeps: the speaker's tile gets outlined
    await doctor.wait_for(
        f"""!!widgetTest.element.shadowRoot.querySelector(
              '.dc-tile.dc-speaking[data-participant="{patient_id}"]')""",
        what="active speaker highlight",
    )
    # the patient mutes: the doctor's tile shows it, the server knows it
    await patient.shadow('button[data-action="mic"]').click()
    await doctor.wait_for(
        f"""!!widgetTest.element.shadowRoot.querySelector(
              '.dc-tile[data-participant="{patient_id}"] .dc-mic-off')""",
        what="mic-off on the patient's tile",
    )

    for page in (doctor, patient):
        assert await page.violations() == []
        assert await page.errors() == []
    await patient.screenshot("widget-patient.png")
    await doctor.screenshot("widget-specialist.png")


async def test_screen_share_is_decoded_and_shown_large(
    server: RunningServer, open_widget: OpenWidget
) -> None:
    doctor, patient, doctor_id, _ = await start_consult(open_widget, "widget-screen")
    await wait_decoding(patient, doctor_id)
    await doctor.shadow('button[data-action="share"]').click()  # a user gesture
    await doctor.wait_for(
        "widgetTest.element.call.share?.trackIds.length === 1", what="screen share published"
    )
    stats = await wait_decoding(patient, doctor_id, source="screen_share")
    width = await wait_video_element(patient, doctor_id, kind="screen")
    assert width >= 640, width  # Chromium's fake screen: the page's viewport size
    # the spotlight is large: wider and taller than any camera tile
    sizes = await patient.js(
        """() => {
            const root = widgetTest.element.shadowRoot;
            const box = el => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
            return {screen: box(root.querySelector('.dc-spotlight .dc-tile')),
                    tiles: [...root.querySelectorAll('.dc-tiles .dc-tile')].map(box)};
        }"""
    )
    screen_w, screen_h = sizes["screen"]
    assert all(screen_w > 2 * w and screen_h > 2 * h for w, h in sizes["tiles"]), sizes
    assert "Screen of Dr. Okafor" in await patient.shadow(".dc-spotlight").inner_text()
    print(f"screen share decoded: {stats}, shown at {sizes}")
    await patient.screenshot("widget-patient-screen-share.png")

    # stopping the share removes the spotlight everywhere
    await doctor.shadow('button[data-action="share"]').click()
    await patient.wait_for(
        "!widgetTest.element.shadowRoot.querySelector('.dc-spotlight .dc-tile')",
        what="spotlight gone",
    )
    for page in (doctor, patient):
        assert await page.violations() == []
        assert await page.errors() == []


async def test_chat_message_appears_on_the_other_side(
    server: RunningServer, open_widget: OpenWidget
) -> None:
    doctor, patient, doctor_id, patient_id = await start_consult(open_widget, "widget-chat")
    await patient.shadow('button[data-action="chat"]').click()
    chat_input = patient.shadow(".dc-chat-input")
    assert await chat_input.evaluate("el => el.getRootNode().activeElement === el")  # focused
    await chat_input.fill("Bonjour docteur, <b>ma fille</b> a de la fièvre")
    await chat_input.press("Enter")
    # the doctor's chat is closed: an unread badge, then the message once opened
    await doctor.shadow('button[data-action="chat"] .dc-badge').wait_for(timeout=10000)
    await doctor.shadow('button[data-action="chat"]').click()
    message = doctor.shadow(".dc-chat-log .dc-msg").first
    await message.wait_for(timeout=10000)
    text = await message.inner_text()
    assert "Amina Uwase" in text and "Bonjour docteur, <b>ma fille</b> a de la fièvre" in text, text
    assert await doctor.shadow(".dc-chat-log b").count() == 0  # shown as text, never as HTML
    mine = await patient.shadow(".dc-chat-log .dc-msg-mine").inner_text()
    assert mine.startswith("You"), mine
    assert await chat_input.input_value() == ""
    await doctor.shadow(".dc-chat-input").fill("Merci, depuis quand ?")
    await doctor.shadow('.dc-chat button[type="submit"]').click()
    await patient.shadow(".dc-chat-log .dc-msg:not(.dc-msg-mine)").wait_for(timeout=10000)
    await doctor.screenshot("widget-specialist-chat.png")

    # audio only: the patient stops receiving video and stops sending the camera
    await patient.shadow('button[data-action="audio-only"]').click()
    await patient.wait_for(  # `audio-only` fires once the server has acknowledged the pause
        "widgetTest.element.call.pausedByUs.size === 1"
        " && widgetTest.element.call.cam.track === null"
        " && widgetTest.events.some(e => e.type === 'audio-only' && e.detail.enabled)",
        what="audio-only mode",
    )
    await doctor.wait_for(
        f"""widgetTest.element.shadowRoot.querySelector(
              '.dc-tile[data-participant="{patient_id}"] .dc-note')
              ?.textContent === 'Audio only'""",
        what="audio only on the doctor's side (issue 17: labelled, not 'Camera off')",
    )
    # frames already on their way when the pause was acknowledged (the server's pacer,
    # the page's jitter buffer: 6 decoded in the next second on a loaded CI machine)
    # are decoded first; then nothing comes
    before = await inbound_of(patient, doctor_id)
    for _ in range(6):
        await asyncio.sleep(0.5)
        settled = await inbound_of(patient, doctor_id)
        if settled["framesDecoded"] == before["framesDecoded"]:
            break
        before = settled
    await asyncio.sleep(1.0)
    after = await inbound_of(patient, doctor_id)
    assert after["framesDecoded"] - before["framesDecoded"] <= 2, (before, after)  # paused
    note = await patient.shadow(f'.dc-tile[data-participant="{doctor_id}"] .dc-note').inner_text()
    assert note == "Audio only: video paused", note
    await patient.screenshot("widget-patient-audio-only.png")
    await wait_decoding(patient, doctor_id, source="microphone", kind="audio")  # audio goes on
    # and back: video resumes both ways (a new camera capture on the patient's side)
    await patient.shadow('button[data-action="audio-only"]').click()
    await wait_decoding(patient, doctor_id, since=after["framesDecoded"])
    await wait_decoding(doctor, patient_id)
    await wait_video_element(doctor, patient_id)
    for page in (doctor, patient):
        assert await page.violations() == []
        assert await page.errors() == []


async def test_widget_reconnects_after_the_server_drops_its_websocket(
    server: RunningServer, open_widget: OpenWidget
) -> None:
    doctor, patient, doctor_id, patient_id = await start_consult(open_widget, "widget-reconnect")
    await wait_decoding(doctor, patient_id)
    await wait_decoding(patient, doctor_id)

    session = next(
        s for s in server.app[SESSIONS] if s.participant and s.participant.id == patient_id
    )
    await session.ws.close()
    # the patient's page says so while it reconnects
    banner = await patient.wait_for(
        """() => { const b = widgetTest.element.shadowRoot.querySelector('.dc-banner');
                   return !b.hidden && b.textContent; }""",
        timeout=5,
        what="reconnecting banner",
    )
    assert "Reconnecting" in banner, banner
    # back without user action: a new participant id, re-admitted by the doctor's widget
    new_id = await reconnected(patient, patient_id, timeout=20)
    await wait_decoding(doctor, new_id)  # framesDecoded rising again
    await wait_decoding(doctor, new_id, source="microphone", kind="audio")
    await wait_decoding(patient, doctor_id)
    await wait_video_element(doctor, new_id)
    assert not await patient.js(
        "widgetTest.element.shadowRoot.querySelector('.dc-banner').hidden === false"
    )
    left = await doctor.js(
        "widgetTest.events.filter(e => e.type === 'participant-left').map(e => e.detail.reason)"
    )
    assert left == ["disconnected"], left
    await doctor.wait_for(
        "widgetTest.element.shadowRoot.querySelector('.dc-status').textContent.includes('is back')",
        what="'is back' status",
    )
    await patient.screenshot("widget-patient-after-reconnect.png")

    # the doctor's connection drops too: it rejoins directly (no lobby), the patient stays
    doctor_session = next(
        s for s in server.app[SESSIONS] if s.participant and s.participant.id == doctor_id
    )
    await doctor_session.ws.close()
    new_doctor = await reconnected(doctor, doctor_id, timeout=20)
    await wait_decoding(patient, new_doctor)
    await wait_decoding(doctor, new_id)
    assert await patient.js("widgetTest.element.session.participantId") == new_id
    for page in (doctor, patient):
        assert await page.violations() == []
        assert await page.errors() == []


async def reconnected(page: WidgetPage, old_id: str, timeout: float) -> str:
    """The page's participant id once it has reconnected (a new one)."""
    new_id: str = await page.wait_for(
        f"""widgetTest.events.some(e => e.type === 'reconnected')
              && widgetTest.element.session.participantId !== {old_id!r}
              && widgetTest.element.session.participantId""",
        timeout=timeout,
        what=f"{page.name} reconnected",
    )
    return new_id


async def still_in_the_call(page: WidgetPage, other_id: str) -> None:
    """The page never started reconnecting, and still decodes the other side's video."""
    events = await page.js("widgetTest.events.map(e => e.type)")
    assert "reconnecting" not in events, events
    decoded = (await inbound_of(page, other_id))["framesDecoded"]
    await wait_decoding(page, other_id, since=decoded)


def _session_of(server: RunningServer, participant_id: str) -> Any:
    return next(
        s for s in server.app[SESSIONS] if s.participant and s.participant.id == participant_id
    )


async def _pings_answered_late(page: WidgetPage, count: int, answer_wait: float) -> None:
    """Until ``count`` of the page's heartbeat pings have had their whole wait (10 s apart)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10 * count + 15
    while len(page.sent_of("ping")) < count and loop.time() < deadline:
        await asyncio.sleep(0.25)
    assert len(page.sent_of("ping")) >= count, "the widget sends a ping every 10 s"
    await asyncio.sleep(answer_wait)


async def test_a_late_pong_while_the_server_keeps_talking_is_no_lost_connection(
    server: RunningServer, open_widget: OpenWidget
) -> None:
    # a thin link's TCP can take seconds to repeat a lost segment: the ping
    # (or its pong) is late while the server's other messages keep coming
    _doctor, patient, doctor_id, patient_id = await start_consult(open_widget, "widget-late-pong")
    await wait_decoding(patient, doctor_id)
    session = _session_of(server, patient_id)
    dispatch = session._dispatch

    async def late_pong(message: Any) -> None:
        if message.type == "ping":
            await asyncio.sleep(8)  # longer than the widget waits (6 s)
        await dispatch(message)

    session._dispatch = late_pong
    await _pings_answered_late(patient, 2, answer_wait=6.5)
    # quality events came every 2 s meanwhile: no reconnection, the call goes on
    await still_in_the_call(patient, doctor_id)
    assert await patient.js("widgetTest.element.session.participantId") == patient_id
    quality = [m for m in patient.ws_received if m.get("type") == "quality"]
    assert len(quality) >= 5, "the server kept talking"


async def test_a_server_gone_silent_is_a_lost_connection(
    server: RunningServer, open_widget: OpenWidget
) -> None:
    doctor, patient, doctor_id, patient_id = await start_consult(open_widget, "widget-silent")
    await wait_decoding(patient, doctor_id)
    session = _session_of(server, patient_id)

    async def silent(text: Any) -> None:
        return None

    session.ws.send_str = silent  # nothing reaches the page any more, not even pongs
    silenced = asyncio.get_running_loop().time()
    # the doctor's media still arrives: a stalled WebSocket is given ~3 heartbeats
    # (a thin link's TCP can stall 10 s and more) before the call is torn down
    await asyncio.sleep(25)
    await still_in_the_call(patient, doctor_id)
    reason = await patient.wait_for(
        """(widgetTest.events.find(e => e.type === 'reconnecting') || {}).detail?.reason""",
        timeout=45,
        what="reconnecting after silent heartbeats",
    )
    assert reason == "heartbeat_timeout", reason
    assert asyncio.get_running_loop().time() - silenced < 60
    new_id = await reconnected(patient, patient_id, timeout=30)
    await wait_decoding(patient, doctor_id)
    await wait_decoding(doctor, new_id)
