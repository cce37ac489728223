"""RED (redundant audio) between Chromium pages, plain Opus to an aiortc subscriber.

Chromium offers ``red/48000/2`` over Opus; the SFU answers it first, so the
page sends every Opus frame twice (RFC 2198). Another Chromium page is
offered RED by the SFU and receives the redundant stream as it was sent; an
aiortc participant, which does not know RED, is sent the primary Opus frames
alone and decodes them.
"""

from __future__ import annotations

from sfu.consumer import Consumer
from sfu.media import MediaKind, Source
from sfu.participant import Role
from signaling.demo_media import CameraTrack, TrackReader
from tests.browser.test_browser_consult import OpenConsult, wait_inbound
from tests.conftest import RunningServer


def audio_consumers(server: RunningServer, room: str, publisher_id: str) -> dict[str, Consumer]:
    """subscriber id -> Consumer of ``publisher_id``'s microphone."""
    found = {}
    for participant in server.room(room).participants.values():
        subscriber = participant.subscriber
        if subscriber is None:
            continue
        for consumer in subscriber.consumers.values():
            producer = consumer.producer
            if producer.participant_id == publisher_id and producer.kind is MediaKind.AUDIO:
                found[participant.id] = consumer
    return found


async def test_chromium_sends_red_to_chromium_and_plain_opus_to_aiortc(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    room = "browser-red"
    client = server.client(server.token(room, "hw-aiortc", Role.HEALTH_WORKER))
    readers: list[TrackReader] = []
    try:
        await client.connect()
        await client.join()
        await client.publish([(CameraTrack(160, 120), Source.CAMERA)])
        sender = await open_consult(room, "dr-red", Role.SPECIALIST, name="Dr. Red")
        sender_id = await sender.participant_id()
        await sender.wait_for("digiclinicTest.state === 'published'", what="sender published")
        listener = await open_consult(room, "hw-red", Role.HEALTH_WORKER, name="HW Red")
        await listener.wait_for("digiclinicTest.state === 'published'", what="listener published")

        # the SFU receives RED from the sending page (the answer listed it first;
        # Chromium's getStats names the inner codec, audio/opus, either way)
        received: list[tuple[int, bytes | None]] = []
        consumers = audio_consumers(server, room, sender_id)
        producer = next(iter(consumers.values())).producer
        assert producer.red_payload_type is not None
        producer.taps.append(
            lambda packet, _ms: received.append((packet.payload_type, packet.red_primary))
        )
        await sender.page.wait_for_timeout(1000)
        assert len(received) > 30, received
        assert all(pt == producer.red_payload_type for pt, _ in received), received
        assert all(primary is not None for _, primary in received)

        # the other page receives the RED stream, and keeps receiving it
        heard = await wait_inbound(
            listener, sender_id, "audio", lambda s: s["packetsReceived"] > 100
        )
        later = await wait_inbound(
            listener,
            sender_id,
            "audio",
            lambda s: s["totalSamplesReceived"] >= heard["totalSamplesReceived"] + 48000,
        )
        assert later["packetsLost"] == 0, later

        # aiortc gets the primary Opus frames and decodes them
        track = await client.wait_for_track(
            lambda t: t.participant_id == sender_id and t.kind == "audio", timeout=20
        )
        reader = TrackReader(track.track)
        readers.append(reader)
        decoded = await reader.wait_frames(100, timeout=20)
        assert decoded.samples >= 100 * 960, decoded  # 20 ms frames at 48 kHz

        consumers = audio_consumers(server, room, sender_id)
        listener_id = await listener.participant_id()
        aiortc_id = client.participant_id
        to_page, to_aiortc = consumers[listener_id], consumers[aiortc_id or ""]
        assert to_page.params and to_page.params.red_payload_type is not None
        assert to_aiortc.params and to_aiortc.params.red_payload_type is None
        # RED roughly doubles the audio payload: the Chromium page gets more bytes
        red_bytes = to_page.counters.bytes / to_page.counters.packets
        opus_bytes = to_aiortc.counters.bytes / to_aiortc.counters.packets
        assert red_bytes > opus_bytes * 1.3, (red_bytes, opus_bytes)
        # the page's payload bytes per packet exceed whole plain-Opus packets
        page_bytes = later["bytesReceived"] / later["packetsReceived"]
        assert page_bytes > opus_bytes * 1.3, (page_bytes, opus_bytes)
        assert await listener.js("digiclinicTest.errors") == []
        print(
            f"RED to Chromium: {later['packetsReceived']} packets, {red_bytes:.0f} B each; "
            f"Opus to aiortc: {decoded.frames} frames decoded, {opus_bytes:.0f} B each"
        )
    finally:
        for reader in readers:
            await reader.stop()
        await client.leave()
