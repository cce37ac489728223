"""Helpers for the widget's browser tests: a consult between two widgets, decoding checks.

``WidgetPage`` and the ``open_widget`` fixture are in conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sfu.participant import Role
from tests.browser.conftest import ConsultPage, OpenWidget, WidgetPage

ROOT = Path(__file__).resolve().parents[2]
WIDGET_DIR = ROOT / "web-client" / "widget"


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


# -- simulcast (tests/browser/test_simulcast_*.py) ----------------------------------

PAGE_SDP_JS = """() => {
  const pc = digiclinicTest.session.publisherPc;
  return {offer: pc?.localDescription?.sdp ?? "", answer: pc?.remoteDescription?.sdp ?? ""};
}"""

CAMERA_JS = """() => {
  const s = digiclinicTest.session;
  const entry = [...s.published.values()].find(e => e.source === "camera");
  return entry ? {trackId: entry.trackId, mid: entry.mid, simulcast: entry.simulcast,
                  encodings: s.sendEncodings(entry.trackId)} : null;
}"""


def media_section(sdp: str, mid: str) -> list[str]:
    """The lines of the m-section ``a=mid:<mid>`` of an SDP."""
    for section in sdp.replace("\r\n", "\n").split("\nm=")[1:]:
        lines = section.split("\n")
        if f"a=mid:{mid}" in lines:
            return lines
    return []


def simulcast_line(sdp: str, mid: str) -> str | None:
    return next((x for x in media_section(sdp, mid) if x.startswith("a=simulcast:")), None)


async def camera_publisher(
    open_consult: Callable[..., Any],
    room: str,
    identity: str = "dr-chromium",
    e2ee_key: str | None = None,
    **query: str,
) -> tuple[ConsultPage, str, dict[str, Any]]:
    """A library test page publishing the fake camera (1280x720 unless ``video=``).

    ``e2ee_key``: in an end-to-end encrypted room (required), with that consult key.
    Returns the page, its participant id and its camera (track id, mid, encodings).
    """
    e2ee: dict[str, Any] = {"e2ee": "required", "fragment": {"e2ee": e2ee_key}} if e2ee_key else {}
    page = await open_consult(
        room,
        identity,
        Role.SPECIALIST,
        name="Dr. Chromium",
        query={"video": "1280x720", **query},
        **e2ee,
    )
    participant_id = await page.participant_id()
    await page.wait_for("['published', 'failed'].includes(digiclinicTest.state)", what="published")
    assert await page.js("digiclinicTest.state") == "published", await page.dump()
    camera: dict[str, Any] = await page.js(CAMERA_JS)
    assert camera is not None, await page.dump()
    return page, participant_id, camera


async def require_server_simulcast(page: ConsultPage, mid: str) -> dict[str, str]:
    """The publisher's offer and answer; skips unless the server accepted simulcast on ``mid``."""
    sdp: dict[str, str] = await page.js(PAGE_SDP_JS)
    if simulcast_line(sdp["answer"], mid) is None:
        pytest.skip(
            "server side of issue 7 missing: the publish answer has no a=simulcast:recv "
            "(the server does not accept rid-based simulcast yet)"
        )
    return sdp


async def track_settings(
    client: Any, track_id: str, width: int, height: int, pinned: bool | None = None
) -> None:
    """``ConsultClient.track_settings`` when it exists, else the raw message."""
    helper = getattr(client, "track_settings", None)
    if helper is not None:
        await helper(track_id, width, height, pinned)
        return
    message: dict[str, Any] = {
        "type": "track_settings",
        "track_id": track_id,
        "width": width,
        "height": height,
    }
    if pinned is not None:
        message["pinned"] = pinned
    await client.request(message)


class FrameLog:
    """Decodes a remote video track and keeps the size of every frame, in order."""

    def __init__(self, track: Any) -> None:
        self.track = track
        self.sizes: list[tuple[int, int]] = []
        self._progress = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            while True:
                frame = await self.track.recv()
                self.sizes.append((frame.width, frame.height))
                self._progress.set()

    @property
    def last(self) -> tuple[int, int] | None:
        return self.sizes[-1] if self.sizes else None

    async def wait_size(
        self, size: tuple[int, int], frames: int = 10, timeout: float = 20.0
    ) -> int:
        """Wait until ``frames`` frames in a row have ``size``; returns the index of the first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            run = 0
            for w_h in reversed(self.sizes):
                if w_h != size:
                    break
                run += 1
            if run >= frames:
                return len(self.sizes) - run
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = sorted(set(self.sizes[-200:]))
                raise AssertionError(f"no {frames} frames of {size} in a row; last sizes {seen}")
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(remaining, 1.0))

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def server_producer(server: Any, participant_id: str, source: str = "camera") -> Any:
    """The server's Producer of that participant's track (None if not there yet)."""
    for room in server.rooms.rooms.values():
        for producer in room.producers():
            owner = getattr(producer, "participant_id", None) or str(producer.id).split(":")[0]
            if (
                owner == participant_id
                and str(getattr(producer.source, "value", producer.source)) == source
            ):
                return producer
    return None
