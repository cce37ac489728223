"""Issue 7: a thin subscriber link asks Chromium for less audio, and lifts it again.

Chromium publishes camera and microphone; an aiortc subscriber joins. The
server's whole chain runs — the subscriber's DownlinkController wish, the
audio Consumer, the Producer's smallest wish, ``publisher_audio`` — and the
client library caps the microphone sender (``maxBitrate``) and renegotiates
for thin-link audio (60 ms packets), then lifts both.
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


AUDIO_SENT_JS = """async () => {
  const s = digiclinicTest.session;
  const stats = await s.publisherPc.getStats();
  let packets = 0;
  stats.forEach((r) => {
    if (r.type === "outbound-rtp" && r.kind === "audio") packets += r.packetsSent;
  });
  const answer = s.publisherPc.remoteDescription.sdp;
  // (Chromium writes the answer's fmtp ptime back as an a=ptime line)
  return {packets, red: answer.includes("red/48000"), ptime60: /ptime[:=]60/.test(answer)};
}"""


async def audio_packets_per_second(page: ConsultPage, seconds: float = 3.0) -> float:
    before = await page.js(AUDIO_SENT_JS)
    await asyncio.sleep(seconds)
    after = await page.js(AUDIO_SENT_JS)
    return float(after["packets"] - before["packets"]) / seconds


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

        usual = await page.js(AUDIO_SENT_JS)
        assert usual["red"] and not usual["ptime60"]  # RED answered, 20 ms packets
        assert 40 <= await audio_packets_per_second(page) <= 55

        wish["bps"] = 16_000
        await wait_max_bitrate(page, 16_000, timeout=10)
        assert audio_messages(page) == [
            {
                "type": "publisher_audio",
                "track_id": mic["trackId"],
                "max_bitrate_bps": 16_000,
                "packet_ms": 60,
            }
        ]
        async with asyncio.timeout(10):
            while not [
                e
                for e in await page.js("digiclinicTest.events")
                if e["type"] == "audio-cap-applied"
            ]:
                await asyncio.sleep(0.2)
        applied = [
            e for e in await page.js("digiclinicTest.events") if e["type"] == "audio-cap-applied"
        ]
        assert applied[-1]["detail"] == {
            "trackId": mic["trackId"],
            "maxBitrate": 16_000,
            "packetMs": 60,
        }
        thin = await page.js(AUDIO_SENT_JS)
        assert thin["ptime60"] and thin["red"]  # renegotiated: 60 ms packets, RED kept
        await asyncio.sleep(1)
        assert 14 <= await audio_packets_per_second(page) <= 19  # 60 ms packets

        wish["bps"] = None
        await wait_max_bitrate(page, None, timeout=10)
        assert [m["max_bitrate_bps"] for m in audio_messages(page)] == [16_000, None]
        assert audio_messages(page)[-1]["packet_ms"] is None
        async with asyncio.timeout(10):
            while (await page.js(AUDIO_SENT_JS))["ptime60"]:
                await asyncio.sleep(0.2)
        await asyncio.sleep(1)
        assert 40 <= await audio_packets_per_second(page) <= 55  # 20 ms packets again
        assert await page.js("digiclinicTest.errors") == []
    finally:
        await client.leave()
