"""The demo page in real Chromium (issue 20, defect 6): its entry, console link and icon.

``/?role=…&lang=…`` opens the demo with that role and language chosen; its
"Specialist console" link opens the console's demo mode (three rooms) in the
chosen language, not a console with "No rooms"; the icon the pages ask for
(``/favicon.ico``) is served and decodes under the pages' own
Content-Security-Policy, and no page load meets a 404.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from tests.browser.conftest import ConsultPage
from tests.conftest import RunningServer

# an <img> of the icon, as the page's own policy (img-src 'self') treats it
ICON_JS = """async () => {
  const img = document.createElement("img");
  img.src = "/favicon.ico";
  await img.decode();
  return {width: img.naturalWidth, height: img.naturalHeight};
}"""


class Responses:
    """Every response the browser context received, and the failed ones."""

    def __init__(self, context: Any) -> None:
        self.seen: list[tuple[int, str]] = []
        context.on("response", lambda r: self.seen.append((r.status, r.url)))

    def failed(self) -> list[tuple[int, str]]:
        return [(status, url) for status, url in self.seen if status >= 400]


async def _watch_violations(page: ConsultPage) -> None:
    await page.page.evaluate(
        """() => document.addEventListener('securitypolicyviolation',
               e => (window.violations ??= []).push(e.violatedDirective))"""
    )


async def test_demo_entry_keeps_role_and_language_and_links_the_console(
    server: RunningServer, chromium: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")  # what the server answered
    context = await chromium.new_context(viewport={"width": 1200, "height": 900})
    responses = Responses(context)
    try:
        page = ConsultPage(await context.new_page(), "demo")
        root = str(server.server.make_url("/"))
        await page.page.goto(f"{root}?role=specialist&lang=fr&room=ward-7")
        assert page.page.url.endswith(
            "/client/demo/index.html?role=specialist&lang=fr&room=ward-7"
        ), page.page.url
        await _watch_violations(page)
        await page.wait_for("document.getElementById('console-link')", what="the demo page")
        assert await page.js("document.querySelector('input[name=role]:checked').value") == (
            "specialist"
        )
        assert await page.js("document.querySelector('select[name=lang]').value") == "fr"
        assert await page.js("document.querySelector('input[name=room]').value") == "ward-7"

        link = page.page.locator("#console-link")
        assert await link.inner_text() == "Specialist console"
        assert await link.get_attribute("href") == "/client/console/index.html?rooms=3&lang=fr"
        await page.page.select_option("select[name=lang]", "rw")
        assert await link.get_attribute("href") == "/client/console/index.html?rooms=3&lang=rw"
        await page.page.select_option("select[name=lang]", "")  # the browser's language
        assert await link.get_attribute("href") == "/client/console/index.html?rooms=3"
        await page.page.select_option("select[name=lang]", "fr")

        # the icon: linked, served, decoded under the demo page's policy
        assert await page.js("document.querySelector('link[rel=icon]').href") == (
            f"{root}favicon.ico"
        )
        assert await page.js(ICON_JS) == {"width": 32, "height": 32}
        assert await page.js("window.violations ?? []") == []

        await link.click()
        await page.page.wait_for_url("**/client/console/index.html?rooms=3&lang=fr")
        await _watch_violations(page)
        await page.wait_for(
            "window.digiclinicConsole?.ready", timeout=40, what="the console's rooms"
        )
        console = await page.js(
            """() => ({lang: digiclinicConsole.lang, rooms: document.body.dataset.rooms,
                       errors: digiclinicConsole.errors,
                       notices: [...document.querySelectorAll('#notices li')]
                                  .map(li => li.textContent)})"""
        )
        assert (console["lang"], console["rooms"]) == ("fr", "3"), console
        assert not [n for n in console["notices"] if "?rooms=3" in n], console  # "No rooms: …"
        assert await page.js("document.documentElement.lang") == "fr"
        for name in ("demo-room-1", "demo-room-2", "demo-room-3"):
            roles = [p.role.value for p in server.room(name).participants.values()]
            assert roles == ["specialist"], (name, roles)
        # the console page names no icon: the browser's /favicon.ico, under its policy
        assert await page.js(ICON_JS) == {"width": 32, "height": 32}
        assert await page.js("window.violations ?? []") == []
        await page.screenshot("demo-console-link.png")
        await page.js("() => digiclinicConsole.rooms.forEach(r => r.session?.leave?.())")
    finally:
        await context.close()
    assert responses.failed() == [], responses.failed()
    answered = [
        match.groups()
        for record in caplog.records
        if record.name == "aiohttp.access"
        and (match := re.search(r'"(\w+) (\S+) HTTP/[\d.]+" (\d+)', record.getMessage()))
    ]
    assert ("GET", "/favicon.ico", "200") in answered, answered
    assert [a for a in answered if int(a[2]) >= 400] == [], answered
