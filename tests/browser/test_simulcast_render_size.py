"""Issue 7 in the widget: render-size reporting, pin, the weak-connection pause
message and the quality indicator, in real headless Chromium.

An aiortc health worker publishes a 640x360 camera; a specialist's widget
(web-client/widget/example.html, 1200x760 viewport at devicePixelRatio 2)
shows it in a tile of a two-tile grid.
The widget's WebSocket frames (Playwright ``page.on("websocket")``) show:

- ``track_settings`` with the tile's size in device pixels, ``pinned: false``;
- a larger size with ``pinned: true`` once the tile is pinned (pin button,
  mouse), the small size again once unpinned (keyboard, focus kept);
- ``0x0`` in audio-only mode, and a size again after it;
- a ``track_paused`` with reason ``bandwidth`` shows "Video paused: weak
  connection" on the tile (the last picture stays, and so does its size
  report) until the server resumes it;
- the tile's quality indicator says what the server's ``quality`` events say
  ("Receiving 360p · N kbps").

The widget itself publishes its camera (1280x720) as simulcast q;h;f.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from sfu.media import Source
from sfu.participant import Role
from signaling.demo_media import CameraTrack, ToneTrack
from tests.browser.conftest import OpenWidget, WidgetPage
from tests.browser.widget_helpers import media_section, simulcast_line, wait_video_element
from tests.conftest import RunningServer

RENDERED_JS = """async (trackId) => {
  const { renderedSize } = await import('/client/client/render-size.js');
  const video = widgetTest.element.shadowRoot.querySelector(`video[data-track-id="${trackId}"]`);
  return video ? renderedSize(video) : null;
}"""


def settings_of(page: WidgetPage, track_id: str) -> list[dict[str, Any]]:
    return [m for m in page.sent_of("track_settings") if m.get("track_id") == track_id]


async def wait_settings(
    page: WidgetPage, track_id: str, ok: Any, what: str, timeout: float = 15
) -> dict[str, Any]:
    """The latest track_settings the page sent for ``track_id`` satisfies ``ok``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        sent = settings_of(page, track_id)
        if sent and ok(sent[-1]):
            return sent[-1]
        if loop.time() > deadline:
            raise AssertionError(f"no track_settings {what}: {sent}\n{await page.dump()}")
        await asyncio.sleep(0.2)


def tile(participant_id: str) -> str:
    return f'.dc-tile[data-participant="{participant_id}"][data-kind="camera"]'


