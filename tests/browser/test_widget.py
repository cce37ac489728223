"""The embeddable consult widget (web-client/widget/) in real Chromium pages.

Pages: web-client/widget/example.html (a portal page with a strict meta CSP
hosting ``<digiclinic-consult>``), web-client/widget/embed.html (iframe mode)
inside web-client/widget/portal-example.html served from a second origin.
Media: Chromium's fake camera, microphone and screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sfu.participant import Role
from signaling.app import SESSIONS, create_app
from tests.browser.conftest import ConsultPage
from tests.conftest import RunningServer, make_config

ROOT = Path(__file__).resolve().parents[2]
WIDGET_PAGE = "/client/widget/example.html"
WIDGET_DIR = ROOT / "web-client" / "widget"

OpenWidget = Callable[..., Any]

# JS run in a widget page: the subscriber connection's inbound-rtp, labelled
STATS_JS = """async () => {
  const s = widgetTest.element.session;
  if (!s?.subscriberPc) return [];
  const byMid = new Map([...s.remoteTracks.values()].map(t => [t.mid, t]));
  const out = [];
  for (const r of (await s.subscriberPc.getStats()).values()) {
    if (r.type !== "inbound-rtp") continue;
    const t = byMid.get(r.mid);
    if (!t) continue;
    out.push({kind: r.kind, participantId: t.participantId, source: t.source,
              trackId: t.trackId, framesDecoded: r.framesDecoded ?? 0,
              frameWidth: r.frameWidth ?? 0, packetsReceived: r.packetsReceived ?? 0,
              totalSamplesReceived: r.totalSamplesReceived ?? 0});
  }
  return out;
}"""


class WidgetPage(ConsultPage):
    """A Chromium page running the widget example page."""

    async def dump(self) -> str:
        state = await self.js(
            """() => {
                const w = window.widgetTest;
                const el = w?.element;
                return w && {screen: el?.screen, session: el?.session?.state,
                             violations: w.violations, events: w.events.slice(-25),
                             text: el?.shadowRoot?.textContent?.slice(0, 600)};
            }"""
        )
        return f"page state: {json.dumps(state, indent=1)}\nconsole:\n" + "\n".join(
            self.console[-30:]
        )

    async def screen(self) -> str:
        return str(await self.js("widgetTest.element.screen"))

    async def wait_screen(self, screen: str, timeout: float = 20.0) -> None:
        await self.wait_for(
            f"widgetTest.element?.screen === {screen!r}", timeout=timeout, what=f"screen {screen}"
        )

    async def participant_id(self) -> str:
        pid: str = await self.wait_for(
            "widgetTest.element?.session?.participantId", what="participant id"
        )
        return pid

    async def inbound(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.js(STATS_JS)
        return result

    async def violations(self) -> list[str]:
        result: list[str] = await self.js("widgetTest.violations")
        return result

    async def errors(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.js(
            "widgetTest.events.filter(e => e.type === 'error').map(e => e.detail)"
        )
        return result

    def shadow(self, selector: str) -> Any:
        """A locator inside the widget (Playwright's CSS pierces open shadow roots)."""
        return self.page.locator(f"digiclinic-consult {selector}")


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


@pytest.fixture
async def open_widget(chromium: Any, server: RunningServer) -> AsyncIterator[OpenWidget]:
    """``await open_widget(room, identity, role, skip=True, lang=None, **claims)`` -> WidgetPage."""
    contexts: list[Any] = []
    pages: list[WidgetPage] = []

    async def open_page(
        room: str,
        identity: str,
        role: Role,
        *,
        skip: bool = True,
        lang: str | None = None,
        locale: str | None = None,
        query: dict[str, str] | None = None,
        viewport: tuple[int, int] = (1200, 760),
        **claims: Any,
    ) -> WidgetPage:
        options: dict[str, Any] = {"viewport": {"width": viewport[0], "height": viewport[1]}}
        if locale:
            options["locale"] = locale
        context = await chromium.new_context(**options)
        contexts.append(context)
        page = WidgetPage(await context.new_page(), identity)
        pages.append(page)
        params = {"token": server.token(room, identity, role, **claims), **(query or {})}
        if skip:
            params["skip"] = "1"
        if lang:
            params["lang"] = lang
        await page.page.goto(str(server.server.make_url(WIDGET_PAGE)) + "?" + urlencode(params))
        return page

    try:
        yield open_page
    finally:
        for page in pages:
            with contextlib.suppress(Exception):
                await page.js("() => widgetTest.element?.session?.leave()")
        for context in contexts:
            await context.close()


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
        "Share your screen",
        "Audio only: pause all video to save bandwidth",
        "Show the chat",
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
        "widgetTest.element.share?.trackIds.length === 1", what="screen share published"
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
    await patient.wait_for(
        "widgetTest.element.pausedByUs.size === 1 && widgetTest.element.cam.track === null",
        what="audio-only mode",
    )
    await doctor.wait_for(
        f"""widgetTest.element.shadowRoot.querySelector(
              '.dc-tile[data-participant="{patient_id}"] .dc-note')
              ?.textContent === 'Camera off'""",
        what="camera off on the doctor's side",
    )
    before = await inbound_of(patient, doctor_id)
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
    new_id: str = await patient.wait_for(
        f"""widgetTest.events.some(e => e.type === 'reconnected')
              && widgetTest.element.session.participantId !== {patient_id!r}
              && widgetTest.element.session.participantId""",
        timeout=20,
        what="reconnected",
    )
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
    new_doctor: str = await doctor.wait_for(
        f"""widgetTest.events.some(e => e.type === 'reconnected')
              && widgetTest.element.session.participantId !== {doctor_id!r}
              && widgetTest.element.session.participantId""",
        timeout=20,
        what="doctor reconnected",
    )
    await wait_decoding(patient, new_doctor)
    await wait_decoding(doctor, new_id)
    assert await patient.js("widgetTest.element.session.participantId") == new_id
    for page in (doctor, patient):
        assert await page.violations() == []
        assert await page.errors() == []


@pytest.fixture
async def portal(loopback_only: bool, server: RunningServer) -> AsyncIterator[TestServer]:
    """A second origin serving the portal example page with a strict CSP header."""
    digiclinic = str(server.server.make_url("/")).rstrip("/")
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"frame-src {digiclinic}; require-trusted-types-for 'script'; base-uri 'none'"
    )

    @web.middleware
    async def csp(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        response.headers["Content-Security-Policy"] = policy
        return response

    app = web.Application(middlewares=[csp])
    app.router.add_static("/portal/", WIDGET_DIR)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


async def test_iframe_mode_posts_events_to_the_parent_origin_and_obeys_it(
    server: RunningServer, portal: TestServer, chromium: Any
) -> None:
    room = "widget-iframe"
    digiclinic = str(server.server.make_url("/")).rstrip("/")
    portal_origin = str(portal.make_url("/")).rstrip("/")
    assert digiclinic != portal_origin
    # as a deployment would: the portal is an allowed origin (CORS, and frame-ancestors)
    server.config.server.allowed_origins.append(portal_origin)
    context = await chromium.new_context(viewport={"width": 1100, "height": 900})
    try:
        page = ConsultPage(await context.new_page(), "portal")
        token = server.token(room, "dr-iframe", Role.SPECIALIST, name="Dr. Iframe")
        query = urlencode({"digiclinic": digiclinic, "token": token, "skip": "1"})
        await page.page.goto(str(portal.make_url("/portal/portal-example.html")) + "?" + query)
        joined = await page.wait_for(
            "portalEvents.events.find(e => e.event === 'joined')", what="joined event"
        )
        assert joined["origin"] == digiclinic, joined
        assert joined["detail"]["role"] == "specialist", joined
        assert joined["detail"]["state"] == "active", joined
        assert joined["detail"]["room"] == room, joined
        types = await page.js("portalEvents.events.map(e => e.event)")
        assert {"ready", "joined", "recording-state"} <= set(types), types
        frame = next(f for f in page.page.frames if f.url.startswith(digiclinic))
        assert "token" not in frame.url  # the fragment was removed from the address
        await frame.wait_for_function("document.querySelector('digiclinic-consult').mic?.trackId")

        # a command from the parent's origin is obeyed: the portal's Mute button
        await page.page.click("#mute")
        await page.wait_for(
            "portalEvents.events.some(e => e.event === 'mute-state' && e.detail.muted)",
            what="mute-state event",
        )
        participant_id = joined["detail"]["participantId"]

        def mic_muted() -> bool:
            participant = server.rooms.rooms[room].participants[participant_id]
            return any(
                p["muted"] for p in participant.info()["producers"] if p["source"] == "microphone"
            )

        for _ in range(40):
            if mic_muted():
                break
            await asyncio.sleep(0.1)
        assert mic_muted(), "the server never saw the mute"
        assert await frame.evaluate(
            "!document.querySelector('digiclinic-consult').mic.track.enabled"
        )
        # the same command from another origin (the widget's own window) is refused
        await frame.evaluate(
            "window.postMessage({type: 'digiclinic:command', command: 'unmute'}, '*')"
        )
        await frame.wait_for_function("window.digiclinicEmbed.refused.length === 1")
        refused = await frame.evaluate("window.digiclinicEmbed.refused")
        assert refused == [{"origin": digiclinic, "command": "unmute"}], refused
        assert mic_muted()
        assert await frame.evaluate("window.digiclinicEmbed.commands") == ["mute"]

        await page.screenshot("widget-iframe-portal.png")
        await page.page.click("#leave")
        left = await page.wait_for(
            "portalEvents.events.find(e => e.event === 'left')", what="left event"
        )
        assert left["detail"]["reason"] == "left", left
        # no CSP violation, in the portal page or in the iframe
        assert await page.js("portalEvents.violations") == []
        assert await frame.evaluate("window.digiclinicEmbed.violations") == []
    finally:
        await context.close()


def documented_csp(origin: str) -> str:
    """The portal policy of docs/widget.md, for a digiclinic server at ``origin``."""
    text = (ROOT / "docs" / "widget.md").read_text()
    match = re.search(r"<!-- portal-csp -->\s*```\s*\n(.*?)\n```", text, re.S)
    assert match, "docs/widget.md has no portal CSP block"
    policy = " ".join(line.strip() for line in match.group(1).splitlines())
    policy = policy.replace("wss://digiclinic.example", origin.replace("http", "ws", 1))
    return policy.replace("https://digiclinic.example", origin)


@pytest.fixture
async def csp_server(
    loopback_only: bool, tmp_path: Path, aiohttp_server: Callable[..., Any]
) -> RunningServer:
    """A server that sends the documented portal policy as a header with example.html."""
    config = make_config(tmp_path)
    app = create_app(config)

    async def add_policy(request: web.Request, response: web.StreamResponse) -> None:
        if request.path == WIDGET_PAGE:
            origin = f"http://{request.host}"
            response.headers["Content-Security-Policy"] = documented_csp(origin)

    app.on_response_prepare.append(add_policy)
    test_server = await aiohttp_server(app, host="127.0.0.1")
    return RunningServer(app, test_server, config)


async def test_widget_under_the_documented_strict_csp(
    csp_server: RunningServer, chromium: Any
) -> None:
    """The documented policy as a real header: pre-call check and call, no violation.

    (example.html also has its own meta policy; both are enforced, so no
    violation means the documented one alone allows everything the widget does.)
    """
    server = csp_server
    origin = str(server.server.make_url("/")).rstrip("/")
    policy = documented_csp(origin)
    assert "unsafe" not in policy and "'self'" not in policy
    context = await chromium.new_context(viewport={"width": 1200, "height": 760})
    try:
        page = WidgetPage(await context.new_page(), "csp")
        token = server.token("widget-csp", "dr-csp", Role.SPECIALIST, name="Dr. CSP")
        url = str(server.server.make_url(WIDGET_PAGE))
        response = await page.page.goto(url + "?" + urlencode({"token": token}))
        assert response is not None
        assert response.headers["content-security-policy"] == policy
        await page.wait_for(
            "widgetTest.element.precallResults?.verdict", timeout=15, what="pre-call verdict"
        )
        results = await page.js("widgetTest.element.precallResults")
        assert results["verdict"] == "video" and results["rttMs"] is not None, (
            results,
            await page.dump(),
        )
        await page.shadow('button[data-action="join"]').click()
        await page.wait_screen("call")
        await page.wait_for("widgetTest.element.mic?.trackId", what="published")
        styled = await page.js(
            "getComputedStyle(widgetTest.element.shadowRoot.querySelector('.dc-controls')).display"
        )
        assert styled == "flex"  # consult.css applied through the shadow root's <link>
        assert await page.violations() == []
        assert await page.errors() == []
        # the policy is really enforced: an inline style attribute is refused
        await page.js("document.body.setAttribute('style', 'color: red')")
        await page.wait_for("widgetTest.violations.length > 0", what="a violation")
        assert (await page.violations())[0].startswith("style-src-attr"), await page.violations()
    finally:
        await context.close()


async def test_french_and_kinyarwanda(server: RunningServer, open_widget: OpenWidget) -> None:
    french = await open_widget("widget-lang", "dr-fr", Role.SPECIALIST, skip=False, lang="fr")
    await french.wait_screen("precall")
    text = await french.shadow(".dc-precall").inner_text()
    assert "Vérifiez votre caméra, votre micro et votre connexion" in text, text
    assert await french.shadow('button[data-action="join"]').inner_text() == "Rejoindre"
    await french.shadow('button[data-action="join"]').click()
    await french.wait_screen("call")
    assert await french.shadow('button[data-action="mic"]').get_attribute("aria-label") == (
        "Couper votre micro"
    )

    # Kinyarwanda: the patient's pre-call check, lobby and, once admitted, the controls
    rw = await open_widget(  # on a phone-sized screen
        "widget-lang",
        "patient-rw",
        Role.PATIENT,
        skip=False,
        lang="rw",
        name="Uwase",
        viewport=(390, 844),
    )
    await rw.wait_screen("precall")
    assert await rw.shadow('button[data-action="join"]').inner_text() == "Injira"
    await rw.wait_for("widgetTest.element.precallResults?.verdict", what="verdict")
    await rw.screenshot("widget-phone-precall-kinyarwanda.png")
    assert "Suzuma kamera, mikoro n'ihuza ryawe" in await rw.shadow(".dc-precall").inner_text()
    await rw.shadow('button[data-action="join"]').click()
    await rw.wait_screen("lobby")
    lobby = await rw.shadow(".dc-lobby").inner_text()
    assert "Tegereza gato" in lobby and "Sohoka" in lobby, lobby
    admit = french.shadow('button[aria-label="Faire entrer Uwase"]')
    await admit.click()
    await rw.wait_screen("call")
    labels = {
        action: (
            # text_content: on a phone the visible label is hidden, icons only
            await rw.shadow(f'button[data-action="{action}"]').text_content(),
            await rw.shadow(f'button[data-action="{action}"]').get_attribute("aria-label"),
        )
        for action in ("mic", "chat", "leave")
    }
    assert labels == {
        "mic": ("Ceceka", "Funga mikoro yawe"),
        "chat": ("Ikiganiro", "Erekana ikiganiro"),
        "leave": ("Sohoka", "Sohoka mu isuzuma"),
    }, labels
    # keyboard: Tab moves between the controls with a visible focus ring, Enter presses
    await rw.shadow('button[data-action="mic"]').focus()
    await rw.page.keyboard.press("Tab")
    focused = await rw.js(
        """() => { const el = widgetTest.element.shadowRoot.activeElement;
                   const st = getComputedStyle(el);
                   return [el.dataset.action, st.outlineStyle, st.outlineWidth]; }"""
    )
    assert focused == ["camera", "solid", "3px"], focused
    await rw.page.keyboard.press("Shift+Tab")
    await rw.page.keyboard.press("Enter")
    assert await rw.shadow('button[data-action="mic"]').text_content() == "Fungura mikoro"
    assert await rw.shadow('button[data-action="mic"]').get_attribute("aria-pressed") == "true"
    await rw.screenshot("widget-patient-kinyarwanda.png")

    # no lang attribute: the browser's language (here fr-FR), else English
    browser_fr = await open_widget(
        "widget-lang-2", "dr-nav", Role.SPECIALIST, skip=False, locale="fr-FR"
    )
    await browser_fr.wait_screen("precall")
    assert await browser_fr.shadow('button[data-action="join"]').inner_text() == "Rejoindre"
    for page in (french, rw, browser_fr):
        assert await page.violations() == []


async def test_demo_page_gets_a_token_and_shows_the_widget(
    server: RunningServer, chromium: Any
) -> None:
    context = await chromium.new_context(viewport={"width": 1200, "height": 900})
    try:
        page = ConsultPage(await context.new_page(), "demo")
        violations: list[str] = []
        await page.page.goto(str(server.server.make_url("/")))  # redirects to the demo
        assert page.page.url.endswith("/client/demo/index.html"), page.page.url
        await page.page.evaluate(
            """() => document.addEventListener('securitypolicyviolation',
                   e => (window.violations ??= []).push(e.violatedDirective))"""
        )
        assert await page.page.get_attribute("a[href='/client/console/index.html']", "href")
        await page.page.check("input[value=specialist]")
        await page.page.fill("input[name=room]", "demo-room")
        await page.page.click("button[type=submit]")
        await page.page.locator("digiclinic-consult .dc-precall").wait_for(timeout=10000)
        assert "Dr. Okafor" in await page.page.inner_text("#joined-as")
        await page.page.locator("digiclinic-consult button[data-action=join]").click()
        await page.wait_for(
            "document.querySelector('digiclinic-consult').mic?.trackId", what="published"
        )
        room = server.rooms.rooms["demo-room"]
        assert [p.role.value for p in room.participants.values()] == ["specialist"]
        violations += await page.js("window.violations ?? []")
        assert violations == []
        await page.screenshot("widget-demo-page.png")
    finally:
        await context.close()


async def test_every_string_exists_in_the_three_languages(
    server: RunningServer, chromium: Any
) -> None:
    """i18n.js: same keys in en/fr/rw, none empty, and every key the widget uses exists."""
    context = await chromium.new_context()
    try:
        page = await context.new_page()
        await page.goto(str(server.server.make_url("/client/widget/embed.html")))
        tables = await page.evaluate(
            """async () => {
                const { STRINGS, pickLanguage } = await import('/client/widget/i18n.js');
                return {strings: STRINGS, picks: [pickLanguage('fr-CA', []),
                        pickLanguage('kin', []), pickLanguage('de', ['rw-RW']),
                        pickLanguage(null, ['de-DE']), pickLanguage('RW', [])]};
            }"""
        )
    finally:
        await context.close()
    strings = tables["strings"]
    assert set(strings) == {"en", "fr", "rw"}
    keys = set(strings["en"])
    for lang in ("fr", "rw"):
        assert set(strings[lang]) == keys, (lang, keys ^ set(strings[lang]))
        assert all(text.strip() for text in strings[lang].values()), lang
        # placeholders survive translation
        for key, text in strings["en"].items():
            assert sorted(re.findall(r"\{\w+\}", text)) == sorted(
                re.findall(r"\{\w+\}", strings[lang][key])
            ), (lang, key)
    assert tables["picks"] == ["fr", "rw", "rw", "en", "rw"]
    used: set[str] = set()
    for source in WIDGET_DIR.glob("*.js"):
        used |= set(re.findall(r"\bt\(\s*\"(\w+)\"", source.read_text()))
    assert used and used <= keys, used - keys
