"""The embeddable consult widget (web-client/widget/) in real Chromium pages: embedding.

web-client/widget/embed.html (iframe mode) inside
web-client/widget/portal-example.html served from a second origin; the
documented portal Content-Security-Policy as a real header; the demo page.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sfu.participant import Role
from signaling.app import create_app
from tests.browser.conftest import WIDGET_PAGE, ConsultPage, WidgetPage
from tests.browser.widget_helpers import ROOT, WIDGET_DIR
from tests.conftest import RunningServer, make_config


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
        await frame.wait_for_function(
            "document.querySelector('digiclinic-consult').call.mic?.trackId"
        )

        # a command from the parent's origin is obeyed: the portal's Mute button
        await page.page.click("#mute")
        await page.wait_for(
            "portalEvents.events.some(e => e.event === 'mute-state' && e.detail.muted)",
            what="mute-state event",
        )
        participant_id = joined["detail"]["participantId"]

        def mic_muted() -> bool:
            participant = server.room(room).participants[participant_id]
            return any(
                p["muted"] for p in participant.info()["producers"] if p["source"] == "microphone"
            )

        for _ in range(40):
            if mic_muted():
                break
            await asyncio.sleep(0.1)
        assert mic_muted(), "the server never saw the mute"
        assert await frame.evaluate(
            "!document.querySelector('digiclinic-consult').call.mic.track.enabled"
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
        await page.wait_for("widgetTest.element.call.mic?.trackId", what="published")
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
        assert await page.page.get_attribute(
            "a[href^='/client/console/index.html?rooms=3']", "href"
        )
        await page.page.check("input[value=specialist]")
        await page.page.fill("input[name=room]", "demo-room")
        await page.page.click("button[type=submit]")
        await page.page.locator("digiclinic-consult .dc-precall").wait_for(timeout=10000)
        assert "Dr. Okafor" in await page.page.inner_text("#joined-as")
        await page.page.locator("digiclinic-consult button[data-action=join]").click()
        await page.wait_for(
            "document.querySelector('digiclinic-consult').call.mic?.trackId", what="published"
        )
        room = server.room("demo-room")
        assert [p.role.value for p in room.participants.values()] == ["specialist"]
        violations += await page.js("window.violations ?? []")
        assert violations == []
        await page.screenshot("widget-demo-page.png")
    finally:
        await context.close()
