"""Issue 7: real headless Chromium publishes three-layer simulcast from its fake
camera; an aiortc subscriber receives and decodes each layer as the server
switches it (frame sizes change, no decode errors).

The publisher is the client library's test page (web-client/test/consult.html,
camera asked for at 1280x720: layers q 320x180, h 640x360, f 1280x720). The
subscriber is ``signaling.client.ConsultClient`` in this process; it tells
the server the size at which it "renders" the video with ``track_settings``
(small, medium, large, small again) and the server switches the layer it
forwards, at a keyframe of the new layer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from sfu.participant import Role
from tests.browser.widget_helpers import (
    FrameLog,
    camera_publisher,
    require_server_simulcast,
    server_producer,
    track_settings,
)
from tests.conftest import RunningServer

OpenConsult = Callable[..., Any]

Q, H, F = (320, 180), (640, 360), (1280, 720)


def decode_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("aiortc") and "failed to decode" in r.getMessage()
    ]


async def test_aiortc_subscriber_decodes_each_layer_as_the_server_switches(
    server: RunningServer, open_consult: OpenConsult, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiortc")
    room = "simulcast-switch"
    page, browser_id, camera = await camera_publisher(open_consult, room)
    await require_server_simulcast(page, camera["mid"])
    assert [e["rid"] for e in camera["encodings"]] == ["q", "h", "f"], camera

    client = server.client(server.token(room, "hw-aiortc", Role.HEALTH_WORKER))
    log: FrameLog | None = None
    try:
        await client.connect()
        await client.join()
        video = await client.wait_for_track(
            lambda t: t.participant_id == browser_id and t.kind == "video", timeout=20
        )
        assert video.track_id == camera["trackId"]
        log = FrameLog(video.track)
        timeline: list[tuple[str, float, int]] = []
        started = time.monotonic()
        for step, (size, timeout) in enumerate(((Q, 20), (H, 20), (F, 25), (Q, 20))):
            await track_settings(client, video.track_id, *size)
            first = await log.wait_size(size, frames=10, timeout=timeout)
            timeline.append((f"{size[0]}x{size[1]}", round(time.monotonic() - started, 1), first))
            if step == 0:
                # the server really receives the three layers from Chromium (VP8 keyframe sizes)
                producer = server_producer(server, browser_id)
                assert producer is not None and [x.rid for x in producer.layers] == ["q", "h", "f"]
        assert log.sizes[-1] == Q
        # each switch is clean: the frames between two plateaus are of the two sizes only
        # (no garbage sizes), and the decoder never failed
        assert set(log.sizes) <= {Q, H, F}, sorted(set(log.sizes))
        assert decode_failures(caplog) == []
        frames = len(log.sizes)
        await log.wait_size(Q, frames=20, timeout=10)  # and it keeps decoding
        assert len(log.sizes) > frames
        assert await page.js("digiclinicTest.errors") == []
        print(
            f"layer switches (size, seconds, first frame index): {timeline}; "
            f"{len(log.sizes)} frames"
        )
    finally:
        if log is not None:
            await log.stop()
        await client.leave()
