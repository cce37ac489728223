"""Issue 7: VP8 temporal layers from real Chromium are dropped to step down further.

Chromium sends each VP8 simulcast layer with three temporal layers (L1T3:
pictures T0 T2 T1 T2 ...; the fake camera gives 20 fps, so T0 alone is
~5 fps and T0+T1 ~10 fps). An aiortc subscriber decodes the lowest layer
while the server forwards T0 only, then T0+T1, then everything: the frame
rate it decodes follows, and the decoder never fails (the SFU closes the
sequence-number, PictureID and TL0PICIDX holes the dropped pictures leave).

The allocation picks a temporal layer only on a link whose estimate lies
between two of them, which a loopback test cannot hold steady; so the test
narrows the options the DownlinkController may choose from to the lowest
layer's first N temporal layers — the same code path as a weak link, from
the choice onwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from e2ee.frames import encode_key
from sfu.downlink import DownlinkController
from sfu.participant import Role
from tests.browser.test_simulcast_switch import Q, decode_failures
from tests.browser.widget_helpers import (
    FrameLog,
    camera_publisher,
    require_server_simulcast,
    server_producer,
    track_settings,
)
from tests.conftest import RunningServer

OpenConsult = Callable[..., Any]


async def decoded_fps(log: FrameLog, seconds: float) -> float:
    before, start = len(log.sizes), time.monotonic()
    await asyncio.sleep(seconds)
    return (len(log.sizes) - before) / (time.monotonic() - start)


@pytest.mark.parametrize("e2ee", [False, True], ids=["clear", "e2ee"])
async def test_temporal_layers_are_dropped_and_restored_without_decode_errors(
    server: RunningServer,
    open_consult: OpenConsult,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    e2ee: bool,
) -> None:
    """``e2ee``: the same in an end-to-end encrypted room (docs/e2ee.md): the temporal
    layer ids are in the VP8 descriptor, outside the encrypted frame; the aiortc
    subscriber decrypts with the consult key."""
    caplog.set_level(logging.WARNING, logger="aiortc")
    room = f"simulcast-temporal-{e2ee}"
    key = encode_key(1, os.urandom(32)) if e2ee else None
    page, browser_id, camera = await camera_publisher(open_consult, room, e2ee_key=key)
    await require_server_simulcast(page, camera["mid"])

    allowed: dict[str, int | None] = {"temporal": None}  # None: every option
    stock_options = DownlinkController._options

    def options(self: DownlinkController, consumer: Any) -> Any:
        found = stock_options(self, consumer)
        limit = allowed["temporal"]
        if limit is None:
            return found
        return [o for o in found if o.spatial == 0 and o.temporal <= limit]

    monkeypatch.setattr(DownlinkController, "_options", options)

    claims = {"e2ee": "required"} if e2ee else {}
    client = server.client(
        server.token(room, "hw-aiortc", Role.HEALTH_WORKER, **claims), e2ee_key=key
    )
    log: FrameLog | None = None
    try:
        await client.connect()
        await client.join()
        video = await client.wait_for_track(
            lambda t: t.participant_id == browser_id and t.kind == "video", timeout=20
        )
        log = FrameLog(video.track)
        await track_settings(client, video.track_id, *Q)  # the lowest layer, all of it
        await log.wait_size(Q, frames=20, timeout=20)
        producer = server_producer(server, browser_id)
        assert producer is not None
        assert producer.layers[0].rates.temporal_seen == 3, "Chromium's VP8 simulcast is L1T3"

        rates: dict[str, float] = {}
        for name, limit in (("T0", 0), ("T0+T1", 1), ("all", None)):
            allowed["temporal"] = limit
            await asyncio.sleep(1.5)  # the next allocation (every 0.5 s) and its next picture
            rates[name] = await decoded_fps(log, 4.0)
        print(f"decoded frame rate at the lowest layer: {rates}")

        assert rates["all"] >= 12, rates  # the fake camera's 20 fps, give or take a busy box
        assert rates["T0"] <= rates["all"] * 0.4, rates  # ~1/4
        assert rates["T0"] >= 2, rates  # still decoding
        assert rates["T0"] * 1.4 <= rates["T0+T1"] <= rates["all"] * 0.7, rates  # ~1/2
        assert set(log.sizes) == {Q}
        assert decode_failures(caplog) == []
        assert await page.js("digiclinicTest.errors") == []
        if e2ee:  # every frame forwarded decrypted: none dropped
            counts = client.e2ee.counts
            print("e2ee:", counts)
            assert counts.decrypted > 100 and counts.dropped == 0, counts
    finally:
        if log is not None:
            await log.stop()
        await client.leave()
