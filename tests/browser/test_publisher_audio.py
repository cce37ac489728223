"""Issue 7: a thin subscriber link asks Chromium for less audio, and lifts it again.

Chromium publishes camera and microphone; an aiortc subscriber joins. The
server's whole chain runs — the subscriber's DownlinkController wish, the
audio Consumer, the Producer's smallest wish, ``publisher_audio`` — and the
client library caps the microphone sender (``maxBitrate``), then lifts it.
The wish itself (``sfu/audio_cap.ThinLinkAudio``) is what the test sets:
Chromium's fake microphone beeps with DTX (a few kbit/s), too little to fill
any link it could be given; tests/functional/test_weak_links.py shows the
wish arising on a 60 kbit/s link from a publisher of 24 kbit/s Opus.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from sfu.audio_cap import ThinLinkAudio
from sfu.participant import Role
from tests.browser.conftest import ConsultPage
from tests.browser.widget_helpers import camera_publisher
from tests.conftest import RunningServer

OpenConsult = Callable[..., Any]

MICROPHONE_JS = """() => {
  const s = digiclinicTest.session;
  const entry = [...s.published.values()].find(e => e.source === "microphone");
  if (!entry) return null;
  const sender = s.publisherPc.getTransceivers().find(t => t.mid === entry.mid).sender;
  const maxBitrate = sender.getParameters().encodings.map(e => e.maxBitrate ?? null);
  return {trackId: entry.trackId, maxBitrate};
}"""


async def microphone(page: ConsultPage) -> dict[str, Any]:
    result: dict[str, Any] | None = await page.js(MICROPHONE_JS)
    assert result is not None, await page.dump()
    return result


async def wait_max_bitrate(page: ConsultPage, value: int | None, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while (await microphone(page))["maxBitrate"] != [value]:
            await asyncio.sleep(0.2)


def audio_messages(page: ConsultPage) -> list[dict[str, Any]]:
    return [m for m in page.ws_received if m.get("type") == "publisher_audio"]


async def test_publisher_audio_caps_and_restores_the_microphone_encoder(
    server: RunningServer, open_consult: OpenConsult, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = "thin-audio"
    page, browser_id, _camera = await camera_publisher(open_consult, room)
    mic = await microphone(page)
    assert mic["maxBitrate"] == [None]

    wish: dict[str, int | None] = {"bps": None}
    monkeypatch.setattr(ThinLinkAudio, "update", lambda self, *args: wish["bps"])

    client = server.client(server.token(room, "hw-aiortc", Role.HEALTH_WORKER))
    try:
        await client.connect()
        await client.join()
        await client.wait_for_track(
            lambda t: t.participant_id == browser_id and t.kind == "audio", timeout=20
        )
        await asyncio.sleep(2)
        assert audio_messages(page) == []  # no wish, no message

        wish["bps"] = 16_000
        await wait_max_bitrate(page, 16_000, timeout=10)
        assert audio_messages(page) == [
            {"type": "publisher_audio", "track_id": mic["trackId"], "max_bitrate_bps": 16_000}
        ]
        applied = [
            e for e in await page.js("digiclinicTest.events") if e["type"] == "audio-cap-applied"
        ]
        assert applied[-1]["detail"] == {"trackId": mic["trackId"], "maxBitrate": 16_000}

        wish["bps"] = None
        await wait_max_bitrate(page, None, timeout=10)
        assert [m["max_bitrate_bps"] for m in audio_messages(page)] == [16_000, None]
        assert await page.js("digiclinicTest.errors") == []
    finally:
        await client.leave()
