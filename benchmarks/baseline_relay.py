"""Baseline "relay" for the benchmarks: the naive aiortc design digiclinic is measured against.

    python -m benchmarks.baseline_relay --host 127.0.0.1 --port 8090

Every published track is DECODED once by aiortc's RTCRtpReceiver and fanned out
with ``aiortc.contrib.media.MediaRelay``; each subscriber gets its own relay proxy
on its own RTCRtpSender, which RE-ENCODES it (one encoder per subscriber per track).

It speaks just enough of protocol v1 (docs/protocol.md) for the unmodified
``signaling.client.ConsultClient``: ``join`` (the token's payload is read, its
signature is NOT verified: never expose this server), ``publish``,
``subscriber_answer``, ``ping`` and ``leave``. No lobby, every participant receives
every other participant's tracks. ICE host candidates are on 127.0.0.1 only.

``--config FILE serve`` is accepted too (only ``server.host``/``server.port`` are read
from the YAML), so ``benchmarks.server_process.ServerProcess(module=
"benchmarks.baseline_relay")`` runs it exactly like digiclinic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import jwt
import yaml
from aiohttp import WSMsgType, web
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver
from aiortc import RTCSessionDescription as SDP
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from sfu import aiortc_hooks

try:
    import uvloop
except ImportError:  # pragma: no cover - digiclinic serve uses it too, when present
    uvloop = None  # type: ignore[assignment]

logger = logging.getLogger("baseline_relay")
Event = dict[str, Any]
ICE_ADDRESSES = ["127.0.0.1"]
ANSWER_TIMEOUT = 15.0


def ev(kind: str, **fields: Any) -> Event:
    return {"type": kind, **fields}


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(eq=False)
class Published:
    track_id: str
    participant_id: str
    kind: str
    source: str
    track: MediaStreamTrack
    ended: bool = False

    def info(self) -> Event:
        return dict(id=self.track_id, kind=self.kind, source=self.source, muted=False)


@dataclass(eq=False)
class Participant:
    id: str
    name: str
    role: str
    room: str
    ws: web.WebSocketResponse
    publisher_pc: RTCPeerConnection | None = None
    subscriber_pc: RTCPeerConnection | None = None
    published: dict[str, Published] = field(default_factory=dict)  # by mid
    arrived: list[MediaStreamTrack] = field(default_factory=list)  # pc "track" events
    drains: list[asyncio.Task[None]] = field(default_factory=list)
    sending: dict[str, tuple[RTCRtpTransceiver, Published]] = field(default_factory=dict)
    to_add: list[Published] = field(default_factory=list)
    to_remove: list[str] = field(default_factory=list)
    answer: asyncio.Future[None] | None = None
    negotiator: asyncio.Task[None] | None = None
    closed: bool = False

    def info(self) -> Event:
        producers = [p.info() for p in self.published.values()]
        return dict(id=self.id, name=self.name, role=self.role, state="active", producers=producers)

    async def send(self, event: Event) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_json(event)


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


async def drain(track: MediaStreamTrack) -> None:
    """aiortc decodes every received frame into an unbounded queue: someone must read it."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


