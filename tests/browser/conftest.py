"""Real-browser fixtures: Debian's Chromium driven by Playwright for Python.

Chromium is /usr/bin/chromium (``apt-get install chromium``) and Playwright
the PyPI package ``playwright`` with ``executable_path``; its own browser
download (``playwright install``) is never used. The tests are skipped, with
the reason, when either is missing.

Chromium offers every interface's address as an ICE candidate. To keep the
media of these tests on loopback only, each test runs in a private network
namespace holding just ``lo`` (when the process may create one, i.e. as
root): the main thread moves into it before the test server, the aiortc
participants and Chromium open their sockets, and moves back afterwards.
Sockets stay in the namespace they were created in, so the rest of the
test session is unaffected.

The async Playwright API runs on the test's event loop, the same loop as
the aiohttp ``server`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import importlib.util
import json
import os
import shutil
import socket
import struct
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from sfu.participant import Role
from tests.conftest import Keys, RunningServer, recording_server
from tests.helpers.fake_camera import write_y4m

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",  # a synthetic camera and microphone
    "--use-fake-ui-for-media-stream",  # grant getUserMedia without asking
    "--allow-loopback-in-peer-connection",  # otherwise no 127.0.0.1 ICE candidate
    "--autoplay-policy=no-user-gesture-required",  # remote <audio> plays unattended
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
TEST_PAGE = "/client/test/consult.html"
WIDGET_PAGE = "/client/widget/example.html"

CLONE_NEWNET = 0x40000000
SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40


@pytest.fixture(scope="session")
def browser_requirements() -> str:
    """The Chromium executable; skips the test when Chromium or Playwright is missing."""
    executable = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    if executable is None:
        pytest.skip("Chromium is not installed (/usr/bin/chromium: apt-get install -y chromium)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("Playwright for Python is not installed (pip install playwright)")
    return executable


def _enter_loopback_namespace() -> int | None:
    """Move this thread into a new network namespace with ``lo`` up.

    Returns a descriptor of the previous namespace, or None if not allowed.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    previous = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    if libc.unshare(CLONE_NEWNET) != 0:
        os.close(previous)
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = struct.pack("16sh14x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING)
        fcntl.ioctl(sock, SIOCSIFFLAGS, flags)
    return previous


def _leave_namespace(previous: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        if libc.setns(previous, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the original network namespace")
    finally:
        os.close(previous)


@pytest.fixture
def loopback_only(browser_requirements: str) -> Iterator[bool]:
    """Run the test in a network namespace that has only loopback (if allowed)."""
    previous = _enter_loopback_namespace()
    if previous is None:
        warnings.warn(
            "cannot create a network namespace (not root?): Chromium will also offer "
            "non-loopback ICE candidates",
            stacklevel=1,
        )
        yield False
        return
    try:
        yield True
    finally:
        _leave_namespace(previous)


@pytest.fixture
async def server(  # overrides tests/conftest.py's: created inside the namespace
    loopback_only: bool, server_factory: Callable[..., Any]
) -> AsyncIterator[RunningServer]:
    yield await server_factory()


@pytest.fixture
async def rec_server(  # overrides tests/conftest.py's: created inside the namespace
    loopback_only: bool, server_factory: Callable[..., Any], keys: Keys
) -> RunningServer:
    return await recording_server(server_factory, keys)


@pytest.fixture
async def chromium(browser_requirements: str, loopback_only: bool) -> AsyncIterator[Any]:
    async_api = pytest.importorskip("playwright.async_api")
    playwright = await async_api.async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=browser_requirements,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield browser
        finally:
            await browser.close()
    finally:
        await playwright.stop()


class ConsultPage:
    """One Chromium page running web-client/test/consult.html."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        self.console: list[str] = []
        # every signalling message the page sends / receives, parsed (the page's WebSockets)
        self.ws_sent: list[dict[str, Any]] = []
        self.ws_received: list[dict[str, Any]] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: self.console.append(f"pageerror: {err}"))
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws: Any) -> None:
        def keep(frames: list[dict[str, Any]]) -> Callable[[Any], None]:
            def on_frame(payload: Any) -> None:
                with contextlib.suppress(ValueError, TypeError):
                    message = json.loads(payload)
                    if isinstance(message, dict):
                        frames.append(message)

            return on_frame

        ws.on("framesent", keep(self.ws_sent))
        ws.on("framereceived", keep(self.ws_received))

    def sent_of(self, kind: str) -> list[dict[str, Any]]:
        """The messages of that ``type`` the page sent, oldest first."""
        return [m for m in self.ws_sent if m.get("type") == kind]

    async def js(self, expression: str, arg: Any = None) -> Any:
        # page.evaluate goes through the DevTools protocol, not eval: fine under the page's CSP
        return await self.page.evaluate(expression, arg)

    async def wait_for(
        self, expression: str, timeout: float = 20.0, what: str | None = None
    ) -> Any:
        """Poll a JS expression until it is truthy; fail with the page's state."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.js(expression)
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(
                    f"{self.name}: timed out waiting for {what or expression}\n{await self.dump()}"
                )
            await asyncio.sleep(0.25)

    async def dump(self) -> str:
        state = await self.js(
            """() => {
                const t = window.digiclinicTest;
                return t && {state: t.state, errors: t.errors, events: t.events.slice(-30)};
            }"""
        )
        return f"page state: {json.dumps(state, indent=1)}\nconsole:\n" + "\n".join(
            self.console[-30:]
        )

    async def stats(self) -> dict[str, list[dict[str, Any]]]:
        result: dict[str, list[dict[str, Any]]] = await self.js("() => digiclinicTest.stats()")
        return result

    async def participant_id(self) -> str:
        pid: str = await self.wait_for(
            "window.digiclinicTest?.joined?.participant?.id", what="joined"
        )
        return pid

    async def screenshot(self, filename: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / filename
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
async def open_consult(chromium: Any, server: RunningServer) -> AsyncIterator[Callable[..., Any]]:
    """``await open_consult(room, identity, role)`` -> a ConsultPage (own browser context).

    ``relay=True`` adds ``relay=1``; ``token`` replaces the minted join token;
    ``query`` adds query parameters (e.g. ``{"video": "1280x720"}``), ``fragment``
    the URL's fragment (``{"e2ee": key}``: it never reaches the server); other
    keywords are token claims (``name=...``).
    """
    contexts: list[Any] = []
    pages: list[ConsultPage] = []

    async def open_page(
        room: str,
        identity: str,
        role: Role,
        *,
        relay: bool = False,
        token: str | None = None,
        query: dict[str, str] | None = None,
        fragment: dict[str, str] | None = None,
        **claims: Any,
    ) -> ConsultPage:
        context = await chromium.new_context(viewport={"width": 1000, "height": 640})
        contexts.append(context)
        page = ConsultPage(await context.new_page(), identity)
        pages.append(page)
        params = {"token": token or server.token(room, identity, role, **claims), **(query or {})}
        if relay:
            params["relay"] = "1"
        url = str(server.server.make_url(TEST_PAGE)) + "?" + urlencode(params)
        if fragment:
            url += "#" + urlencode(fragment)
        await page.page.goto(url)
        return page

    try:
        yield open_page
    finally:
        for page in pages:
            with contextlib.suppress(Exception):  # the page may be gone already
                await page.js("() => window.digiclinicTest?.session.leave()")
        for context in contexts:
            await context.close()


# -- the embeddable widget (web-client/widget/) ------------------------------------

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


@pytest.fixture
async def open_widget(chromium: Any, server: RunningServer) -> AsyncIterator[OpenWidget]:
    """``await open_widget(room, identity, role, skip=True, lang=None, **claims)`` -> WidgetPage.

    Also ``locale``, ``query`` (more query parameters), ``fragment`` (the URL's),
    ``viewport`` and ``device_scale_factor`` (devicePixelRatio).
    """
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
        device_scale_factor: float | None = None,
        fragment: dict[str, str] | None = None,
        **claims: Any,
    ) -> WidgetPage:
        options: dict[str, Any] = {"viewport": {"width": viewport[0], "height": viewport[1]}}
        if device_scale_factor:
            options["device_scale_factor"] = device_scale_factor
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
        url = str(server.server.make_url(WIDGET_PAGE)) + "?" + urlencode(params)
        if fragment:  # e.g. {"e2ee": key}: never sent to the server
            url += "#" + urlencode(fragment)
        await page.page.goto(url)
        return page

    try:
        yield open_page
    finally:
        for page in pages:
            with contextlib.suppress(Exception):
                await page.js("() => widgetTest.element?.session?.leave()")
        for context in contexts:
            await context.close()


# -- the specialist console (test_console.py, test_clinic_ux.py) ---------------------

CONSOLE_PAGE = "/client/console/index.html"

# Runs before the page's own scripts: counts every RTCPeerConnection and
# WebSocket ever constructed, and records CSP violations.
COUNTERS = """
(() => {
  const counts = { peerConnections: 0, websockets: 0, csp: [] };
  window.__consoleCounts = counts;
  const PC = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends PC {
    constructor(...args) { super(...args); counts.peerConnections += 1; }
  };
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...args) { super(...args); counts.websockets += 1; }
  };
  document.addEventListener("securitypolicyviolation",
    (e) => counts.csp.push(`${e.violatedDirective} ${e.blockedURI}`));
})();
"""


class ConsolePage(ConsultPage):
    async def dump(self) -> str:
        state = await self.js(
            """() => window.digiclinicConsole && {
                 ready: digiclinicConsole.ready, focused: digiclinicConsole.focused,
                 rooms: digiclinicConsole.summary(), errors: digiclinicConsole.errors,
                 switches: digiclinicConsole.switches, counts: window.__consoleCounts}"""
        )
        return f"console state: {json.dumps(state, indent=1)}\nconsole:\n" + "\n".join(
            self.console[-30:]
        )

    async def summary(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.js("digiclinicConsole.summary()")
        return result

    async def counts(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.js(
            "({...window.__consoleCounts, now: digiclinicConsole.connections()})"
        )
        return result

    async def decoded(self, index: int, participant_id: str) -> int:
        stats = await self.js("i => digiclinicConsole.inbound(i)", index)
        return sum(
            s["framesDecoded"]
            for s in stats
            if s["kind"] == "video" and s["participantId"] == participant_id
        )


@pytest.fixture
async def open_console(chromium: Any, server: RunningServer) -> AsyncIterator[Callable[..., Any]]:
    contexts: list[Any] = []

    async def open_page(
        viewport: tuple[int, int] = (1280, 800),
        locale: str | None = None,
        fragment: dict[str, str] | None = None,
        **query: str,
    ) -> ConsolePage:
        options: dict[str, Any] = {"viewport": {"width": viewport[0], "height": viewport[1]}}
        if locale:
            options["locale"] = locale
        context = await chromium.new_context(**options)
        contexts.append(context)
        await context.add_init_script(COUNTERS)
        page = ConsolePage(await context.new_page(), "console")
        url = str(server.server.make_url(CONSOLE_PAGE)) + "?" + urlencode(query)
        if fragment:  # e.g. {"e2ee": "<key>,<key>"}: never sent to the server
            url += "#" + urlencode(fragment)
        await page.page.goto(url)
        await page.wait_for("window.digiclinicConsole?.ready", what="console ready")
        return page

    try:
        yield open_page
    finally:
        for context in contexts:
            await context.close()


# -- a camera of known native size: 1920x1080 (tests/helpers/fake_camera.py) -----------------


@pytest.fixture(scope="session")
def camera_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = write_y4m(tmp_path_factory.mktemp("fake-camera") / "camera-1080p.y4m")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
async def chromium_1080p(
    browser_requirements: str, loopback_only: bool, camera_file: Path
) -> AsyncIterator[Any]:
    """Chromium whose fake camera is the 1920x1080 Y4M file (loops its frames)."""
    async_api = pytest.importorskip("playwright.async_api")
    playwright = await async_api.async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=browser_requirements,
            headless=True,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera_file}"],
        )
        try:
            yield browser
        finally:
            await browser.close()
    finally:
        await playwright.stop()


async def open_widget_1080p(
    browser: Any, server: RunningServer, room: str, identity: str, role: Role, name: str
) -> WidgetPage:
    """The widget example page (skip the pre-call check) in a browser of its own context."""
    context = await browser.new_context(viewport={"width": 1200, "height": 760})
    page = WidgetPage(await context.new_page(), identity)
    query = urlencode({"token": server.token(room, identity, role, name=name), "skip": "1"})
    await page.page.goto(f"{server.server.make_url(WIDGET_PAGE)}?{query}")
    await page.wait_screen("call")
    return page
