"""Issue 7 in the specialist's console: render sizes per room, simulcast camera.

Two rooms, an aiortc health worker publishing a 640x360 camera in each. The
console (web-client/console/, real headless Chromium) reports with
``track_settings`` the size at which it shows each room's video: the focused
room's large stage, the room on hold's thumbnail (so the server forwards it
the lowest layer). Switching focus swaps them. The specialist's camera is
published as three simulcast layers in every room (placeholders, then
``replaceTrack`` of the real camera in the focused room).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sfu.media import Source
from sfu.participant import Role
from signaling.client import ConsultClient
from signaling.demo_media import CameraTrack, ToneTrack
from tests.browser.conftest import ConsultPage
from tests.conftest import RunningServer

SIZES_JS = """() => digiclinicConsole.summary().map(r =>
  r.remote.filter(m => m.kind === "video").map(m => ({trackId: m.trackId, size: m.renderSize})))"""

CAMERA_JS = """(i) => {
  const s = digiclinicConsole.rooms[i].session;
  const entry = [...s.published.values()].find(e => e.source === "camera");
  return {trackId: entry.trackId, simulcast: entry.simulcast,
          rids: s.sendEncodings(entry.trackId).map(e => e.rid)};
}"""


async def wait_sizes(
    page: ConsultPage, ok: Callable[[dict[str, Any], dict[str, Any]], bool], what: str
) -> list[dict[str, Any]]:
    """The render size reported for each room's one video, once ``ok(room0, room1)``.

    The sizes must also hold for three samples in a row: the layout settles
    in steps (the first frame's aspect ratio, the sidebar filling in).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    previous: list[dict[str, Any]] | None = None
    steady = 0
    while True:
        rooms = await page.js(SIZES_JS)
        if all(len(videos) == 1 and videos[0]["size"] for videos in rooms):
            sizes = [videos[0] for videos in rooms]
            steady = steady + 1 if sizes == previous else 0
            previous = sizes
            if ok(sizes[0]["size"], sizes[1]["size"]) and steady >= 2:
                return sizes
        if loop.time() > deadline:
            raise AssertionError(f"console render sizes never {what}: {rooms}")
        await asyncio.sleep(0.25)


async def test_console_reports_thumbnail_and_focused_sizes(
    server: RunningServer, open_console: Callable[..., Any]
) -> None:
    rooms = ["hospital-a", "hospital-b"]
    nurses: list[ConsultClient] = []
    try:
        for n, room in enumerate(rooms):
            client = server.client(server.token(room, f"nurse-{n}", Role.HEALTH_WORKER))
            await client.connect()
            await client.join()
            await client.publish(
                [(ToneTrack(), Source.MICROPHONE), (CameraTrack(640, 360), Source.CAMERA)]
            )
            nurses.append(client)
        tokens = ",".join(server.token(room, "dr-console", Role.SPECIALIST) for room in rooms)
        page = await open_console(tokens=tokens)

        # room 1 (focused) is shown large, room 2 (on hold) as a thumbnail
        sizes = await wait_sizes(
            page, lambda a, b: a["width"] > 2 * b["width"] > 0, "focused > 2x held"
        )
        assert all(not s["size"]["pinned"] for s in sizes)
        # the server has the same sizes on the console's consumers
        for room, size in zip(rooms, sizes, strict=True):
            consumers = [
                c
                for p in server.room(room).participants.values()
                for c in p.consumers.values()
                if c.producer.id == size["trackId"]
            ]
            assert [c.render_size for c in consumers] == [
                (size["size"]["width"], size["size"]["height"])
            ], (room, size)

        # key 2: room 2 is focused, room 1 on hold; the sizes follow
        await page.page.keyboard.press("2")
        swapped = await wait_sizes(
            page, lambda a, b: b["width"] > 2 * a["width"] > 0, "swapped after the switch"
        )
        assert swapped[1]["size"]["width"] == sizes[0]["size"]["width"], (sizes, swapped)

        # the specialist's camera: three layers in each room (placeholders, then replaceTrack)
        for index in range(2):
            camera = await page.js(CAMERA_JS, index)
            assert camera["rids"] == ["q", "h", "f"], camera
            if camera["simulcast"]:
                producer = next(
                    p for p in server.room(rooms[index]).producers() if p.id == camera["trackId"]
                )
                assert [layer.rid for layer in producer.layers] == ["q", "h", "f"]
        errors = await page.js("digiclinicConsole.errors")
        assert errors == [], errors
        print(f"render sizes: focused room 1 {sizes}; after the switch {swapped}")
    finally:
        for client in nurses:
            await client.leave()
