"""A Python client for digiclinic (tests, benchmarks, scripting).

    async with ConsultClient("ws://127.0.0.1:8080/ws", token) as client:
        await client.join()
        await client.publish([(audio_track, Source.MICROPHONE), (video_track, Source.CAMERA)])
        track = await client.wait_for_track(lambda t: t.kind == "video")
        frame = await track.track.recv()

It speaks protocol v1 (docs/protocol.md) with two aiortc PeerConnections:
publisher (the client offers) and subscriber (the server offers).

In a cluster (docs/cluster.md) ``join`` follows ``redirect`` replies to the
room's node. With ``reconnect=True``, a lost connection (node gone, node
draining: the ``reconnect`` event) is restored without the caller: connect
again (the node suggested, else the URL first given), join with the same
token, wait for admission if needed and republish the same tracks; remote
tracks arrive anew. ``reconnections`` counts the restored connections.

With single-use tokens (docs/protocol.md#single-use-tokens) ``joined`` carries
a ``resume`` secret: the client keeps it (``resume``) and sends it with every
later join of the same token, which is how a reconnection is let in again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from sfu import aiortc_hooks
from sfu.media import Source
from signaling import client_reconnect
from signaling.client_errors import FATAL_JOIN_ERRORS, ClientError, Event

__all__ = ["FATAL_JOIN_ERRORS", "ClientError", "ConsultClient", "RemoteTrack"]

logger = logging.getLogger(__name__)


MAX_REDIRECTS = 3


@dataclass(slots=True)
class RemoteTrack:
    track_id: str
    participant_id: str
    kind: str
    source: str
    mid: str
    track: MediaStreamTrack


class ConsultClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        room: str | None = None,
        ice_addresses: list[str] | None = None,
        ice_servers: list[RTCIceServer] | None = None,
        ice_transport_policy: str = "all",
        auto_subscribe: bool = True,
        subscriber_offer_filter: Callable[[str], str] | None = None,
        subscriber_answer_filter: Callable[[str], str] | None = None,
        publisher_offer_filter: Callable[[str], str] | None = None,
        publisher_answer_filter: Callable[[str], str] | None = None,
        media_sink: Callable[[bytes], None] | None = None,
        media_watch: Callable[[bytes], None] | None = None,
        reconnect: bool = False,
        fallback_urls: list[str] | None = None,
        reconnect_attempts: int = 30,
        reconnect_delay: float = 0.25,
        max_reconnect_delay: float = 2.0,
    ) -> None:
        self.url = url
        self.entry_url = url  # where reconnections start (any node of the cluster)
        # more entry points, tried in turn when reconnecting (the first may be gone)
        self.fallback_urls = list(fallback_urls or [])
        self.token = token
        # the server's resume secret for a single-use token (from `joined`), sent when rejoining
        self.resume: str | None = None
        self.room = room
        self.ice_addresses = ice_addresses
        # None: use the ICE servers (TURN credentials) the server hands out on admission
        self.ice_servers = ice_servers
        self.server_ice_servers: list[RTCIceServer] = []
        if ice_transport_policy not in ("all", "relay"):
            raise ValueError("ice_transport_policy is 'all' or 'relay'")
        self.ice_transport_policy = ice_transport_policy
        self.auto_subscribe = auto_subscribe
        # test hooks: rewrite SDP in transit (e.g. to route media through a relay)
        self.subscriber_offer_filter = subscriber_offer_filter
        self.subscriber_answer_filter = subscriber_answer_filter
        self.publisher_offer_filter = publisher_offer_filter
        self.publisher_answer_filter = publisher_answer_filter
        # load testing: received SRTP datagrams go here undecrypted and undecoded
        self.media_sink = media_sink
        # tests: sees every received SRTP datagram, which aiortc still decodes
        self.media_watch = media_watch
        self.participant_id: str | None = None
        self.state: str = "new"
        self.events: list[Event] = []
        # called with every server event, after the client has handled it
        self.event_listeners: list[Callable[[Event], None]] = []
        self.remote_tracks: dict[str, RemoteTrack] = {}  # by track id
        self.published: dict[str, str] = {}  # mid -> track id
        self.publisher_pc: RTCPeerConnection | None = None
        self.subscriber_pc: RTCPeerConnection | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Event]] = {}
        self._changed = asyncio.Event()
        self._offer_meta: dict[str, Event] = {}
        self._sub_lock = asyncio.Lock()
        self._sources: dict[str, str] = {}  # mid -> source of what we publish
        self.reconnect = reconnect
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.reconnections = 0
        self._joined_once = False
        self._leaving = False
        self._hint: str | None = None  # a node the server suggested reconnecting to
        self._publishing: list[tuple[MediaStreamTrack, Source]] = []
        self._reconnector: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ConsultClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- connection ----------------------------------------------------------------

    async def connect(self) -> None:
        await self._open(self.url)

    async def _open(self, url: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.url = url
        ws = await self._session.ws_connect(url, max_msg_size=4 * 1024 * 1024)
        self._ws = ws
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(ws))

    async def _close_ws(self) -> None:
        """Close the WebSocket on purpose (redirect, reconnection): no reconnection follows."""
        ws, reader = self._ws, self._reader
        self._ws, self._reader = None, None
        if ws is not None:
            await ws.close()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def send_raw(self, data: str) -> None:
        assert self._ws is not None
        await self._ws.send_str(data)

    async def request(self, message: Event, timeout: float = 20.0) -> Event:
        """Send a message and wait for the reply that carries its id as ``ref``."""
        assert self._ws is not None
        msg_id = next(self._ids)
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            await self._ws.send_json({**message, "id": msg_id})
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(msg_id, None)
        if reply.get("type") == "error":
            raise ClientError(reply.get("code", "?"), reply.get("message", ""), reply)
        return reply

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = msg.json()
                self.events.append(event)
                ref = event.get("ref")
                future = self._pending.get(ref) if isinstance(ref, int) else None
                if future is not None and not future.done():
                    future.set_result(event)
                await self._on_event(event)
                self._changed.set()
        except aiohttp.ClientConnectionError:
            logger.debug("connection closed while handling an event")
        except Exception:
            logger.exception("client read loop failed")
        finally:
            if ws is self._ws:
                self._connection_lost()
            for future in self._pending.values():
                if not future.done():
                    future.set_result({"type": "error", "code": "closed", "message": "closed"})
            self._changed.set()

    async def _on_event(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "admitted":
            self.state = "active"
            self._learn_ice_servers(event)
        elif kind == "denied":
            self.state = "denied"
        elif kind == "subscriber_offer":
            await self._answer_subscriber(event)
        elif kind == "track_unpublished":
            self.remote_tracks.pop(event.get("track_id", ""), None)
        elif kind == "reconnect":  # the node is draining: the server closes, we move
            url = event.get("url")
            self._hint = url if isinstance(url, str) else None
        elif kind == "connection_failed" and self.reconnect and self.state == "active":
            self._start_reconnect("connection_failed")
        for listener in list(self.event_listeners):
            listener(event)

    # -- reconnection (client_reconnect.py) ----------------------------------------------

    def _connection_lost(self) -> None:
        """The current WebSocket ended without our asking."""
        if self.reconnect and not self._leaving and self._joined_once:
            if self.state in ("active", "lobby"):
                self._start_reconnect("disconnected")
            return  # an attempt in progress fails and the loop retries
        self.state = "closed" if self.state != "denied" else "denied"

    def _start_reconnect(self, reason: str) -> None:
        if self._reconnector is None or self._reconnector.done():
            self.state = "reconnecting"
            self._reconnector = asyncio.get_running_loop().create_task(
                client_reconnect.reconnect_loop(self, reason)
            )

    async def _drop_media(self) -> None:
        """Forget the media of the lost connection (the tracks we publish stay ours)."""
        for pc in (self.publisher_pc, self.subscriber_pc):
            if pc is not None:
                await pc.close()
        self.publisher_pc = self.subscriber_pc = None
        self.remote_tracks.clear()
        self.published.clear()
        self._offer_meta.clear()
        self._sources.clear()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                if predicate():
                    return
                await self._changed.wait()

    async def wait_event(
        self, kind: str, timeout: float = 10.0, where: Callable[[Event], bool] | None = None
    ) -> Event:
        found: list[Event] = []

        def seen() -> bool:
            for e in self.events:
                if e.get("type") == kind and (where is None or where(e)):
                    found.append(e)
                    return True
            return False

        await self.wait_until(seen, timeout)
        return found[0]

    # -- room ------------------------------------------------------------------------

    async def join(self) -> Event:
        """Join the room, following redirects to the node that hosts it."""
        message: Event = {
            "type": "join",
            "token": self.token,
            "auto_subscribe": self.auto_subscribe,
        }
        if self.room:
            message["room"] = self.room
        if self.resume:
            message["resume"] = self.resume  # a rejoin: the token has joined before
        for redirects in itertools.count():
            try:
                reply = await self.request(message)
                break
            except ClientError as exc:
                url, ticket = exc.event.get("url"), exc.event.get("ticket")
                if exc.code != "redirect" or redirects >= MAX_REDIRECTS:
                    raise
                if not isinstance(url, str) or not isinstance(ticket, str):
                    raise
                await self._close_ws()
                await self._open(url)
                message = {k: v for k, v in message.items() if k != "token"}
                message["ticket"] = ticket
        self._learn_ice_servers(reply)
        if isinstance(reply.get("resume"), str):
            self.resume = reply["resume"]
        self.participant_id = reply["participant"]["id"]
        self.state = reply["state"]
        self._joined_once = True
        return reply

    async def wait_admitted(self, timeout: float = 10.0) -> None:
        await self.wait_until(lambda: self.state in ("active", "denied", "closed"), timeout)
        if self.state != "active":
            raise ClientError(self.state, "not admitted")

    async def admit(self, participant_id: str) -> None:
        await self.request({"type": "admit", "participant_id": participant_id})

    async def deny(self, participant_id: str) -> None:
        await self.request({"type": "deny", "participant_id": participant_id})

    async def subscribe(self, track_id: str) -> None:
        await self.request({"type": "subscribe", "track_id": track_id})

    async def unsubscribe(self, track_id: str) -> None:
        await self.request({"type": "unsubscribe", "track_id": track_id})

    async def track_settings(
        self, track_id: str, width: int, height: int, pinned: bool | None = None
    ) -> None:
        """Tell the server the size (device pixels) this client renders a video at."""
        message: Event = {
            "type": "track_settings",
            "track_id": track_id,
            "width": width,
            "height": height,
        }
        if pinned is not None:
            message["pinned"] = pinned
        await self.request(message)

    async def mute(self, track_id: str, muted: bool = True) -> None:
        await self.request({"type": "mute", "track_id": track_id, "muted": muted})

    async def set_audio_only(self, enabled: bool = True) -> None:
        """Tell the others we chose audio only (their widgets label our tile)."""
        await self.request({"type": "audio_only", "enabled": enabled})

    # -- media -----------------------------------------------------------------------

    def _new_pc(self) -> RTCPeerConnection:
        servers = self.ice_servers if self.ice_servers is not None else self.server_ice_servers
        policy = (
            RTCIceTransportPolicy.RELAY
            if self.ice_transport_policy == "relay"
            else RTCIceTransportPolicy.ALL
        )
        return RTCPeerConnection(
            RTCConfiguration(
                iceServers=servers,
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
                iceTransportPolicy=policy,
            )
        )

    def _learn_ice_servers(self, event: Event) -> None:
        self.server_ice_servers = [
            RTCIceServer(
                urls=server["urls"],
                username=server.get("username"),
                credential=server.get("credential"),
            )
            for server in event.get("ice_servers", [])
        ]

    async def publish(
        self, tracks: list[tuple[MediaStreamTrack, Source]], video_codec: str | None = None
    ) -> dict[str, str]:
        """Publish (more) tracks; returns mid -> track id for everything published.

        ``video_codec`` (e.g. ``"video/H264"``) restricts video tracks to that codec.
        """
        if self.publisher_pc is None:
            self.publisher_pc = self._new_pc()
        pc = self.publisher_pc
        self._publishing.extend(tracks)
        sources: dict[int, Source] = {}
        for track, source in tracks:
            transceiver = pc.addTransceiver(track, direction="sendonly")
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
        """Negotiate send-only m-lines with no aiortc track (load generation).

        The caller sends RTP itself through ``sfu.aiortc_hooks`` once
        ``on_connected`` fires; aiortc's sender (and its encoder) never starts.
        """
        if self.publisher_pc is None:
            self.publisher_pc = self._new_pc()
        pc = self.publisher_pc
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

    async def _renegotiate_publisher(self, sources: dict[int, Source]) -> dict[str, str]:
        pc = self.publisher_pc
        assert pc is not None
        if self.ice_addresses is not None:
            aiortc_hooks.configure_host_candidates(pc, self.ice_addresses)
        await pc.setLocalDescription(await pc.createOffer())
        for transceiver in pc.getTransceivers():
            source = sources.get(id(transceiver))
            if source is not None and transceiver.mid is not None:
                self._sources[transceiver.mid] = source.value
        labelled = [{"mid": mid, "source": src} for mid, src in self._sources.items()]
        offer = pc.localDescription.sdp
        if self.publisher_offer_filter is not None:
            offer = self.publisher_offer_filter(offer)
        reply = await self.request({"type": "publish", "sdp": offer, "tracks": labelled})
        answer = reply["sdp"]
        if self.publisher_answer_filter is not None:
            answer = self.publisher_answer_filter(answer)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        self.published = {t["mid"]: t["track_id"] for t in reply["tracks"]}
        return dict(self.published)

    async def _answer_subscriber(self, event: Event) -> None:
        async with self._sub_lock:
            if self.subscriber_pc is None:
                self.subscriber_pc = self._new_pc()
                pc = self.subscriber_pc

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
                    self._changed.set()

            pc = self.subscriber_pc
            for meta in event.get("tracks", []):
                self._offer_meta[meta["mid"]] = meta
            sdp = event["sdp"]
            if self.subscriber_offer_filter is not None:
                sdp = self.subscriber_offer_filter(sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            for transceiver in pc.getTransceivers():
                if self.media_sink is not None:
                    aiortc_hooks.disable_stock_receiver(transceiver)
                else:  # decoding: ask again for lost retransmissions, as browsers do
                    aiortc_hooks.retry_nacks(transceiver)
            if self.ice_addresses is not None:
                aiortc_hooks.configure_host_candidates(pc, self.ice_addresses)
            await pc.setLocalDescription(await pc.createAnswer())
            if self.media_sink is not None:
                aiortc_hooks.tap_media_datagrams(pc, self.media_sink)
            elif self.media_watch is not None:
                aiortc_hooks.tap_media_datagrams(pc, self.media_watch, pass_through=True)
            for transceiver in pc.getTransceivers():
                if transceiver.currentDirection == "inactive":
                    # aiortc keeps an inactive m-line's receiver running: stop it
                    await transceiver.receiver.stop()
            answer = pc.localDescription.sdp
            if self.subscriber_answer_filter is not None:
                answer = self.subscriber_answer_filter(answer)
            assert self._ws is not None
            await self._ws.send_json({"type": "subscriber_answer", "sdp": answer})

    async def wait_for_track(
        self, predicate: Callable[[RemoteTrack], bool], timeout: float = 15.0
    ) -> RemoteTrack:
        found: list[RemoteTrack] = []

        def seen() -> bool:
            for t in self.remote_tracks.values():
                if predicate(t):
                    found.append(t)
                    return True
            return False

        await self.wait_until(seen, timeout)
        return found[0]

    # -- teardown -----------------------------------------------------------------------

    async def leave(self) -> None:
        self._leaving = True
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(ClientError, TimeoutError):
                await self.request({"type": "leave"}, timeout=5)
        await self.close()

    async def close(self) -> None:
        self._leaving = True
        if self._reconnector is not None:
            self._reconnector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnector
            self._reconnector = None
        for pc in (self.publisher_pc, self.subscriber_pc):
            if pc is not None:
                await pc.close()
        self.publisher_pc = self.subscriber_pc = None
        await self._close_ws()
        if self.state != "denied":
            self.state = "closed"
        if self._session is not None:
            await self._session.close()
            self._session = None
