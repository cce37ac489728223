"""Issue 7: the client library publishes the camera as rid-based simulcast.

Real headless Chromium (fake camera), web-client/test/consult.html:

- at 1280x720 the publish offer carries ``a=rid:q/h/f send`` and
  ``a=simulcast:send q;h;f`` (lowest first), the sender's encodings are
  1/4, 1/2 and full resolution, and the server receives the three layers
  (its Producer's layers, sizes from the VP8 keyframes) while two aiortc
  subscribers need them;
- a 640x360 camera gets two layers (q, h at 1/2 and full), ``simulcast=0``
  one plain encoding, and a screen share one encoding with
  ``contentHint = "detail"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sfu.participant import Role
from tests.browser.widget_helpers import (
    PAGE_SDP_JS,
    FrameLog,
    camera_publisher,
    media_section,
    require_server_simulcast,
    server_producer,
    simulcast_line,
    track_settings,
)
from tests.conftest import RunningServer

OpenConsult = Callable[..., Any]

OUTBOUND_JS = """async () => (await digiclinicTest.stats()).outbound
  .filter(o => o.kind === "video" && o.rid)
  .map(o => ({rid: o.rid, width: o.frameWidth, height: o.frameHeight, frames: o.framesEncoded}))"""


async def test_camera_offer_has_three_rids_and_the_server_receives_three_layers(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    room = "simulcast-publish"
    page, browser_id, camera = await camera_publisher(open_consult, room)
    sdp = await page.js(PAGE_SDP_JS)
    # the offer: three rids, lowest first, as the server expects
    lines = media_section(sdp["offer"], camera["mid"])
    assert [x for x in lines if x.startswith("a=rid:")] == [
        "a=rid:q send",
        "a=rid:h send",
        "a=rid:f send",
    ], lines
    assert simulcast_line(sdp["offer"], camera["mid"]) == "a=simulcast:send q;h;f"
    # the audio m-line is untouched
    publish = page.sent_of("publish")[0]
    sources = {t["mid"]: t["source"] for t in publish["tracks"]}
    audio_mid = next(mid for mid, source in sources.items() if source == "microphone")
    assert simulcast_line(sdp["offer"], audio_mid) is None

    await require_server_simulcast(page, camera["mid"])
    assert simulcast_line(sdp["answer"], camera["mid"]) == "a=simulcast:recv q;h;f"
    assert camera["simulcast"] is True
    assert [
        (e["rid"], e["scaleResolutionDownBy"], e["maxBitrate"]) for e in camera["encodings"]
    ] == [
        ("q", 4, 150_000),
        ("h", 2, 500_000),
        ("f", 1, 1_500_000),
    ], camera

    # two aiortc subscribers: one renders it at 640x360, one at 1280x720, so the
    # server needs every layer (the lowest is always sent)
    clients = [
        server.client(server.token(room, f"viewer-{i}", Role.HEALTH_WORKER)) for i in range(2)
    ]
    logs: list[FrameLog] = []
    try:
        for client, size in zip(clients, ((640, 360), (1280, 720)), strict=True):
            await client.connect()
            await client.join()
            video = await client.wait_for_track(
                lambda t: t.participant_id == browser_id and t.kind == "video", timeout=20
            )
            logs.append(FrameLog(video.track))
            await track_settings(client, video.track_id, *size)

        expected = {"q": (320, 180), "h": (640, 360), "f": (1280, 720)}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        seen: dict[str, Any] = {}
        while True:
            producer = server_producer(server, browser_id)
            assert producer is not None
            seen = {
                layer.rid: {
                    "size": (layer.width, layer.height),
                    "packets": layer.stream.packets if layer.stream else 0,
                    "ssrc": layer.ssrc,
                }
                for layer in producer.layers
            }
            if all(
                seen.get(rid, {}).get("size") == size and seen[rid]["packets"] > 50
                for rid, size in expected.items()
            ):
                break
            assert loop.time() < deadline, f"server layers: {seen}"
            await asyncio.sleep(0.5)
        assert list(seen) == ["q", "h", "f"]
        assert len({v["ssrc"] for v in seen.values()}) == 3  # three SSRCs, latched by rid

        # Chromium's own view: three encodings at the three sizes, all encoding
        outbound = {o["rid"]: o for o in await page.js(OUTBOUND_JS)}
        assert {rid: (o["width"], o["height"]) for rid, o in outbound.items()} == expected, outbound
        await logs[1].wait_size((1280, 720), frames=5, timeout=30)
        print(f"server layers: {seen}; Chromium outbound: {outbound}")
    finally:
        for log in logs:
            await log.stop()
        for client in clients:
            await client.leave()


async def test_small_camera_two_layers_no_simulcast_option_and_screen_share(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    # a 640x360 camera: two layers, q at half and h at full resolution
    small, _, camera = await camera_publisher(
        open_consult, "simulcast-small", "dr-small", video="640x360"
    )
    offer = (await small.js(PAGE_SDP_JS))["offer"]
    assert simulcast_line(offer, camera["mid"]) == "a=simulcast:send q;h"
    assert [
        (e["rid"], e["scaleResolutionDownBy"])
        for e in await small.js(
            "() => digiclinicTest.session.sendEncodings(digiclinicTest.published"
            ".find(t => t.source === 'camera').trackId)"
        )
    ][:2] in ([("q", 2), ("h", 1)], [("q", 1)]), camera  # [("q", 1)]: a server without simulcast

    # simulcast: false -> one plain encoding; a screen share: one encoding, contentHint detail
    plain, _, camera = await camera_publisher(
        open_consult, "simulcast-off", "dr-plain", simulcast="0"
    )
    offer = (await plain.js(PAGE_SDP_JS))["offer"]
    assert not [
        x for x in media_section(offer, camera["mid"]) if x.startswith(("a=rid", "a=simul"))
    ]
    assert [e["rid"] for e in camera["encodings"]] == [None], camera
    shared = await plain.js(
        """async () => {
            const s = digiclinicTest.session;
            const stream = await navigator.mediaDevices.getDisplayMedia({video: true});
            const [entry] = await s.publish(stream, {screen: true});
            return {source: entry.source, hint: stream.getVideoTracks()[0].contentHint,
                    encodings: s.sendEncodings(entry.trackId), mid: entry.mid,
                    offer: s.publisherPc.localDescription.sdp};
        }"""
    )
    assert shared["source"] == "screen_share" and shared["hint"] == "detail", shared
    assert [e["rid"] for e in shared["encodings"]] == [None], shared
    assert not [
        x
        for x in media_section(shared["offer"], shared["mid"])
        if x.startswith(("a=rid", "a=simul"))
    ]
    assert await plain.js("digiclinicTest.errors") == []
    assert await small.js("digiclinicTest.errors") == []