async def test_widget_reports_render_size_pin_pause_message_and_quality(
    server: RunningServer, open_widget: OpenWidget
) -> None:
    room = "simulcast-render-size"
    nurse = server.client(server.token(room, "hw-aiortc", Role.HEALTH_WORKER, name="Nurse Aline"))
    try:
        await nurse.connect()
        await nurse.join()
        await nurse.publish(
            [(ToneTrack(), Source.MICROPHONE), (CameraTrack(640, 360), Source.CAMERA)]
        )
        nurse_id = nurse.participant_id
        assert nurse_id is not None

        doctor = await open_widget(room, "dr-okafor", Role.SPECIALIST, device_scale_factor=2)
        await doctor.wait_screen("call")
        await wait_video_element(doctor, nurse_id)
        camera_id: str = await doctor.wait_for(
            f"widgetTest.element.call.people.get({nurse_id!r})?.camera?.trackId", what="camera id"
        )
        assert await doctor.js("devicePixelRatio") == 2
        # the picture's box in CSS pixels: the whole <video> width, or less when the
        # tile is wider than 16:9 (object-fit: contain, bars at the sides)
        css_width = await doctor.js(
            f"""(() => {{
                const v = widgetTest.element.shadowRoot.querySelector(
                    'video[data-track-id="{camera_id}"]');
                return Math.min(v.clientWidth, v.clientHeight * v.videoWidth / v.videoHeight);
            }})()"""
        )

        # 1. the tile's size, reported once it settled (debounced), in device pixels
        small = await wait_settings(
            doctor, camera_id, lambda m: m["width"] > 0 and m["height"] > 0, "with a size"
        )
        await asyncio.sleep(0.8)  # nothing more while nothing changes
        small = settings_of(doctor, camera_id)[-1]
        assert small["pinned"] is False, small
        rendered = await doctor.js(RENDERED_JS, camera_id)
        assert (small["width"], small["height"]) == (rendered["width"], rendered["height"])
        assert abs(small["width"] - 2 * css_width) <= 2, (small, css_width)  # device pixels
        assert abs(small["width"] / small["height"] - 16 / 9) < 0.05, small  # fitted, not the box
        count = len(settings_of(doctor, camera_id))
        await asyncio.sleep(1)
        assert len(settings_of(doctor, camera_id)) == count  # only real changes are sent

        # 2. pin with the mouse: the tile moves to the spotlight, larger, pinned
        await doctor.shadow(f"{tile(nurse_id)} button.dc-pin").click()
        pinned = await wait_settings(
            doctor,
            camera_id,
            lambda m: m["pinned"] and m["width"] > small["width"],
            "pinned, larger",
        )
        assert pinned["width"] > 1.3 * small["width"], (small, pinned)
        assert await doctor.shadow(f".dc-spotlight {tile(nurse_id)}").count() == 1
        pin_button = doctor.shadow(f"{tile(nurse_id)} button.dc-pin")
        assert await pin_button.get_attribute("aria-pressed") == "true"
        assert await pin_button.get_attribute("aria-label") == "Unpin the video of Nurse Aline"
        await doctor.screenshot("widget-simulcast-pinned.png")

        # 3. unpin with the keyboard (Enter on the focused button): small again, focus kept
        await pin_button.focus()
        await doctor.page.keyboard.press("Enter")
        unpinned = await wait_settings(doctor, camera_id, lambda m: not m["pinned"], "unpinned")
        await wait_settings(
            doctor,
            camera_id,
            lambda m: not m["pinned"] and m["width"] == small["width"],
            "small again",
        )
        assert unpinned["width"] < pinned["width"]
        focused = await doctor.js(
            "widgetTest.element.shadowRoot.activeElement?.dataset.pin ?? null"
        )
        assert focused == nurse_id
        assert await doctor.shadow(f".dc-tiles {tile(nurse_id)}").count() == 1

        # 4. audio-only mode: the video is not shown, 0x0; back to a size after it
        await doctor.shadow('button[data-action="audio-only"]').click()
        await wait_settings(doctor, camera_id, lambda m: m["width"] == m["height"] == 0, "0x0")
        await doctor.shadow('button[data-action="audio-only"]').click()
        await wait_settings(doctor, camera_id, lambda m: m["width"] > 0, "a size after audio-only")

        # 5. the server pauses the video for bandwidth (injected through the library's
        #    dispatch: a real pause needs a starved link): message, last picture kept
        inject = """(msg) => widgetTest.element.session._onMessage(JSON.stringify(msg))"""
        await doctor.js(
            inject,
            {"type": "track_paused", "track_id": camera_id, "paused": True, "reason": "bandwidth"},
        )
        note = doctor.shadow(f"{tile(nurse_id)} .dc-note")
        await note.wait_for(timeout=5000)
        assert await note.inner_text() == "Video paused: weak connection"
        assert await doctor.shadow(f"{tile(nurse_id)}.dc-paused video").count() == 1
        status = await doctor.shadow(".dc-status").inner_text()
        assert status == "Video of Nurse Aline paused: weak connection", status
        sent_before = len(settings_of(doctor, camera_id))
        await asyncio.sleep(0.8)
        assert all(m["width"] > 0 for m in settings_of(doctor, camera_id)[sent_before - 1 :])
        await doctor.screenshot("widget-simulcast-paused-weak.png")
        await doctor.js(
            inject,
            {"type": "track_paused", "track_id": camera_id, "paused": False, "reason": "bandwidth"},
        )
        await doctor.wait_for(
            f"!widgetTest.element.shadowRoot.querySelector('{tile(nurse_id)} .dc-note')",
            what="pause message removed",
        )
        assert await doctor.shadow(".dc-status").inner_text() == "The video of Nurse Aline is back"

        # 6. the quality indicator follows the server's `quality` events
        def quality_heights() -> set[int]:
            return {
                t["height"]
                for m in doctor.ws_received
                if m.get("type") == "quality"
                for t in m.get("tracks", [])
                if t.get("track_id") == camera_id and not t.get("paused")
            }

        label: str = await doctor.wait_for(
            f"""(() => {{
                const root = widgetTest.element.shadowRoot;
                const q = root.querySelector('{tile(nurse_id)} .dc-quality');
                const label = q?.getAttribute('aria-label') ?? '';
                return label.includes('Receiving') ? label : null;
            }})()""",
            what="quality indicator with the server's view",
        )
        match = re.search(r"Receiving (\d+)p · (\d+) kbps", label)
        assert match, label
        assert int(match.group(1)) in quality_heights(), (label, quality_heights())
        badge = doctor.shadow(f"{tile(nurse_id)} .dc-quality")
        assert await badge.get_attribute("title") == label
        assert label.startswith("Connection "), label
        estimate = await doctor.js(
            "widgetTest.element.shadowRoot.querySelector('.dc-header-info .dc-quality').title"
        )
        assert re.search(r"Download estimate \d+ kbps", estimate), estimate

        # the widget publishes its own 1280x720 camera as three layers
        publish = doctor.sent_of("publish")[0]
        camera_mid = next(t["mid"] for t in publish["tracks"] if t["source"] == "camera")
        assert simulcast_line(publish["sdp"], camera_mid) == "a=simulcast:send q;h;f"
        assert (
            len([x for x in media_section(publish["sdp"], camera_mid) if x.startswith("a=rid")])
            == 3
        )
        assert await doctor.violations() == []
        assert await doctor.errors() == [], json.dumps(await doctor.errors())
        print(
            f"track_settings sent: small {small}, pinned {pinned}; quality label {label!r}; "
            f"header {estimate!r}"
        )
    finally:
        await nurse.leave()
