"""One load-generator participant in a Janus VideoRoom, driven like a digiclinic one.

The same media as for digiclinic (benchmarks/loadgen/rtp_source.py replays the
pre-encoded clips into send-only m-lines; benchmarks/loadgen/traffic_sink.py
counts what a subscriber receives without decrypting it), the same aiortc
hooks; only the signalling differs: Janus's JSON API over its WebSocket
(``janus-protocol``), one session and one VideoRoom handle per participant.

- The publisher creates the room (ignoring "already exists"), joins as
  publisher ``PUBLISHER_ID`` and publishes with an offer.
- A subscriber joins with ``streams: [{feed: PUBLISHER_ID}]`` (retried until
  the publisher is there), answers Janus's offer and sends ``start``.
- A keepalive every 25 s (Janus ends a silent session after 60).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from sfu import aiortc_hooks
from signaling.client_ice import IceSettings

ROOM = 4242
PUBLISHER_ID = 1
KEEPALIVE = 25.0
NO_SUCH_FEED = 428  # JANUS_VIDEOROOM_ERROR_NO_SUCH_FEED
ROOM_EXISTS = 427  # JANUS_VIDEOROOM_ERROR_ROOM_EXISTS


class JanusError(RuntimeError):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"janus {code}: {reason}")
        self.code = code


class JanusSession:
    """A Janus session with one VideoRoom handle over one WebSocket."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.session_id = 0
        self.handle_id = 0

    async def open(self) -> None:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(self.url, protocols=("janus-protocol",))
        self._tasks.append(asyncio.get_running_loop().create_task(self._read()))
        created = await self._call({"janus": "create"})
        self.session_id = created["data"]["id"]
        attached = await self._call(
            {"janus": "attach", "session_id": self.session_id, "plugin": "janus.plugin.videoroom"}
        )
        self.handle_id = attached["data"]["id"]
        self._tasks.append(asyncio.get_running_loop().create_task(self._keepalive()))

    async def message(
        self, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A VideoRoom request; its answer (``success`` or the ``event`` after the ack)."""
        request: dict[str, Any] = {
            "janus": "message",
            "session_id": self.session_id,
            "handle_id": self.handle_id,
            "body": body,
        }
        if jsep is not None:
            request["jsep"] = jsep
        reply = await self._call(request)
        data = reply.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise JanusError(int(data["error_code"]), str(data.get("error", "")))
        return reply

    async def _call(self, request: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
        assert self._ws is not None
        transaction = str(next(self._ids))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future
        await self._ws.send_str(json.dumps({**request, "transaction": transaction}))
        try:
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(transaction, None)
        if reply.get("janus") == "error":
            error = reply.get("error", {})
            raise JanusError(int(error.get("code", 0)), str(error.get("reason", "")))
        return reply

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            reply = json.loads(frame.data)
            if reply.get("janus") == "ack" and "jsep" not in reply:
                continue  # a message's answer comes later, as an event
            future = self._waiting.get(str(reply.get("transaction")))
            if future is not None and not future.done():
                future.set_result(reply)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE)
            with contextlib.suppress(Exception):
                await self._call({"janus": "keepalive", "session_id": self.session_id})

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.send_str(
                    json.dumps(
                        {"janus": "destroy", "session_id": self.session_id, "transaction": "bye"}
                    )
                )
            await self._ws.close()
        if self._http is not None:
            await self._http.close()


class JanusMember:
    """A publisher or a subscriber of the one Janus VideoRoom of a fan-out step."""

    def __init__(
        self,
        url: str,
        address: str,
        media_sink: Callable[[bytes], None] | None = None,
        offer_filter: Callable[[str], str] | None = None,
    ) -> None:
        self.janus = JanusSession(url)
        self.ice = IceSettings([address])
        self.media_sink = media_sink
        self.offer_filter = offer_filter
        self.pc: RTCPeerConnection | None = None

    @property
    def subscriber_pc(self) -> RTCPeerConnection | None:
        return self.pc if self.media_sink is not None else None

    async def publish(
        self, kinds: list[str], on_connected: Callable[[], None]
    ) -> list[RTCRtpTransceiver]:
        await self.janus.open()
        with contextlib.suppress(JanusError):  # (427: another publisher made it first)
            await self.janus.message(
                {
                    "request": "create",
                    "room": ROOM,
                    "publishers": 1,
                    "bitrate": 0,
                    "videocodec": "vp8",
                    "audiocodec": "opus",
                    "notify_joining": False,
                }
            )
        await self.janus.message(
            {"request": "join", "ptype": "publisher", "room": ROOM, "id": PUBLISHER_ID}
        )
        pc = self.pc = self.ice.new_pc()
        added = []
        for kind in kinds:
            transceiver = pc.addTransceiver(kind, direction="sendonly")
            aiortc_hooks.disable_stock_sender(transceiver, on_connected)
            added.append(transceiver)
        self.ice.restrict_host_candidates(pc)
        await pc.setLocalDescription(await pc.createOffer())
        reply = await self.janus.message(
            {"request": "publish", "audio": True, "video": True},
            {"type": "offer", "sdp": pc.localDescription.sdp},
        )
        await pc.setRemoteDescription(RTCSessionDescription(reply["jsep"]["sdp"], "answer"))
        return added

    async def subscribe(self, deadline: float) -> None:
        await self.janus.open()
        loop = asyncio.get_running_loop()
        while True:
            try:
                reply = await self.janus.message(
                    {
                        "request": "join",
                        "ptype": "subscriber",
                        "room": ROOM,
                        "streams": [{"feed": PUBLISHER_ID}],
                    }
                )
                break
            except JanusError as exc:  # the publisher is not there yet
                if exc.code not in (NO_SUCH_FEED, 426) or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)
        pc = self.pc = self.ice.new_pc()
        sdp = reply["jsep"]["sdp"]
        if self.offer_filter is not None:
            sdp = self.offer_filter(sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        for transceiver in pc.getTransceivers():
            aiortc_hooks.disable_stock_receiver(transceiver)
        self.ice.restrict_host_candidates(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        if self.media_sink is not None:
            aiortc_hooks.tap_media_datagrams(pc, self.media_sink)
        await self.janus.message(
            {"request": "start"}, {"type": "answer", "sdp": pc.localDescription.sdp}
        )

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        await self.janus.close()
