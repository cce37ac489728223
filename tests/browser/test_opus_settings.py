"""media.opus_max_bitrate_kbps and media.opus_ptime_ms reach Chromium's Opus encoder.

For sites on links under ~100 kbit/s the server can ask every publisher for
less audio: the answer's Opus fmtp carries ``maxaveragebitrate`` and
``ptime``. Chromium's encoder honours both; an aiortc subscriber decodes
the 40 ms frames it forwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sfu.participant import Role
from signaling.demo_media import TrackReader
from tests.browser.conftest import ConsultPage
from tests.conftest import RunningServer

OpenConsult = Callable[..., Any]


@pytest.fixture
async def server(  # overrides the browser conftest's: same namespace, other media settings
    loopback_only: bool, server_factory: Callable[..., Any]
) -> AsyncIterator[RunningServer]:
    yield await server_factory(
        media={
            "opus_max_bitrate_kbps": 16,
            "opus_ptime_ms": 40,
            "opus_dtx": False,  # a steady rate to measure
            "opus_red": False,  # Opus bytes alone
        }
    )


async def audio_sent(page: ConsultPage) -> dict[str, Any]:
    return next(s for s in (await page.stats())["outbound"] if s["kind"] == "audio")


async def test_chromium_encodes_opus_as_the_server_asks(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    room = "opus-settings"
    page = await open_consult(room, "dr-opus", Role.SPECIALIST)
    await page.wait_for("digiclinicTest.state === 'published'", what="published")
    answer = await page.js("digiclinicTest.session.publisherPc.remoteDescription.sdp")
    fmtp = next(line for line in answer.splitlines() if line.startswith("a=fmtp:111 "))
    assert "maxaveragebitrate=16000" in fmtp, fmtp
    listener = server.client(server.token(room, "hw-aiortc", Role.HEALTH_WORKER))
    reader = None
    try:
        await listener.connect()
        await listener.join()
        track = await listener.wait_for_track(lambda t: t.kind == "audio", timeout=20)
        reader = TrackReader(track.track)

        await page.page.wait_for_timeout(1000)  # past the encoder's start
        before = await audio_sent(page)
        await page.page.wait_for_timeout(4000)
        after = await audio_sent(page)
        seconds = 4.0
        packets_per_s = (after["packetsSent"] - before["packetsSent"]) / seconds
        payload_kbps = (after["bytesSent"] - before["bytesSent"]) * 8 / seconds / 1000
        # 40 ms frames: 25 packets/s (20 ms, the default, would be 50)
        assert 22 <= packets_per_s <= 28, packets_per_s
        # at most 16 kbit/s on average (Chromium's default for a voice is 32)
        assert payload_kbps <= 18, payload_kbps

        heard = await reader.wait_frames(25, timeout=20)
        assert heard.samples >= 25 * 1920, heard  # 40 ms frames at 48 kHz
        print(
            f"Chromium sends {packets_per_s:.1f} packets/s, {payload_kbps:.1f} kbit/s of Opus; "
            f"aiortc decoded {heard.frames} frames"
        )
    finally:
        if reader is not None:
            await reader.stop()
        await listener.leave()
