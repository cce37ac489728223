"""An end-to-end encrypted consult in widgets a portal embeds from another origin.

A worker may only start from the page's own origin: the portal's page (a
second origin, the documented Content-Security-Policy as a header) gets the
transform worker through a same-origin ``blob:`` shim that imports it from
the digiclinic server (docs/widget.md#content-security-policy). Both portal
pages decode each other, with no policy violation.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from e2ee.frames import encode_key
from sfu.participant import Role
from tests.browser.conftest import WidgetPage
from tests.browser.test_widget_embedding import documented_csp
from tests.browser.widget_helpers import wait_decoding
from tests.conftest import RunningServer

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Portal</title></head>
<body><main id="host"></main><script type="module" src="/portal.js"></script></body></html>
"""
# the portal's own module: the widget from the digiclinic server, token and key from the fragment
SCRIPT = """
const fragment = new URLSearchParams(location.hash.slice(1));
history.replaceState(null, "", location.pathname);
const widgetTest = { events: [], violations: [], element: null };
window.widgetTest = widgetTest;
document.addEventListener("securitypolicyviolation",
  (e) => widgetTest.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
await import(fragment.get("widget"));
const element = document.createElement("digiclinic-consult");
element.token = fragment.get("token");
element.setAttribute("server", fragment.get("server"));
element.setAttribute("skip-precall", "");
element.e2eeKey = fragment.get("e2ee");
widgetTest.element = element;
document.getElementById("host").append(element);
"""


POLICY = web.AppKey("policy", dict[str, str])


@pytest.fixture
async def portal(loopback_only: bool) -> AsyncIterator[TestServer]:
    """The portal's origin (its policy is set once the digiclinic server's origin is known)."""
    policy: dict[str, str] = {}

    @web.middleware
    async def csp(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        if request.path == "/portal.html":
            response.headers["Content-Security-Policy"] = policy["value"]
        return response

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def script(request: web.Request) -> web.Response:
        return web.Response(text=SCRIPT, content_type="text/javascript")

    app = web.Application(middlewares=[csp])
    app.router.add_get("/portal.html", page)
    app.router.add_get("/portal.js", script)
    app[POLICY] = policy
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


async def test_a_portal_of_another_origin_runs_an_encrypted_consult(
    portal: TestServer, server_factory: Callable[..., Any], chromium: Any, tmp_path: Path
) -> None:
    portal_origin = str(portal.make_url("/")).rstrip("/")
    server: RunningServer = await server_factory(server={"allowed_origins": [portal_origin]})
    origin = str(server.server.make_url("/")).rstrip("/")
    # the documented policy, plus the portal's own script ('self', as the docs say)
    policy = documented_csp(origin).replace("script-src ", "script-src 'self' ")
    portal.app[POLICY]["value"] = policy
    key = encode_key(4, os.urandom(32))
    pages = []
    contexts = []
    try:
        for identity, role in (("dr", Role.SPECIALIST), ("hw", Role.HEALTH_WORKER)):
            context = await chromium.new_context(viewport={"width": 1100, "height": 700})
            contexts.append(context)
            page = WidgetPage(await context.new_page(), identity)
            fragment = {
                "widget": f"{origin}/client/widget/digiclinic-consult.js",
                "server": origin.replace("http", "ws", 1) + "/ws",
                "token": server.token("e2ee-portal", identity, role, e2ee="required"),
                "e2ee": key,
            }
            await page.page.goto(str(portal.make_url("/portal.html")) + "#" + urlencode(fragment))
            await page.wait_screen("call")
            pages.append(page)
        doctor, nurse = pages
        await wait_decoding(doctor, await nurse.participant_id())
        await wait_decoding(nurse, await doctor.participant_id())
        counts = await doctor.js("() => widgetTest.element.session.e2ee.counts()")
        assert counts["decrypted"] > 20 and counts["dropped"] == 0, counts
        for page in pages:
            assert await page.js("widgetTest.violations") == [], await page.dump()
            assert "e2ee" not in await page.js("location.href")
    finally:
        await asyncio.gather(*(c.close() for c in contexts), return_exceptions=True)
