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

With ``e2ee_key`` (the consult key, "<key id>.<base64url>", docs/e2ee.md) the
client joins saying it encrypts, and in a room whose mode is not "off" every
VP8 and Opus frame it sends is end-to-end encrypted and every frame it
receives decrypted (frames that do not decrypt are dropped): client_e2ee.py.
``set_e2ee_key`` rotates the key as the browser does.

With single-use tokens (docs/protocol.md#single-use-tokens) ``joined`` carries
a ``resume`` secret: the client keeps it (``resume``) and sends it with every
later join of the same token, which is how a reconnection is let in again.

ConsultClient is the room side (join, admit, subscribe, ...) composed of parts
with one job each: the WebSocket request/reply channel (client_channel.py),
the PeerConnections and their tracks (client_media.py, made with the ICE
settings of client_ice.py) and the reconnection (client_reconnect.py).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from types import TracebackType

from aiortc import RTCIceServer, RTCPeerConnection, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamTrack

from sfu.media import Source
from signaling.client_channel import RequestChannel
from signaling.client_e2ee import FrameCrypto, RawFrame
from signaling.client_errors import FATAL_JOIN_ERRORS, ClientError, Event
from signaling.client_ice import IceSettings
from signaling.client_media import ClientMedia, MediaHooks, RemoteTrack, SdpFilter
from signaling.client_reconnect import Reconnection, ReconnectPolicy

__all__ = ["FATAL_JOIN_ERRORS", "ClientError", "ConsultClient", "RawFrame", "RemoteTrack"]


MAX_REDIRECTS = 3


class ConsultClient:
    """One participant of a consultation: joins the room, asks, publishes and receives."""

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
        subscriber_offer_filter: SdpFilter | None = None,
        subscriber_answer_filter: SdpFilter | None = None,
        publisher_offer_filter: SdpFilter | None = None,
        publisher_answer_filter: SdpFilter | None = None,
        media_sink: Callable[[bytes], None] | None = None,
        media_watch: Callable[[bytes], None] | None = None,
        reconnect: bool = False,
        fallback_urls: list[str] | None = None,
        reconnect_attempts: int = 30,
        reconnect_delay: float = 0.25,
        max_reconnect_delay: float = 2.0,
        e2ee_key: str | None = None,
        e2ee_raw_frames: Callable[[RawFrame], None] | None = None,
    ) -> None:
        ice = IceSettings(ice_addresses, ice_servers, ice_transport_policy)
        self.token = token
        self.room = room
        self.auto_subscribe = auto_subscribe
        # the server's resume secret for a single-use token (from `joined`), sent when rejoining
        self.resume: str | None = None
        self.participant_id: str | None = None
        self.state: str = "new"
        # called with every server event, after the client has handled it
        self.event_listeners: list[Callable[[Event], None]] = []
        self._channel = RequestChannel(url, self._on_event, self._connection_lost)
        hooks = MediaHooks(
            subscriber_offer_filter=subscriber_offer_filter,
            subscriber_answer_filter=subscriber_answer_filter,
            publisher_offer_filter=publisher_offer_filter,
            publisher_answer_filter=publisher_answer_filter,
            media_sink=media_sink,
            media_watch=media_watch,
        )
        # end-to-end encryption; e2ee_raw_frames sees received frames before decryption (tests)
        self.e2ee = FrameCrypto(e2ee_key, e2ee_raw_frames)
        self._media = ClientMedia(self._channel, ice, hooks, self.e2ee)
        policy = ReconnectPolicy(
            enabled=reconnect,
            entry_url=url,
            fallback_urls=tuple(fallback_urls or ()),
            attempts=reconnect_attempts,
            delay=reconnect_delay,
            max_delay=max_reconnect_delay,
        )
        self._reconnection = Reconnection(self, policy)

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

    # -- what the parts hold -----------------------------------------------------------

    @property
    def url(self) -> str:
        """The node connected to (after redirects and reconnections)."""
        return self._channel.url

    @property
    def events(self) -> list[Event]:
        """Every server event received, in order (and the client's ``reconnected``)."""
        return self._channel.events

    @property
    def remote_tracks(self) -> dict[str, RemoteTrack]:
        """The tracks received, by track id."""
        return self._media.remote_tracks

    @property
    def published(self) -> dict[str, str]:
        """mid -> track id of what this client publishes."""
        return self._media.published

    @property
    def publisher_pc(self) -> RTCPeerConnection | None:
        return self._media.publisher_pc

    @property
    def subscriber_pc(self) -> RTCPeerConnection | None:
        return self._media.subscriber_pc

    @property
    def publisher_offer_filter(self) -> SdpFilter | None:
        return self._media.hooks.publisher_offer_filter

    @publisher_offer_filter.setter
    def publisher_offer_filter(self, rewrite: SdpFilter | None) -> None:
        self._media.hooks.publisher_offer_filter = rewrite

    @property
    def reconnections(self) -> int:
        """How many lost connections were restored."""
        return self._reconnection.reconnections

    # -- connection ----------------------------------------------------------------

    async def connect(self) -> None:
        await self._channel.open(self.url)

    async def send_raw(self, data: str) -> None:
        await self._channel.send_str(data)

    async def send_bytes(self, data: bytes) -> None:
        """A binary frame (a capture chunk: signaling/client_captures.py)."""
        await self._channel.send_bytes(data)

    @property
    def frames(self) -> list[bytes]:
        """Binary frames received (capture chunks), in order."""
        return self._channel.frames

    async def request(self, message: Event, timeout: float = 20.0) -> Event:
        """Send a message and wait for the reply that carries its id as ``ref``."""
        return await self._channel.request(message, timeout)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        await self._channel.wait_until(predicate, timeout)

    async def wait_event(
        self, kind: str, timeout: float = 10.0, where: Callable[[Event], bool] | None = None
    ) -> Event:
        return await self._channel.wait_event(kind, timeout, where)

    async def _on_event(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "admitted":
            self.state = "active"
            self._media.ice.learn(event)
            self.e2ee.roster(event.get("participants"))
        elif kind == "participant_joined":
            self.e2ee.participant(event.get("participant"))
        elif kind == "participant_left":
            self.e2ee.left(event.get("participant_id"))
        elif kind == "denied":
            self.state = "denied"
        elif kind == "subscriber_offer":
            await self._media.answer_subscriber(event)
        elif kind == "track_unpublished":
            self._media.track_unpublished(event.get("track_id", ""))
        elif kind == "reconnect":  # the node is draining: the server closes, we move
            url = event.get("url")
            self._reconnection.suggest(url if isinstance(url, str) else None)
        elif (
            kind == "connection_failed"
            and self._reconnection.policy.enabled
            and self.state == "active"
        ):
            self._reconnection.start("connection_failed")
        for listener in list(self.event_listeners):
            listener(event)

    # -- reconnection (client_reconnect.py drives these) -------------------------------

    def _connection_lost(self) -> None:
        """The current WebSocket ended without our asking."""
        if self._reconnection.armed:
            if self.state in ("active", "lobby"):
                self._reconnection.start("disconnected")
            return  # an attempt in progress fails and the loop retries
        self.state = "closed" if self.state != "denied" else "denied"

    async def reopen(self, url: str) -> None:
        """Open a new WebSocket to ``url`` (after ``drop_connection``)."""
        await self._channel.open(url)

    async def drop_connection(self) -> None:
        """Close the WebSocket on purpose (no reconnection follows) and forget the media
        of that connection (the tracks we publish stay ours)."""
        await self._channel.close_ws()
        await self._media.drop()

    def wake(self, event: Event | None = None) -> None:
        """Wake ``wait_until``, recording a client-side ``event`` first if given."""
        self._channel.wake(event)

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
        if self.e2ee.has_key:
            message["e2ee"] = True  # we encrypt our frames (docs/e2ee.md)
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
                await self._channel.close_ws()
                await self._channel.open(url)
                message = {k: v for k, v in message.items() if k != "token"}
                message["ticket"] = ticket
        self._media.ice.learn(reply)
        if isinstance(reply.get("resume"), str):
            self.resume = reply["resume"]
        self.participant_id = reply["participant"]["id"]
        self.e2ee.joined(reply)
        self.state = reply["state"]
        self._reconnection.joined()
        return reply

    def set_e2ee_key(self, key: str) -> None:
        """A new consult key ("<key id>.<base64url>"): it decrypts at once and is sent
        with a second later; the previous one still decrypts for ten seconds after that.

        Only a client given a key when made encrypts: the first key cannot come later.
        """
        if not self.e2ee.has_key:
            raise ValueError("this client was made without a consult key (e2ee_key)")
        self.e2ee.set_key(key)

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

    async def end_consult(self) -> None:
        """End the consult for everyone (needs the ``admit`` grant): all get ``room_closed``."""
        await self.request({"type": "end_consult"})

    async def set_on_hold(self, enabled: bool = True) -> None:
        """Tell the others we put this room on hold (a specialist busy in another room)."""
        await self.request({"type": "on_hold", "enabled": enabled})

    # -- media (client_media.py) -------------------------------------------------------

    async def publish(
        self, tracks: list[tuple[MediaStreamTrack, Source]], video_codec: str | None = None
    ) -> dict[str, str]:
        """Publish (more) tracks; returns mid -> track id for everything published.

        ``video_codec`` (e.g. ``"video/H264"``) restricts video tracks to that codec.
        The tracks are published again after a reconnection.
        """
        self._reconnection.published(tracks)
        return await self._media.publish(tracks, video_codec)

    async def publish_raw(
        self, sources: list[Source], on_connected: Callable[[], None]
    ) -> list[RTCRtpTransceiver]:
        """Negotiate send-only m-lines with no aiortc track (load generation).

        The caller sends RTP itself through ``sfu.aiortc_hooks`` once
        ``on_connected`` fires; aiortc's sender (and its encoder) never starts.
        """
        return await self._media.publish_raw(sources, on_connected)

    async def unpublish(self, track_id: str) -> None:
        await self._media.unpublish(track_id)

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
        self._reconnection.leaving()
        if self._channel.is_open:
            with contextlib.suppress(ClientError, TimeoutError):
                await self.request({"type": "leave"}, timeout=5)
        await self.close()

    async def close(self) -> None:
        await self._reconnection.close()  # no reconnection from now on
        self.e2ee.close()
        # events first: an offer being answered as the connections close logged a traceback
        await self._channel.close_ws()
        await self._media.close()
        if self.state != "denied":
            self.state = "closed"
        await self._channel.close()
