"""A consult between two real Chromium widgets, one of them behind a capped link.

    async with BrowserConsult(patient_rate_bps=250_000) as consult:
        await consult.start()                      # specialist admits patient, media both ways
        await consult.record(60, phases=[Phase(30, 60_000)])
        consult.samples                             # one Sample per side per second

Topology (every address is one this rig creates; nothing else is touched):

    [clinic netns: specialist's Chromium] --veth, uncapped-- [root: server]
    [root: server] --veth, tbf both ways-- [patient netns: patient's Chromium]

The server runs as its own process (``digiclinic serve``) in the root
namespace, listening on the two veth root-end addresses (HTTP, WebSocket
and ICE). Each browser runs in its own namespace (tests/helpers/
chromium_netns.py), so it offers only its veth address as a candidate. The
patient's veth is capped with ``tbf`` at both ends (its upload and its
download, as on a rural link); signalling crosses the same cap as media.

Every second the rig reads, on both pages, what a person experiences:
inbound video (frames decoded, fps, size, freezes), inbound audio (loss,
concealment), the outbound camera (Chrome's own uplink estimate and
layers), the remote tile's text and state, and the widget's reconnections;
plus every signalling message each page received, with its arrival time.
The figures are derived in benchmarks/browser_link_metrics.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from benchmarks.server_process import ServerProcess
from sfu.participant import Role
from signaling.config import Secret
from signaling.tokens import mint_token
from tests.helpers.chromium_netns import chromium_in_namespace
from tests.helpers.netns_link import NetnsLink, netns_link
from tests.helpers.ns_bridge import NamespaceBridge, loopback_namespace
from tests.helpers.udp_relay import LinkSettings

WIDGET_PAGE = "/client/widget/example.html"
TBF_BURST = 4096  # bytes: `tbf rate R burst 4kb latency 300ms`, as the field report
TBF_LATENCY_MS = 300.0
SATELLITE_PORTS = 40  # the server's media port range on the satellite path (one bridge socket each)

SAMPLE_JS = """async () => {
  const w = window.widgetTest, el = w?.element, s = el?.session;
  const out = {screen: el?.screen ?? null, session: s?.state ?? null,
               reconnects: (w?.events ?? []).filter(e => e.type === 'reconnecting').length,
               reconnect_reasons: (w?.events ?? []).filter(e => e.type === 'reconnecting')
                 .map(e => e.detail?.reason ?? null),
               video: null, audio: null, out: [], uplink_bps: null, tile: null, header: null};
  if (!s) return out;
  const remote = [...(s.remoteTracks?.values() ?? [])];
  const byMid = new Map(remote.map(t => [t.mid, t]));
  const pick = (r) => byMid.get(r.mid);
  for (const r of (await s.subscriberPc?.getStats())?.values() ?? []) {
    if (r.type !== 'inbound-rtp') continue;
    const t = pick(r);
    if (!t) continue;
    if (r.kind === 'video' && t.source === 'camera') {
      out.video = {participant: t.participantId, framesDecoded: r.framesDecoded ?? 0,
        fps: r.framesPerSecond ?? 0, width: r.frameWidth ?? 0, height: r.frameHeight ?? 0,
        freezeCount: r.freezeCount ?? 0, freezeSeconds: r.totalFreezesDuration ?? 0,
        packetsLost: r.packetsLost ?? 0, packetsReceived: r.packetsReceived ?? 0,
        bytes: r.bytesReceived ?? 0, nacks: r.nackCount ?? 0, plis: r.pliCount ?? 0,
        keyframes: r.keyFramesDecoded ?? 0, dropped: r.framesDropped ?? 0};
    } else if (r.kind === 'audio' && t.source === 'microphone') {
      out.audio = {packetsLost: r.packetsLost ?? 0, packetsReceived: r.packetsReceived ?? 0,
        concealed: r.concealedSamples ?? 0, silentConcealed: r.silentConcealedSamples ?? 0,
        samples: r.totalSamplesReceived ?? 0, bytes: r.bytesReceived ?? 0};
    }
  }
  for (const r of (await s.publisherPc?.getStats())?.values() ?? []) {
    if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
      out.uplink_bps = r.availableOutgoingBitrate ?? null;
    } else if (r.type === 'outbound-rtp' && r.kind === 'video') {
      out.out.push({rid: r.rid ?? null, active: r.active ?? null, width: r.frameWidth ?? 0,
        height: r.frameHeight ?? 0, fps: r.framesPerSecond ?? 0, bytes: r.bytesSent ?? 0,
        limitation: r.qualityLimitationReason ?? null, nacks: r.nackCount ?? 0,
        plis: r.pliCount ?? 0, resent: r.retransmittedPacketsSent ?? 0});
    }
  }
  const root = el.shadowRoot;
  const other = remote.find(t => t.kind === 'video' && t.source === 'camera')?.participantId;
  const tile = other && root?.querySelector(
    `.dc-tile[data-participant="${other}"][data-kind="camera"]`);
  if (tile) {
    const badge = tile.querySelector('.dc-quality');
    out.tile = {text: tile.textContent.trim().slice(0, 200), classes: tile.className,
                level: badge?.dataset.level ?? null,
                label: badge?.getAttribute('aria-label') ?? null};
  }
  return out;
}"""


WATCH_JS = """(texts) => {
  window.__dcTextSeen = {};
  setInterval(() => {
    const text = window.widgetTest?.element?.shadowRoot?.textContent ?? '';
    for (const key of texts) {
      if (!(key in window.__dcTextSeen) && text.includes(key)) {
        window.__dcTextSeen[key] = performance.now();
      }
    }
  }, 100);
  return performance.now();
}"""


@dataclass(frozen=True)
class Phase:
    """From ``at`` s into the recording, the patient link carries ``rate_bps`` (None: no cap)."""

    at: float
    rate_bps: float | None


@dataclass
class Sample:
    t: float  # seconds since recording started
    side: str  # "specialist" | "patient"
    rate_bps: float | None  # the patient link's cap at that moment
    data: dict[str, Any]


@dataclass
class Side:
    name: str
    namespace: str
    host: str  # where this browser reaches the server (HTTP, WebSocket, media)
    link: NetnsLink | None = None  # its veth, when it has one (not on the satellite path)
    page: Any = None
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    page_offset: float = 0.0  # this rig's clock minus the page's performance.now(), s
    text_seen: dict[str, float] = field(default_factory=dict)  # watched text -> first seen

    def watch(self, page: Any, clock: Any) -> None:
        self.page = page

        def on_ws(ws: Any) -> None:
            def on_frame(payload: Any) -> None:
                with contextlib.suppress(ValueError, TypeError):
                    message = json.loads(payload)
                    if isinstance(message, dict):
                        self.messages.append((clock(), message))

            ws.on("framereceived", on_frame)

        page.on("websocket", on_ws)
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: self.console.append(f"pageerror: {err}"))


class BrowserConsult:
    """Server process + two namespaces + two Chromium widgets; see the module docstring."""

    def __init__(
        self,
        patient_rate_bps: float | None = None,
        server_config: dict[str, Any] | None = None,
        room: str = "weak-link",
        audio_only_patient: bool = False,
        satellite: LinkSettings | None = None,
        e2ee_key: str | None = None,
    ) -> None:
        self.patient_rate_bps = patient_rate_bps
        self.e2ee_key = e2ee_key  # an end-to-end encrypted consult (docs/e2ee.md), else None
        self.satellite = satellite  # the patient's path through tests/helpers/ns_bridge.py
        self.bridge: NamespaceBridge | None = None
        self.server_config = server_config or {}
        self.room = room
        self.audio_only_patient = audio_only_patient
        self.samples: list[Sample] = []
        self.link_samples: list[dict[str, Any]] = []  # the patient's veth, once a second
        self.rate_bps = patient_rate_bps
        self._t0 = time.monotonic()
        self._stack = contextlib.AsyncExitStack()
        self.server: ServerProcess | None = None
        self.clinic: Side | None = None
        self.patient: Side | None = None

    def clock(self) -> float:
        return time.monotonic() - self._t0

    async def __aenter__(self) -> BrowserConsult:
        try:
            await self._setup()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _setup(self) -> None:
        from playwright.async_api import async_playwright  # noqa: PLC0415 - optional dependency

        stack = self._stack
        clinic_link = stack.enter_context(netns_link())
        self.clinic = Side("specialist", clinic_link.ns_name, clinic_link.root_addr, clinic_link)
        config = {**self.server_config}
        config["server"] = {**config.get("server", {}), "host": "0.0.0.0"}
        media = {**config.get("media", {})}
        if self.satellite is None:
            patient_link = stack.enter_context(netns_link())
            links = [clinic_link, patient_link]
            self.patient = Side(
                "patient", patient_link.ns_name, patient_link.root_addr, patient_link
            )
            self.set_patient_rate(self.patient_rate_bps)
        else:  # a loopback-only namespace: every packet crosses the user-space bridge
            links = [clinic_link]
            namespace = stack.enter_context(loopback_namespace())
            self.patient = Side("patient", namespace, "127.0.0.1")
            low = 46000 + os.getpid() % 40 * 100
            # the bridge relays a known range of ports: a socket per connection
            media["udp_mode"] = "port_range"
            media["udp_port_min"], media["udp_port_max"] = low, low + SATELLITE_PORTS - 1
        for link in links:
            # no IPv6 link-local address appearing a second later: Chromium aborts
            # page loads with ERR_NETWORK_CHANGED when its interfaces change
            for conf in ("all", "default", link.ns_if):
                link.run(["sysctl", "-qw", f"net.ipv6.conf.{conf}.disable_ipv6=1"])
        media["ice_addresses"] = [side.host for side in (self.clinic, self.patient)]
        config["media"] = media
        self.server = ServerProcess(config=config)
        await self.server.start()
        stack.callback(self.server.stop)
        if self.satellite is not None:
            ports = range(media["udp_port_min"], media["udp_port_max"] + 1)
            self.bridge = NamespaceBridge(
                self.patient.namespace, ports, self.server.port, self.satellite, self.satellite
            )
            await self.bridge.start()
            stack.push_async_callback(self.bridge.close)
        playwright = await async_playwright().start()
        stack.push_async_callback(playwright.stop)
        for side in (self.clinic, self.patient):
            origin = self._origin(side)
            loopback = side.link is None  # its only candidates are 127.0.0.1
            browser = await stack.enter_async_context(
                chromium_in_namespace(playwright, side.namespace, [origin], loopback=loopback)
            )
            context = await browser.new_context(viewport={"width": 1200, "height": 760})
            page = await context.new_page()
            side.watch(page, self.clock)

    def _origin(self, side: Side) -> str:
        assert self.server is not None
        return f"http://{side.host}:{self.server.port}"

    def set_patient_rate(self, rate_bps: float | None) -> None:
        """Cap (or uncap) the patient's link in both directions."""
        assert self.patient is not None and self.patient.link is not None
        for end in ("root", "ns"):
            self.patient.link.set_rate(
                end,
                rate_bps,
                burst_bytes=TBF_BURST if rate_bps else None,
                latency_ms=TBF_LATENCY_MS,
            )
        self.rate_bps = rate_bps

    def token(self, identity: str, role: Role, name: str) -> str:
        assert self.server is not None
        secret = Secret(self.server.secret_file.read_text().strip())
        e2ee = "required" if self.e2ee_key else None
        return mint_token(
            secret, room=self.room, identity=identity, role=role, name=name, ttl=3600, e2ee=e2ee
        )

    async def _open(self, side: Side, identity: str, role: Role, name: str, **query: str) -> None:
        params = {"token": self.token(identity, role, name), "skip": "1", **query}
        url = f"{self._origin(side)}{WIDGET_PAGE}?{urlencode(params)}"
        if self.e2ee_key:  # the consult key in the fragment: never sent to the server
            url += "#" + urlencode({"e2ee": self.e2ee_key})
        for attempt in range(3):
            await side.page.goto(url)
            try:
                await self.wait_for(side, "Boolean(window.widgetTest?.element)", 5)
                return
            except AssertionError:
                if attempt == 2:
                    raise
                await asyncio.sleep(1)

    async def wait_for(self, side: Side, expression: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await side.page.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{side.name}: timed out waiting for {expression}\n{self.dump(side)}"
                )
            await asyncio.sleep(0.25)

    def dump(self, side: Side) -> str:
        return "\n".join(side.console[-30:])

    async def start(self, timeout: float = 45.0) -> None:
        """The specialist joins, the patient joins and is admitted, video flows both ways."""
        assert self.clinic is not None and self.patient is not None
        await self._open(self.clinic, "dr-okafor", Role.SPECIALIST, "Dr. Okafor")
        await self.wait_for(self.clinic, "widgetTest.element?.screen === 'call'", timeout)
        query = {"audioOnly": "1"} if self.audio_only_patient else {}
        await self._open(self.patient, "patient-amina", Role.PATIENT, "Amina Uwase", **query)
        await self.wait_for(self.patient, "widgetTest.element?.screen === 'lobby'", timeout)
        admit = self.clinic.page.locator(
            'digiclinic-consult button[aria-label="Admit Amina Uwase"]'
        )
        await admit.wait_for(timeout=timeout * 1000)
        await admit.click()
        await self.wait_for(self.patient, "widgetTest.element?.screen === 'call'", timeout)
        self._t0 = time.monotonic()

    async def sample(self) -> None:
        assert self.clinic is not None and self.patient is not None
        t = self.clock()
        for side in (self.clinic, self.patient):
            try:
                data = await side.page.evaluate(SAMPLE_JS)
            except Exception as exc:  # the page may be navigating or reconnecting
                data = {"error": str(exc)[:200]}
            self.samples.append(Sample(t, side.name, self.rate_bps, data))
        if self.patient.link is not None:
            self.link_samples.append({"t": round(t, 2), **self._patient_link_state()})

    def _patient_link_state(self) -> dict[str, Any]:
        """The capped link's queues (tbf drops each way) and the patient's WebSocket TCP.

        ``ss -ti`` on the server's side of the patient's signalling connection:
        its retransmission timer, retransmissions and unacknowledged segments say
        whether our own media starved it (item 3 of the weak-link issue).
        """
        assert self.patient is not None and self.patient.link is not None
        assert self.server is not None
        link = self.patient.link
        state: dict[str, Any] = {
            "drops_down": link.qdisc_drops("root"),
            "drops_up": link.qdisc_drops("ns"),
        }
        ss = subprocess.run(
            [
                "ss",
                "-tinH",
                "state",
                "established",
                f"( sport = :{self.server.port} )",
                "dst",
                link.ns_addr,
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        state["tcp"] = [" ".join(line.split()) for line in ss.splitlines() if line.strip()]
        return state

    async def watch_texts(self, texts: tuple[str, ...]) -> None:
        """From now on, note (within 0.1 s) when each of ``texts`` first shows in each widget.

        The page is read only once a second by ``sample``; these times are
        finer. They land in ``Side.text_seen`` (seconds on this rig's clock).
        """
        assert self.clinic is not None and self.patient is not None
        for side in (self.clinic, self.patient):
            before = self.clock()
            page_now = await side.page.evaluate(WATCH_JS, list(texts))
            side.page_offset = (before + self.clock()) / 2 - page_now / 1000

    async def texts_seen(self) -> None:
        assert self.clinic is not None and self.patient is not None
        for side in (self.clinic, self.patient):
            seen = await side.page.evaluate("window.__dcTextSeen ?? {}")
            side.text_seen = {key: at / 1000 + side.page_offset for key, at in seen.items()}

    async def record(self, seconds: float, phases: list[Phase] | None = None) -> None:
        """Sample both sides every second for ``seconds``, changing the cap at each phase."""
        start = self.clock()
        pending = sorted(phases or [], key=lambda p: p.at)
        next_sample = start
        while self.clock() < start + seconds:
            now = self.clock()
            while pending and now - start >= pending[0].at:
                self.set_patient_rate(pending.pop(0).rate_bps)
            if now >= next_sample:
                await self.sample()
                next_sample += 1.0
            await asyncio.sleep(0.05)
        await self.texts_seen()

    async def server_metrics(self) -> str:
        assert self.server is not None
        import aiohttp  # noqa: PLC0415

        async with aiohttp.ClientSession() as http, http.get(f"{self.server.url}/metrics") as resp:
            return await resp.text()