class Baseline:
    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.rooms: dict[str, dict[str, Participant]] = {}
        self.retired = [0, 0, 0, 0]  # packets in, bytes in, packets out, bytes out
        self.stopping = False

    def others(self, me: Participant) -> list[Participant]:
        return [p for p in self.rooms.get(me.room, {}).values() if p is not me]

    # -- WebSocket --------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        me: Participant | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    data = None
                if not isinstance(data, dict):
                    await reply(
                        ws, ev("error", code="bad_message", message="not a JSON object"), None
                    )
                    continue
                ref, kind = data.get("id"), data.get("type")
                try:
                    if kind == "ping":
                        await reply(ws, ev("pong"), ref)
                    elif kind == "join":
                        if me is not None:
                            raise Refused("already_joined", "this connection has joined")
                        me = await self.join(ws, data, ref)
                    elif me is None:
                        raise Refused("not_joined", "join first")
                    elif kind == "publish":
                        await self.publish(me, data, ref)
                    elif kind == "subscriber_answer":
                        await self.subscriber_answer(me, data, ref)
                    elif kind == "leave":
                        await reply(ws, ev("left"), ref)
                        await self.leave(me, "left")
                        break
                    else:
                        raise Refused("unknown_type", f"unsupported message type {kind!r}")
                except Refused as exc:
                    await reply(ws, ev("error", code=exc.code, message=exc.message), ref)
                except Exception:
                    logger.exception("%s failed", kind)
                    await reply(ws, ev("error", code="internal_error", message="see log"), ref)
        finally:
            if me is not None:
                await self.leave(me, "disconnected")
            await ws.close()
        return ws

    async def join(self, ws: web.WebSocketResponse, data: Event, ref: Any) -> Participant:
        try:
            claims = jwt.decode(str(data.get("token")), options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Refused("token_invalid", "token is not a valid JWT") from exc
        room, sub = claims.get("room"), claims.get("sub")
        if not isinstance(room, str) or not isinstance(sub, str):
            raise Refused("token_invalid", "token has no valid room or sub claim")
        if data.get("room") not in (None, room):
            raise Refused("wrong_room", "the token is for another room")
        role = str(claims.get("role", "patient"))
        name = str(claims.get("name") or sub)
        me = Participant("p" + secrets.token_hex(6), name, role, room, ws)
        others = list(self.rooms.setdefault(room, {}).values())
        self.rooms[room][me.id] = me
        grants = dict(publish=True, subscribe=True, admit=False, record=False)
        myself = dict(id=me.id, identity=sub, name=name, role=role, grants=grants)
        roster = [o.info() for o in others]
        joined = ev("joined", protocol=1, room=room, participant=myself, state="active")
        await reply(ws, {**joined, "participants": roster, "ice_servers": []}, ref)
        for other in others:
            await other.send(ev("participant_joined", participant=me.info()))
            self.subscribe(me, list(other.published.values()))
        return me

    async def publish(self, me: Participant, data: Event, ref: Any) -> None:
        sdp = data.get("sdp")
        if not isinstance(sdp, str):
            raise Refused("bad_message", "sdp must be a string")
        tracks = data.get("tracks") or []
        labels = {str(t.get("mid")): str(t.get("source")) for t in tracks if isinstance(t, dict)}
        if me.publisher_pc is None:
            me.publisher_pc = new_pc()
            me.publisher_pc.on("track", me.arrived.append)
        pc = me.publisher_pc
        try:
            await pc.setRemoteDescription(SDP(sdp, "offer"))
        except Exception as exc:
            raise Refused("bad_sdp", f"offer rejected: {exc}") from exc
        aiortc_hooks.configure_host_candidates(pc, ICE_ADDRESSES)
        await pc.setLocalDescription(await pc.createAnswer())  # recvonly on every m-line
        new: list[Published] = []
        for transceiver in pc.getTransceivers():
            track, mid = transceiver.receiver.track, transceiver.mid
            if mid is None or mid in me.published or track not in me.arrived:
                continue
            default = "camera" if track.kind == "video" else "microphone"
            track_id = f"{me.id}:{len(me.published) + 1}"
            pub = Published(track_id, me.id, track.kind, labels.get(mid, default), track)
            me.published[mid] = pub
            new.append(pub)
            proxy = self.relay.subscribe(track, buffered=False)
            me.drains.append(asyncio.get_running_loop().create_task(drain(proxy)))
        me.arrived.clear()
        mine = [dict(mid=m, track_id=p.track_id, source=p.source) for m, p in me.published.items()]
        await reply(me.ws, ev("publish_answer", sdp=pc.localDescription.sdp, tracks=mine), ref)
        for other in self.others(me):
            for pub in new:
                await other.send(ev("track_published", participant_id=me.id, track=pub.info()))
            self.subscribe(other, new)

    async def subscriber_answer(self, me: Participant, data: Event, ref: Any) -> None:
        pc, waiting = me.subscriber_pc, me.answer
        if pc is None:
            raise Refused("bad_message", "no subscriber connection")
        if waiting is None or waiting.done():
            raise Refused("bad_sdp", "no offer is waiting for an answer")
        try:
            await pc.setRemoteDescription(SDP(str(data.get("sdp")), "answer"))
        except Exception as exc:
            raise Refused("bad_sdp", f"answer rejected: {exc}") from exc
        if not waiting.done():
            waiting.set_result(None)
        await reply(me.ws, ev("ack"), ref)

    # -- subscriber connection: one re-encoding sender per (subscriber, track) ----------

    def subscribe(self, me: Participant, pubs: list[Published]) -> None:
        me.to_add.extend(pubs)
        self.kick(me)

    def kick(self, me: Participant) -> None:
        """Renegotiate soon; changes made meanwhile are batched into one offer."""
        if not (me.closed or self.stopping) and (me.negotiator is None or me.negotiator.done()):
            me.negotiator = asyncio.get_running_loop().create_task(self.negotiate(me))

    async def negotiate(self, me: Participant) -> None:
        try:
            while (me.to_add or me.to_remove) and not me.closed:
                adds, me.to_add = [p for p in me.to_add if not p.ended], []
                removes, me.to_remove = [t for t in me.to_remove if t in me.sending], []
                if not adds and not removes:
                    continue
                if me.subscriber_pc is None:
                    me.subscriber_pc = new_pc()
                pc = me.subscriber_pc
                for pub in adds:
                    if pub.track_id not in me.sending:
                        # addTransceiver, not addTrack: addTrack would reuse inactive m-lines
                        sender_track = self.relay.subscribe(pub.track)
                        transceiver = pc.addTransceiver(sender_track, direction="sendonly")
                        me.sending[pub.track_id] = (transceiver, pub)
                for track_id in removes:
                    transceiver, _ = me.sending.pop(track_id)
                    transceiver.direction = "inactive"
                    if transceiver.sender.track is not None:
                        transceiver.sender.track.stop()  # unregisters the relay proxy
                    await transceiver.sender.stop()
                aiortc_hooks.configure_host_candidates(pc, ICE_ADDRESSES)
                await pc.setLocalDescription(await pc.createOffer())
                offered = [
                    dict(mid=t.mid, track_id=p.track_id, participant_id=p.participant_id,
                         kind=p.kind, source=p.source)
                    for t, p in me.sending.values()
                ]  # fmt: skip
                me.answer = asyncio.get_running_loop().create_future()
                await me.send(ev("subscriber_offer", sdp=pc.localDescription.sdp, tracks=offered))
                await asyncio.wait_for(me.answer, ANSWER_TIMEOUT)
        except TimeoutError:
            logger.warning("%s did not answer its subscriber offer", me.id)
        except Exception:
            if not me.closed:
                logger.exception("subscriber renegotiation of %s failed", me.id)

    # -- teardown and metrics -------------------------------------------------------------

    async def leave(self, me: Participant, reason: str) -> None:
        if me.closed:
            return
        me.closed = True
        members = self.rooms.get(me.room, {})
        members.pop(me.id, None)
        if not members:
            self.rooms.pop(me.room, None)
        if me.negotiator is not None:
            me.negotiator.cancel()
        gone = list(me.published.values())
        for pub in gone:
            pub.ended = True
        for other in members.values():
            for pub in gone:
                await other.send(
                    ev("track_unpublished", participant_id=me.id, track_id=pub.track_id)
                )
            await other.send(ev("participant_left", participant_id=me.id, reason=reason))
            other.to_remove.extend(pub.track_id for pub in gone)
            self.kick(other)
        for task in me.drains:
            task.cancel()
        for transceiver, _ in me.sending.values():
            if transceiver.sender.track is not None:
                transceiver.sender.track.stop()
        await add_counts(self.retired, me.publisher_pc, outbound=False)
        await add_counts(self.retired, me.subscriber_pc, outbound=True)
        for pc in (me.publisher_pc, me.subscriber_pc):
            if pc is not None:
                await pc.close()
        me.publisher_pc = me.subscriber_pc = None

    async def metrics(self, request: web.Request) -> web.Response:
        totals = list(self.retired)
        participants = [p for room in self.rooms.values() for p in room.values()]
        for p in participants:
            await add_counts(totals, p.publisher_pc, outbound=False)
            await add_counts(totals, p.subscriber_pc, outbound=True)
        series = [
            ("digiclinic_rtp_packets_in", "counter", totals[0]),
            ("digiclinic_rtp_bytes_in", "counter", totals[1]),
            ("digiclinic_rtp_packets_out", "counter", totals[2]),
            ("digiclinic_rtp_bytes_out", "counter", totals[3]),
            ("digiclinic_producers", "gauge", sum(len(p.published) for p in participants)),
            ("digiclinic_consumers", "gauge", sum(len(p.sending) for p in participants)),
            ("digiclinic_participants", "gauge", len(participants)),
            ("digiclinic_rooms", "gauge", len(self.rooms)),
        ]
        lines: list[str] = []
        for name, kind, value in series:
            sample = f"{name}_total" if kind == "counter" else name
            lines += [f"# TYPE {name} {kind}", f"{sample} {float(value)}"]
        body = "\n".join(lines) + "\n"
        return web.Response(body=body.encode(), content_type="text/plain; version=0.0.4")

    async def shutdown(self, app: web.Application) -> None:
        self.stopping = True
        for room in list(self.rooms.values()):
            for p in list(room.values()):
                await self.leave(p, "server_shutdown")
                await p.ws.close()


async def add_counts(totals: list[int], pc: RTCPeerConnection | None, outbound: bool) -> None:
    """Add what aiortc's getStats() says ``pc`` sent (outbound) or received to ``totals``.

    aiortc's inbound-rtp stats have no byte count: bytes in are the DTLS transport's
    received bytes (SRTP, SRTCP and DTLS after ICE).
    """
    if pc is None:
        return
    stats = list((await pc.getStats()).values())
    if outbound:
        totals[2] += sum(s.packetsSent for s in stats if s.type == "outbound-rtp")
        totals[3] += sum(s.bytesSent for s in stats if s.type == "outbound-rtp")
    else:
        totals[0] += sum(s.packetsReceived for s in stats if s.type == "inbound-rtp")
        totals[1] += sum(s.bytesReceived for s in stats if s.type == "transport")


async def reply(ws: web.WebSocketResponse, event: Event, ref: Any) -> None:
    if ref is not None:
        event["ref"] = ref
    if not ws.closed:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_json(event)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    baseline = Baseline()
    app = web.Application()
    app.router.add_get("/ws", baseline.websocket)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", baseline.metrics)
    app.on_shutdown.append(baseline.shutdown)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline_relay")
    parser.add_argument("--host", help="HTTP address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default 8090)")
    parser.add_argument("--config", help="digiclinic YAML: only server.host/port are read")
    parser.add_argument("command", nargs="?", choices=["serve"], help="accepted, ignored")
    args = parser.parse_args(argv)
    server: dict[str, Any] = {}
    if args.config:
        with open(args.config) as f:
            server = (yaml.safe_load(f) or {}).get("server") or {}
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    if uvloop is not None:
        uvloop.install()
    host = args.host or server.get("host", "127.0.0.1")
    port = args.port or int(server.get("port", 8090))
    web.run_app(create_app(), host=host, port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
