"""RED negotiation through the real signalling path, with aiortc peers.

aiortc does not offer RED itself, so the publishing client's offer is edited
to offer it as Chromium does (``red/48000/2`` over Opus). The server answers
RED first unless ``media.opus_red`` is off; an aiortc subscriber, which
never answers RED, still hears the track as Opus.
"""

from __future__ import annotations

from collections.abc import Callable

from sfu.media import Source
from sfu.participant import Role
from sfu.sdp_edits import answered_red, mid_sections, offer_red, payload_types
from signaling.client import ConsultClient
from signaling.demo_media import ToneTrack, TrackReader
from tests.conftest import RunningServer

ServerFactory = Callable[..., object]


def offer_red_like_chromium(offer: str) -> str:
    audio = [mid for mid, section in mid_sections(offer).items() if section.startswith("m=audio")]
    return offer_red(offer, set(audio))


async def publish_offering_red(server: RunningServer, room: str) -> tuple[ConsultClient, list[str]]:
    answers: list[str] = []

    def keep(answer: str) -> str:
        answers.append(answer)
        return answer

    client = server.client(
        server.token(room, "hw", Role.HEALTH_WORKER),
        publisher_offer_filter=offer_red_like_chromium,
        publisher_answer_filter=keep,
    )
    await client.connect()
    await client.join()
    await client.publish([(ToneTrack(), Source.MICROPHONE)])
    return client, answers


async def test_red_is_answered_first_and_an_aiortc_subscriber_hears_opus(
    server: RunningServer,
) -> None:
    room = "red-negotiation"
    publisher, answers = await publish_offering_red(server, room)
    listener = server.client(server.token(room, "dr", Role.SPECIALIST))
    reader = None
    try:
        [answer] = answers
        [(mid, red_pt)] = answered_red(answer).items()
        audio = mid_sections(answer)[mid]
        assert audio.split("\r\n")[0].split(" ")[3] == str(red_pt)  # listed first
        assert payload_types(audio, "opus")
        [participant] = server.room(room).participants.values()
        assert participant.publisher is not None
        [producer] = participant.publisher.producers.values()
        assert producer.red_payload_type == red_pt

        # aiortc sends plain Opus (it cannot encode RED): forwarded as Opus
        await listener.connect()
        await listener.join()
        track = await listener.wait_for_track(lambda t: t.kind == "audio", timeout=15)
        reader = TrackReader(track.track)
        heard = await reader.wait_frames(50, timeout=15)
        assert heard.samples >= 50 * 960
    finally:
        if reader is not None:
            await reader.stop()
        await listener.leave()
        await publisher.leave()


async def test_red_off_by_configuration(server_factory: ServerFactory) -> None:
    server: RunningServer = await server_factory(media={"opus_red": False})  # type: ignore[operator]
    publisher, answers = await publish_offering_red(server, "red-off")
    try:
        [answer] = answers
        assert answered_red(answer) == {}
        assert "red/48000" not in answer
    finally:
        await publisher.leave()
