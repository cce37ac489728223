"""Unit tests for signaling/client_media.py: ConsultClient's PeerConnections.

``Server`` stands in for the WebSocket: it answers ``publish`` with an
aiortc PeerConnection of its own and records what was sent. No media flows
(the tests end before ICE would connect).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from sfu.media import Source
from signaling.client_errors import ClientError, Event
from signaling.client_ice import IceSettings
from signaling.client_media import ClientMedia, MediaHooks

LOOPBACK = ["127.0.0.1"]


class Server:
    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.requests: list[Event] = []
        self.sent: list[Event] = []
        self.wakes = 0

    async def request(self, message: Event, timeout: float = 20.0) -> Event:
        self.requests.append(message)
        await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        tracks = [{"mid": t["mid"], "track_id": f"t-{t['mid']}"} for t in message["tracks"]]
        return {"type": "published", "sdp": self.pc.localDescription.sdp, "tracks": tracks}

    async def send_json(self, message: Event) -> None:
        self.sent.append(message)

    def wake(self, event: Event | None = None) -> None:
        self.wakes += 1


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    made = Server()
    yield made
    await made.pc.close()


async def test_publishing_labels_each_mid_with_its_source(server: Server) -> None:
    offers: list[str] = []

    def seen(sdp: str) -> str:
        offers.append(sdp)
        return sdp

    media = ClientMedia(server, IceSettings(LOOPBACK), MediaHooks(publisher_offer_filter=seen))
    tracks: list[tuple[Any, Source]] = [
        (AudioStreamTrack(), Source.MICROPHONE),
        (VideoStreamTrack(), Source.CAMERA),
    ]
    published = await media.publish(tracks)
    assert published == {"0": "t-0", "1": "t-1"} == media.published
    assert server.requests[0]["tracks"] == [
        {"mid": "0", "source": "microphone"},
        {"mid": "1", "source": "camera"},
    ]
    assert offers == [server.requests[0]["sdp"]]  # the filter saw what went out
    assert "c=IN IP4 127.0.0.1" in offers[0]  # host candidates on the given address only

    await media.unpublish("t-1")  # the labels stay: the m-line does
    assert server.requests[1]["tracks"] == server.requests[0]["tracks"]
    with pytest.raises(ClientError) as missing:
        await media.unpublish("t-9")
    assert missing.value.code == "not_found"

    pc = media.publisher_pc
    await media.drop()  # a lost connection: closed and forgotten
    assert media.publisher_pc is None and pc is not None and pc.connectionState == "closed"
    assert media.published == {}


async def test_unpublishing_before_publishing_is_not_found(server: Server) -> None:
    media = ClientMedia(server, IceSettings(LOOPBACK), MediaHooks())
    with pytest.raises(ClientError):
        await media.unpublish("t-0")


async def test_each_offered_track_becomes_a_remote_track_of_its_participant(
    server: Server,
) -> None:
    media = ClientMedia(server, IceSettings(LOOPBACK), MediaHooks())
    offering = server.pc
    offering.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await offering.setLocalDescription(await offering.createOffer())
    meta = {"mid": "0", "track_id": "p1:1", "participant_id": "p1", "kind": "audio"}
    await media.answer_subscriber(
        {
            "type": "subscriber_offer",
            "sdp": offering.localDescription.sdp,
            "tracks": [{**meta, "source": "microphone"}],
        }
    )
    [answer] = server.sent
    assert answer["type"] == "subscriber_answer" and "a=recvonly" in answer["sdp"]
    remote = media.remote_tracks["p1:1"]
    assert (remote.participant_id, remote.kind, remote.source, remote.mid) == (
        "p1",
        "audio",
        "microphone",
        "0",
    )
    assert remote.track.kind == "audio" and server.wakes >= 1

    media.track_unpublished("p1:1")
    media.track_unpublished("p1:1")  # twice is harmless
    assert media.remote_tracks == {}
    await media.close()
    assert media.subscriber_pc is None
