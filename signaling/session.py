"""One WebSocket signalling connection: decode, authorise, dispatch, reply.

Messages of one connection are handled in order. Room events reach the
client through a bounded outbox drained by one writer task that this
session owns; a client too slow to read its events is disconnected rather
than let the server's memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

from sfu.errors import ErrorCode, SfuError
from sfu.participant import Event, LeaveReason, Participant, ParticipantState, SharedEvent
from sfu.peer import SdpError
from sfu.room import Room
from sfu.room_manager import RoomManager
from signaling import protocol
from signaling.capture_service import CaptureService
from signaling.metrics import SignalingMetrics
from signaling.recording_service import RecordingService
from signaling.routing import JoinRouter
from signaling.single_use import TokenUse
from signaling.turn import TurnCredentials

logger = logging.getLogger(__name__)

OUTBOX_LIMIT = 1000
_session_ids = itertools.count(1)


class SessionState(enum.Enum):
    CONNECTED = "connected"
    JOINED = "joined"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_message_bytes: int
    messages_per_second: float
    join_timeout: float = 10.0  # server.join_timeout: an unjoined connection is closed after it


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class SignalingSession:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        rooms: RoomManager,
        router: JoinRouter,
        metrics: SignalingMetrics,
        limits: SessionLimits,
        turn: TurnCredentials,
        recordings: RecordingService,
        captures: CaptureService,
        on_joined: Callable[[], None] | None = None,
    ) -> None:
        self.id = next(_session_ids)
        self.state = SessionState.CONNECTED
        self.ws = ws
        self.rooms = rooms
        self.router = router
        self.metrics = metrics
        self.limits = limits
        self.turn = turn
        self.recordings = recordings
        self.captures = captures
        self.room: Room | None = None
        self.participant: Participant | None = None
        # events, and binary frames (capture chunks, docs/capture.md)
        self._outbox: asyncio.Queue[Event | bytes | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._bucket = TokenBucket(limits.messages_per_second, limits.messages_per_second * 2)
        self._token: TokenUse | None = None  # a single-use token's hold (signaling/single_use.py)
        self._denied = False  # denied from the lobby: the token is spent on close
        self._on_joined = on_joined  # the connection no longer counts as unjoined
        self._deadline: asyncio.TimerHandle | None = None
        self._joining = False
        self._close_code: tuple[int, bytes] | None = None  # WebSocket close code and reason

    def _set_state(self, state: SessionState) -> None:
        if state is not self.state:
            logger.debug("session %d %s -> %s", self.id, self.state.value, state.value)
            self.state = state
            if state is SessionState.JOINED and self._on_joined is not None:
                self._on_joined()

    def _join_deadline(self) -> None:
        """No join within server.join_timeout: close with an error and close code 1008."""
        if self.state is not SessionState.CONNECTED:
            return
        if self._joining:  # a join under way (e.g. waiting for Redis): let it finish
            self._deadline = asyncio.get_running_loop().call_later(1.0, self._join_deadline)
            return
        timeout = self.limits.join_timeout
        logger.debug("session %d: no join within %g s, closing", self.id, timeout)
        self._error(SfuError(ErrorCode.JOIN_TIMEOUT, f"no join within {timeout:g} seconds"), None)
        self._close_code = (WSCloseCode.POLICY_VIOLATION, b"join_timeout")
        self._outbox.put_nowait(None)
        self._set_state(SessionState.CLOSED)

    # -- outbox ----------------------------------------------------------------

    def send(self, event: Event) -> None:
        if self.state is SessionState.CLOSED:
            return
        if event.get("type") == "denied":
            self._denied = True
        if event.get("type") == "admitted" and self.participant is not None:
            event = {**event, "ice_servers": self.turn.ice_servers(self.participant.id)}
        if self._outbox.qsize() >= OUTBOX_LIMIT:
            logger.warning("session %d: client not reading events, disconnecting", self.id)
            self._outbox.put_nowait(None)
            self._set_state(SessionState.CLOSED)
            return
        self._outbox.put_nowait(event)

    def send_bytes(self, frame: bytes) -> bool:
        """A binary frame (a capture chunk); False once this connection is closed."""
        if self.state is SessionState.CLOSED:
            return False
        self._outbox.put_nowait(frame)
        return True

    @property
    def backlog(self) -> int:
        return self._outbox.qsize()

    async def _write_loop(self) -> None:
        while True:
            event = await self._outbox.get()
            if event is None:
                if self._close_code is not None:
                    code, reason = self._close_code
                    await self.ws.close(code=code, message=reason)
                else:
                    await self.ws.close()
                return
            try:
                if isinstance(event, bytes):
                    await self.ws.send_bytes(event)
                    continue
                text = event.encoded() if isinstance(event, SharedEvent) else json.dumps(event)
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return
            if event.get("type") == "denied":
                await self.ws.close()
                return

    def _error(self, exc: SfuError, ref: str | int | None) -> None:
        self.metrics.errors.labels(code=exc.code.value).inc()
        event = protocol.error(exc.code, exc.message, ref)
        details = getattr(exc, "details", None)  # a redirect's URL, a capture's offset
        if isinstance(details, dict):
            event.update(details)
        self.send(event)

    # -- main loop -------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_loop())
        self._deadline = loop.call_later(self.limits.join_timeout, self._join_deadline)
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._handle_raw(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._handle_binary(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    # aiohttp closes with 1009 after a frame over max_msg_size
                    self._error(
                        SfuError(ErrorCode.MESSAGE_TOO_LARGE, "frame rejected by the server"), None
                    )
                    break
                if self.state is SessionState.CLOSED:
                    break
        finally:
            if self._deadline is not None:
                self._deadline.cancel()
            if self.state is not SessionState.CLOSED:
                # why the client went away, e.g. the kernel aborting an unwritable socket
                error = self.ws.exception()
                logger.info(
                    "session %d: WebSocket ended (close code %s%s)",
                    self.id,
                    self.ws.close_code,
                    f", {type(error).__name__}: {error}" if error else "",
                )
            await self.close(LeaveReason.DISCONNECTED)

    async def _handle_raw(self, raw: str) -> None:
        ref: str | int | None = None
        try:
            if not self._bucket.take():
                raise SfuError(ErrorCode.RATE_LIMITED, "too many messages, slow down")
            message = protocol.decode(raw, self.limits.max_message_bytes)
            ref = message.id
            await self._dispatch(message)
        except SfuError as exc:
            self._error(exc, ref)
        except SdpError as exc:
            self._error(SfuError(ErrorCode.BAD_SDP, str(exc)), ref)
        except Exception:
            logger.exception("session %d: internal error handling a message", self.id)
            self._error(SfuError(ErrorCode.INTERNAL_ERROR, "internal error"), ref)

    def _handle_binary(self, frame: bytes) -> None:
        """A capture chunk (the only binary frames): answered with its progress or an error."""
        try:
            if not self._bucket.take():
                raise SfuError(ErrorCode.RATE_LIMITED, "too many messages, slow down")
            if len(frame) > self.limits.max_message_bytes:
                raise SfuError(
                    ErrorCode.MESSAGE_TOO_LARGE,
                    f"messages are limited to {self.limits.max_message_bytes} bytes",
                )
            room, participant = self._joined()
            if participant.state is ParticipantState.LOBBY:
                raise SfuError(ErrorCode.NOT_ADMITTED, "waiting in the lobby")
            self.send(self.captures.chunk(frame, room, participant))
        except SfuError as exc:
            self._error(exc, None)
        except Exception:
            logger.exception("session %d: internal error handling a capture chunk", self.id)
            self._error(SfuError(ErrorCode.INTERNAL_ERROR, "internal error"), None)

    async def _dispatch(self, message: protocol.Message) -> None:
        kind = message.type
        if kind == "ping":
            self._reply(message, {"type": "pong"})
            return
        if kind == "join":
            self._joining = True
            try:
                await self._join(message)
            finally:
                self._joining = False
            return
        room, participant = self._joined()
        if participant.state is ParticipantState.LOBBY and kind != "leave":
            # one answer for everything, before any effect: the lobby learns nothing of the
            # room (not even whether a recording asks for consent) and does nothing in it
            raise SfuError(ErrorCode.NOT_ADMITTED, "waiting in the lobby")
        if kind == "leave":
            await self._spend_token()  # before `left`: from now on the token joins no more
            self._reply(message, {"type": "left"})
            await self.close(LeaveReason.LEFT)
        elif kind == "admit":
            admitted = message.str_field("participant_id")
            room.admit(participant, admitted)
            self.router.admitted(room, admitted)
            self._ack(message)
            if (newcomer := room.participants.get(admitted)) is not None:
                self.captures.participant_active(room, newcomer)
        elif kind == "deny":
            denied = room.deny(participant, message.str_field("participant_id"))
            await room.leave(denied, LeaveReason.DENIED)
            self._ack(message)
        elif kind == "publish":
            answer = await room.publish(
                participant, protocol.sdp_field(message), protocol.tracks_field(message)
            )
            tracks = []
            if participant.publisher is not None:
                tracks = [
                    {"mid": p.mid, "track_id": p.id, "source": p.source.value}
                    for p in participant.publisher.producers.values()
                ]
            self._reply(message, {"type": "publish_answer", "sdp": answer, "tracks": tracks})
        elif kind == "subscriber_answer":
            await room.subscriber_answer(participant, protocol.sdp_field(message))
            self._ack(message)
        elif kind == "ice_candidate":
            await self._ice_candidate(participant, message)
            self._ack(message)
        elif kind == "subscribe":
            room.subscribe(participant, message.str_field("track_id"))
            self._ack(message)
        elif kind == "unsubscribe":
            room.unsubscribe(participant, message.str_field("track_id"))
            self._ack(message)
        elif kind == "pause_video":
            paused = message.bool_field("paused", True)
            room.set_video_paused(participant, message.str_field("track_id"), paused)
            self._ack(message)
        elif kind == "track_settings":
            pinned = message.body.get("pinned")
            if pinned is not None and not isinstance(pinned, bool):
                pinned = message.bool_field("pinned", False)  # raises the usual error
            room.set_track_settings(
                participant,
                message.str_field("track_id"),
                protocol.render_size_field(message),
                pinned,
            )
            self._ack(message)
        elif kind == "chat":
            text = message.str_field("text", protocol.MAX_CHAT_CHARS)
            room.relay_chat(participant, text)
            self._ack(message)
        elif kind == "recording_start":
            policy = message.body.get("policy")
            self.recordings.start(room, participant, policy if isinstance(policy, str) else None)
            self._ack(message)
        elif kind == "consent":
            given = message.bool_field("given", True)
            self.recordings.consent(room, participant, given)  # applied before the ack
            self._ack(message)
        elif kind == "recording_stop":
            await self.recordings.stop(room, participant)
            self._ack(message)
        elif kind == "audio_only":
            room.set_audio_only(participant, message.bool_field("enabled", True))
            self._ack(message)
        elif kind == "end_consult":
            room.require_admit(participant, "ending the consult")
            self._ack(message)  # before the room_closed that follows
            await room.end(participant)
        elif kind == "on_hold":
            room.set_on_hold(participant, message.bool_field("enabled", True))
            self._ack(message)
        elif kind.startswith("capture_"):
            self._reply(message, await self.captures.handle(message, room, participant, self))
        elif kind == "mute":
            room.set_muted(
                participant, message.str_field("track_id"), message.bool_field("muted", True)
            )
            self._ack(message)

    def _reply(self, message: protocol.Message, event: Event) -> None:
        if message.id is not None:
            event["ref"] = message.id
        self.send(event)

    def _ack(self, message: protocol.Message) -> None:
        self._reply(message, {"type": "ack"})

    def _joined(self) -> tuple[Room, Participant]:
        if self.room is None or self.participant is None:
            raise SfuError(ErrorCode.NOT_JOINED, "send 'join' first")
        if self.participant.state is ParticipantState.LEFT:
            raise SfuError(ErrorCode.NOT_JOINED, "no longer in the room")
        return self.room, self.participant

    async def _join(self, message: protocol.Message) -> None:
        if self.state is not SessionState.CONNECTED:
            raise SfuError(ErrorCode.ALREADY_JOINED, "this connection has already joined")
        started = time.perf_counter()
        claims = self.router.claims(message.body)
        wanted_room = message.str_field("room", 128, optional=True) or claims.room
        if wanted_room != claims.room:
            raise SfuError(ErrorCode.WRONG_ROOM, "this token is for another room")
        await self.router.route(claims)  # raises Redirect when the room is elsewhere
        readmit = await self.router.readmit(claims)  # admitted before the room moved here
        # single-use token: refused if it joined before, unless `resume` proves a reconnection
        use = await self.router.tokens.use(claims, message.str_field("resume", optional=True))
        try:
            room = self.rooms.get_or_create(claims.room_key)
            participant = Participant(
                participant_id=f"p{secrets.token_hex(6)}",
                identity=claims.identity,
                name=claims.name,
                role=claims.role,
                grants=claims.grants,
                events=self.send,
                auto_subscribe=message.bool_field("auto_subscribe", True),
            )
            room.agree_e2ee(participant, claims.e2ee, message.bool_field("e2ee", False))
            room.join(participant, admitted=readmit)
        except Exception:
            await self.router.tokens.unused(use)  # a refused join does not use the token up
            raise
        self._token = use
        if claims.guest:  # another hospital's participant, invited (signaling/invitations.py)
            logger.info(
                "session %d: %s from issuer %s joined a room of issuer %s",
                self.id,
                participant.id,
                claims.issuer,
                claims.hospital,
            )
            self.recordings.audit_guest(room.id, participant.id, claims.issuer)
        self.router.placement.room_changed(room.id)
        self.room, self.participant = room, participant
        self._set_state(SessionState.JOINED)
        self._reply(
            message,
            {
                "type": "joined",
                "protocol": protocol.PROTOCOL_VERSION,
                "room": claims.room,
                "participant": {
                    "id": participant.id,
                    "identity": participant.identity,
                    "name": participant.name,
                    "role": participant.role.value,
                    "grants": participant.grants.as_dict(),
                },
                "state": participant.state.value,
                "e2ee": room.e2ee.value,  # the page encrypts when it is not "off" (docs/e2ee.md)
                "participants": room.roster(exclude=participant)
                if participant.state is ParticipantState.ACTIVE
                else [],
                # TURN credentials only once admitted: never to someone in the lobby
                "ice_servers": self.turn.ice_servers(participant.id)
                if participant.state is ParticipantState.ACTIVE
                else [],
                # single-use token: what a reconnection presents with it (docs/protocol.md)
                **({"resume": use.resume} if use is not None else {}),
            },
        )
        if participant.state is ParticipantState.ACTIVE and participant.grants.admit:
            waiting = [{"id": p.id, "name": p.name, "role": p.role.value} for p in room.lobby()]
            if waiting:
                participant.send({"type": "lobby", "waiting": waiting})
        if participant.state is ParticipantState.ACTIVE:
            self.captures.participant_active(room, participant)
        self.metrics.join_seconds.observe(time.perf_counter() - started)

    async def _ice_candidate(self, participant: Participant, message: protocol.Message) -> None:
        which = message.str_field("pc", 16)
        peer = participant.publisher if which == "publisher" else participant.subscriber
        if which not in ("publisher", "subscriber") or peer is None:
            raise SfuError(ErrorCode.BAD_MESSAGE, "'pc' must name an existing connection")
        candidate = protocol.ice_candidate_field(message)  # None: end of candidates
        try:
            await peer.add_ice_candidate(candidate)
        except ValueError:  # aiortc's and aioice's own refusals
            raise SfuError(ErrorCode.BAD_MESSAGE, "ICE candidate refused") from None

    # -- teardown ----------------------------------------------------------------

    async def _spend_token(self) -> None:
        use, self._token = self._token, None
        await self.router.tokens.spend(use)

    async def close(self, reason: LeaveReason) -> None:
        if self._denied:
            await self._spend_token()
        room, participant = self.room, self.participant
        self.room = self.participant = None
        if room is not None and participant is not None:
            self.captures.participant_left(participant)
            await room.leave(participant, reason)
            self.router.placement.room_changed(room.id)
        if self.state is not SessionState.CLOSED:
            self._set_state(SessionState.CLOSED)
            self._outbox.put_nowait(None)
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), timeout=2)
            except (TimeoutError, asyncio.CancelledError):
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer
