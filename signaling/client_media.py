"""ConsultClient's media: its publisher and subscriber PeerConnections.

The publisher connection is the client's offer (``publish``, ``publish_raw``,
``unpublish``): every offer labels each m-line with its source and the reply
says which track id each mid became (``published``). The subscriber
connection answers the server's offers (``answer_subscriber``): the offer's
``tracks`` say whose track each mid carries, and each arriving track becomes
a ``RemoteTrack`` (``remote_tracks``, by track id). ``MediaHooks`` are the
test and load-generation hooks on the way (SDP filters, datagram taps).
With a consult key (``FrameCrypto``, client_e2ee.py) every frame sent is
encrypted before packetization and every frame received decrypted before
decoding (sfu/aiortc_hooks/frames.py); video is then sent as VP8 only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from sfu import aiortc_hooks
from sfu.media import Source
from signaling.client_e2ee import FrameCrypto
from signaling.client_errors import ClientError, Event
from signaling.client_ice import IceSettings

SdpFilter = Callable[[str], str]


@dataclass(slots=True)
class RemoteTrack:
    track_id: str
    participant_id: str
    kind: str
    source: str
    mid: str
    track: MediaStreamTrack


@dataclass(slots=True)
class MediaHooks:
    """Hooks on the media's way (tests, load generation); None: not hooked."""

    # rewrite SDP in transit (e.g. to route media through a relay)
    subscriber_offer_filter: SdpFilter | None = None
    subscriber_answer_filter: SdpFilter | None = None
    publisher_offer_filter: SdpFilter | None = None
    publisher_answer_filter: SdpFilter | None = None
    # load testing: received SRTP datagrams go here undecrypted and undecoded
    media_sink: Callable[[bytes], None] | None = None
    # tests: sees every received SRTP datagram, which aiortc still decodes
    media_watch: Callable[[bytes], None] | None = None


class Signalling(Protocol):
    """What the media needs of the WebSocket (``RequestChannel``)."""

    async def request(self, message: Event, timeout: float = 20.0) -> Event: ...

    async def send_json(self, message: Event) -> None: ...

    def wake(self, event: Event | None = None) -> None: ...


class ClientMedia:
    """The publisher and subscriber PeerConnections and the tracks on them."""

    def __init__(
        self,
        signalling: Signalling,
        ice: IceSettings,
        hooks: MediaHooks,
        crypto: FrameCrypto | None = None,
    ) -> None:
        self.ice = ice
        self.hooks = hooks
        self.crypto = crypto
        self.publisher_pc: RTCPeerConnection | None = None
        self.subscriber_pc: RTCPeerConnection | None = None
        self.remote_tracks: dict[str, RemoteTrack] = {}  # by track id
        self.published: dict[str, str] = {}  # mid -> track id
        self._signalling = signalling
        self._offer_meta: dict[str, Event] = {}  # mid -> the subscriber offer's track
        self._sub_lock = asyncio.Lock()
        self._sources: dict[str, str] = {}  # mid -> source of what we publish

    # -- publisher -----------------------------------------------------------------------

    async def publish(
        self, tracks: list[tuple[MediaStreamTrack, Source]], video_codec: str | None = None
    ) -> dict[str, str]:
        """Publish (more) tracks; returns mid -> track id for everything published."""
        pc = self._publisher()
        sources: dict[int, Source] = {}
        crypto = self.crypto if self.crypto is not None and self.crypto.has_key else None
        if crypto is not None:
            video_codec = "video/VP8"  # the codec whose clear bytes the SFU reads (docs/e2ee.md)
        for track, source in tracks:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            if crypto is not None:
                aiortc_hooks.transform_sent_frames(transceiver.sender, crypto.encrypt)
            if video_codec is not None and track.kind == "video":
                capabilities = RTCRtpSender.getCapabilities("video").codecs
                transceiver.setCodecPreferences(
                    [c for c in capabilities if c.mimeType.lower() == video_codec.lower()]
                    + [c for c in capabilities if c.mimeType.lower() == "video/rtx"]
                )
            sources[id(transceiver)] = source
        return await self._renegotiate_publisher(sources)

    async def publish_raw(
        self, sources: list[Source], on_connected: Callable[[], None]
    ) -> list[RTCRtpTransceiver]:
        """Negotiate send-only m-lines with no aiortc track (see ConsultClient.publish_raw)."""
        pc = self._publisher()
        labels: dict[int, Source] = {}
        added = []
        for source in sources:
            transceiver = pc.addTransceiver(source.kind.value, direction="sendonly")
            aiortc_hooks.disable_stock_sender(transceiver, on_connected)
            labels[id(transceiver)] = source
            added.append(transceiver)
        await self._renegotiate_publisher(labels)
        return added

    async def unpublish(self, track_id: str) -> None:
        pc = self.publisher_pc
        mid = next((m for m, t in self.published.items() if t == track_id), None)
        if pc is None or mid is None:
            raise ClientError("not_found", "not published")
        for transceiver in pc.getTransceivers():
            if transceiver.mid == mid:
                transceiver.direction = "inactive"
                transceiver.sender.replaceTrack(None)
        await self._renegotiate_publisher({})

    def _publisher(self) -> RTCPeerConnection:
        if self.publisher_pc is None:
            self.publisher_pc = self.ice.new_pc()
        return self.publisher_pc

    async def _renegotiate_publisher(self, sources: dict[int, Source]) -> dict[str, str]:
        pc = self.publisher_pc
        assert pc is not None
        self.ice.restrict_host_candidates(pc)
        await pc.setLocalDescription(await pc.createOffer())
        for transceiver in pc.getTransceivers():
            source = sources.get(id(transceiver))
            if source is not None and transceiver.mid is not None:
                self._sources[transceiver.mid] = source.value
        labelled = [{"mid": mid, "source": src} for mid, src in self._sources.items()]
        offer = pc.localDescription.sdp
        if self.hooks.publisher_offer_filter is not None:
            offer = self.hooks.publisher_offer_filter(offer)
        reply = await self._signalling.request(
            {"type": "publish", "sdp": offer, "tracks": labelled}
        )
        answer = reply["sdp"]
        if self.hooks.publisher_answer_filter is not None:
            answer = self.hooks.publisher_answer_filter(answer)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        self.published = {t["mid"]: t["track_id"] for t in reply["tracks"]}
        return dict(self.published)

    # -- subscriber ----------------------------------------------------------------------

    async def answer_subscriber(self, event: Event) -> None:
        """Answer a ``subscriber_offer`` (the answer goes out as ``subscriber_answer``)."""
        async with self._sub_lock:
            pc = self._subscriber()
            for meta in event.get("tracks", []):
                self._offer_meta[meta["mid"]] = meta
            hooks = self.hooks
            sdp = event["sdp"]
            if hooks.subscriber_offer_filter is not None:
                sdp = hooks.subscriber_offer_filter(sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            for transceiver in pc.getTransceivers():
                if hooks.media_sink is not None:
                    aiortc_hooks.disable_stock_receiver(transceiver)
                else:  # decoding: ask again for lost retransmissions, as browsers do
                    aiortc_hooks.retry_nacks(transceiver)
                    self._decrypt(transceiver)
            self.ice.restrict_host_candidates(pc)
            await pc.setLocalDescription(await pc.createAnswer())
            if hooks.media_sink is not None:
                aiortc_hooks.tap_media_datagrams(pc, hooks.media_sink)
            elif hooks.media_watch is not None:
                aiortc_hooks.tap_media_datagrams(pc, hooks.media_watch, pass_through=True)
            for transceiver in pc.getTransceivers():
                if transceiver.currentDirection == "inactive":
                    # aiortc keeps an inactive m-line's receiver running: stop it
                    await transceiver.receiver.stop()
            answer = pc.localDescription.sdp
            if hooks.subscriber_answer_filter is not None:
                answer = hooks.subscriber_answer_filter(answer)
            await self._signalling.send_json({"type": "subscriber_answer", "sdp": answer})

    def _decrypt(self, transceiver: RTCRtpTransceiver) -> None:
        """Decrypt what ``transceiver`` receives before it is decoded (with a consult key)."""
        crypto = self.crypto
        if crypto is None or not crypto.has_key or transceiver.mid is None:
            return
        mid = transceiver.mid

        def sender() -> str | None:
            participant = (self._offer_meta.get(mid) or {}).get("participant_id")
            return participant if isinstance(participant, str) else None

        aiortc_hooks.transform_received_frames(transceiver.receiver, crypto.decryptor(sender))

    def track_unpublished(self, track_id: str) -> None:
        self.remote_tracks.pop(track_id, None)

    def _subscriber(self) -> RTCPeerConnection:
        if self.subscriber_pc is not None:
            return self.subscriber_pc
        pc = self.subscriber_pc = self.ice.new_pc()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            for transceiver in pc.getTransceivers():
                if transceiver.receiver.track is track and transceiver.mid:
                    meta = self._offer_meta.get(transceiver.mid)
                    if meta is not None:
                        self.remote_tracks[meta["track_id"]] = RemoteTrack(
                            track_id=meta["track_id"],
                            participant_id=meta["participant_id"],
                            kind=meta["kind"],
                            source=meta["source"],
                            mid=transceiver.mid,
                            track=track,
                        )
            self._signalling.wake()

        return pc

    # -- teardown ------------------------------------------------------------------------

    async def close(self) -> None:
        """Close both PeerConnections (what they carried stays readable)."""
        for pc in (self.publisher_pc, self.subscriber_pc):
            if pc is not None:
                await pc.close()
        self.publisher_pc = self.subscriber_pc = None

    async def drop(self) -> None:
        """Close both PeerConnections and forget what they carried (a lost connection)."""
        await self.close()
        self.remote_tracks.clear()
        self.published.clear()
        self._offer_meta.clear()
        self._sources.clear()
