"""Bad input gets a clear error code; other participants' media keeps flowing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import jwt
import pytest
from aiortc import RTCPeerConnection

from sfu.media import Source
from sfu.participant import Role
from signaling.client import ConsultClient
from signaling.client_errors import ClientError
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from signaling.tokens import dev_secret
from tests.conftest import RunningServer

ROOM = "consult-bad"


@dataclass
class LiveCall:
    doctor: ConsultClient
    nurse: ConsultClient
    video: TrackReader

    async def assert_still_flowing(self) -> None:
        before = self.video.stats.frames
        await self.video.wait_frames(before + 10, timeout=5)


@pytest.fixture
async def live_call(server: RunningServer) -> AsyncIterator[LiveCall]:
    doctor = server.client(server.token(ROOM, "doctor", Role.SPECIALIST))
    nurse = server.client(server.token(ROOM, "nurse", Role.HEALTH_WORKER))
    await doctor.connect()
    await doctor.join()
    await doctor.publish([(ToneTrack(), Source.MICROPHONE), (CameraTrack(), Source.CAMERA)])
    await nurse.connect()
    await nurse.join()
    reader = TrackReader((await nurse.wait_for_track(lambda t: t.kind == "video")).track)
    await reader.wait_frames(5)
    yield LiveCall(doctor, nurse, reader)
    await reader.stop()
    await asyncio.gather(doctor.leave(), nurse.leave())


class RawSocket:
    """A bare WebSocket to send exactly what a test wants."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server

    async def __aenter__(self) -> RawSocket:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.server.ws_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        await self.session.close()

    async def send(self, data: str) -> dict[str, object]:
        await self.ws.send_str(data)
        msg = await self.ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        reply: dict[str, object] = json.loads(msg.data)
        return reply

    async def error_code(self, message: dict[str, object]) -> object:
        reply = await self.send(json.dumps(message))
        assert reply["type"] == "error", reply
        assert isinstance(reply.get("message"), str) and reply["message"]
        return reply["code"]


def _token(server: RunningServer, **claims: object) -> str:
    now = int(time.time())
    body: dict[str, object] = {
        "iss": "dev",
        "aud": "digiclinic",
        "sub": "mallory",
        "room": ROOM,
        "role": "patient",
        "iat": now,
        "exp": now + 300,
    }
    body.update(claims)
    secret = claims.pop("_secret", None) or dev_secret(server.config.auth).reveal()
    body.pop("_secret", None)
    return jwt.encode(body, str(secret), algorithm="HS256")


async def test_bad_tokens_are_refused_with_codes(
    server: RunningServer, live_call: LiveCall
) -> None:
    now = int(time.time())
    cases = {
        "token_invalid": [
            "not-a-jwt",
            _token(server, _secret="x" * 32),
            _token(server, aud="other"),
        ],
        "token_expired": [_token(server, iat=now - 600, exp=now - 300)],
        "unknown_issuer": [_token(server, iss="evil-portal")],
    }
    async with RawSocket(server) as raw:
        for code, tokens in cases.items():
            for token in tokens:
                assert await raw.error_code({"type": "join", "token": token}) == code
        wrong_room = _token(server)
        assert (
            await raw.error_code({"type": "join", "token": wrong_room, "room": "other"})
            == "wrong_room"
        )
        assert await raw.error_code({"type": "join"}) == "token_invalid"
    await live_call.assert_still_flowing()
    assert len(server.room(ROOM).participants) == 2


async def test_malformed_messages_get_error_codes(
    server: RunningServer, live_call: LiveCall
) -> None:
    limit = server.config.server.max_message_bytes
    async with RawSocket(server) as raw:
        assert (await raw.send("{not json"))["code"] == "bad_json"
        assert (await raw.send("[1, 2]"))["code"] == "bad_message"
        assert (await raw.send('{"type": 42}'))["code"] == "bad_message"
        assert await raw.error_code({"type": "teleport"}) == "unknown_type"
        assert await raw.error_code({"type": "publish", "sdp": "v=0"}) == "not_joined"
        big = json.dumps({"type": "ping", "pad": "x" * (limit + 10)})
        assert (await raw.send(big))["code"] == "message_too_large"
        # the connection is still usable after each error
        assert (await raw.send('{"type": "ping", "id": 1}')) == {"type": "pong", "ref": 1}
    # a frame far beyond the limit is cut off by the WebSocket layer with close code 1009
    async with RawSocket(server) as raw:
        await raw.ws.send_str("x" * (limit * 4))
        msg = await raw.ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert raw.ws.close_code == 1009
    await live_call.assert_still_flowing()


async def test_invalid_sdp_is_refused_and_the_call_goes_on(
    server: RunningServer, live_call: LiveCall
) -> None:
    async with RawSocket(server) as raw:
        token = server.token(ROOM, "interp", Role.INTERPRETER)
        join = {"type": "join", "token": token, "auto_subscribe": False}
        joined = await raw.send(json.dumps(join))
        assert joined["type"] == "joined"
        for sdp in (
            "garbage",
            "v=0\r\n",
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
        ):
            reply = await raw.send(json.dumps({"type": "publish", "sdp": sdp, "tracks": []}))
            assert reply["type"] == "error" and reply["code"] == "bad_sdp", reply
        bad_track = {"type": "publish", "sdp": "v=0", "tracks": [{"mid": "0", "source": "x-ray"}]}
        assert await raw.error_code(bad_track) == "bad_message"
        assert await raw.error_code({"type": "subscriber_answer", "sdp": "v=0"}) == "bad_message"
        assert await raw.error_code({"type": "subscribe", "track_id": "nope"}) == "not_found"
        assert await raw.error_code({"type": "join", "token": token}) == "already_joined"
    await live_call.assert_still_flowing()


async def test_server_keeps_serving_new_joins_after_bad_input(
    server: RunningServer, live_call: LiveCall
) -> None:
    async with RawSocket(server) as raw:
        for _ in range(5):
            await raw.send("{")
    late = server.client(server.token(ROOM, "late", Role.OBSERVER))
    await late.connect()
    await late.join()
    video = await late.wait_for_track(lambda t: t.kind == "video")
    reader = TrackReader(video.track)
    await reader.wait_frames(3)
    await reader.stop()
    await late.leave()
    async with aiohttp.ClientSession() as http:
        async with http.get(server.server.make_url("/healthz")) as resp:
            assert resp.status == 200
        async with http.get(server.server.make_url("/metrics")) as resp:
            text = await resp.text()
    assert 'digiclinic_signaling_errors_total{code="bad_json"} 5.0' in text


async def test_disallowed_origin_is_refused(server: RunningServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.server.make_url("/ws"), headers={"Origin": "https://evil.example"}) as resp,
    ):
        assert resp.status == 403
        assert (await resp.json())["code"] == "origin_not_allowed"


def _assert_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """No traceback, nothing at ERROR, at most one line from the session handler."""
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [f"{r.name}: {r.getMessage()}" for r in loud]
    session_lines = [r for r in caplog.records if r.name == "signaling.session"]
    assert len(session_lines) <= 1, [r.getMessage() for r in session_lines]


async def test_deep_nesting_and_lone_surrogates_get_codes_quietly(
    server: RunningServer, live_call: LiveCall, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    depth = 20000  # far deeper than the JSON parser recurses, well within the size limit
    nested = '{"type": "ping", "id": 1, "x": ' + "[" * depth + "]" * depth + "}"
    surrogate = _token(server)[:20] + "\\ud800" + _token(server)[20:]
    async with RawSocket(server) as raw:
        caplog.clear()
        assert (await raw.send(nested))["code"] == "bad_json"
        _assert_quiet(caplog)
        caplog.clear()
        join = '{"type": "join", "id": 2, "token": "' + surrogate + '"}'
        reply = await raw.send(join)
        assert reply["code"] == "bad_message", reply
        _assert_quiet(caplog)
        caplog.clear()
        chat = '{"type": "chat", "id": 3, "text": "hi \\udfff"}'
        assert (await raw.send(chat))["code"] == "bad_message"
        _assert_quiet(caplog)
        # a properly paired escape is just a character
        paired = '{"type": "ping", "id": 4, "note": "\\ud83d\\ude00"}'
        assert await raw.send(paired) == {"type": "pong", "ref": 4}
    await live_call.assert_still_flowing()
    assert len(server.room(ROOM).participants) == 2


async def test_bad_ice_candidates_get_bad_message_quietly(
    server: RunningServer, live_call: LiveCall, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    interp = server.client(server.token(ROOM, "interp", Role.INTERPRETER))
    await interp.connect()
    await interp.join()
    await interp.publish([(ToneTrack(), Source.MICROPHONE)])
    good = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"
    garbage = [
        {"candidate": "candidate:garbage", "sdpMid": "0", "sdpMLineIndex": 0},
        {"candidate": "garbage garbage garbage", "sdpMid": "0"},
        {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 99999999 typ host", "sdpMid": "0"},
        {"candidate": "candidate:1 1 udp 2122260223 not-an-address 5000 typ host", "sdpMid": "0"},
        {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ wormhole", "sdpMid": "0"},
        {"candidate": "candidate:1 1 udp -5 127.0.0.1 5000 typ host", "sdpMid": "0"},
        {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host raddr", "sdpMid": "0"},
        {"candidate": good + " " + "x" * 600, "sdpMid": "0"},
        # without sdpMid and sdpMLineIndex (or with unusable ones)
        {"candidate": good},
        {"candidate": good, "sdpMid": 5, "sdpMLineIndex": "0"},
        {"candidate": good, "sdpMLineIndex": -1},
    ]
    try:
        for candidate in garbage:
            caplog.clear()
            with pytest.raises(ClientError) as refused:
                await interp.request(
                    {"type": "ice_candidate", "pc": "publisher", "candidate": candidate}
                )
            assert refused.value.code == "bad_message", (candidate, refused.value)
            _assert_quiet(caplog)
        # a well-formed candidate is still taken, and the connection still answers
        ok = {"candidate": good, "sdpMid": "0", "sdpMLineIndex": 0}
        reply = await interp.request({"type": "ice_candidate", "pc": "publisher", "candidate": ok})
        assert reply["type"] == "ack"
        assert (await interp.request({"type": "ping"}))["type"] == "pong"
        await live_call.assert_still_flowing()
        assert len(server.room(ROOM).participants) == 3
    finally:
        await interp.leave()


async def test_publish_with_too_many_m_lines_is_refused_whole(
    server: RunningServer, live_call: LiveCall
) -> None:
    # the defaults of rooms.max_media_sections and rooms.max_published_tracks
    max_sections, max_tracks = 16, 8
    interp = server.client(server.token(ROOM, "interp", Role.INTERPRETER))
    await interp.connect()
    await interp.join()

    async def offer(sending: int, inactive: int = 0) -> str:
        pc = RTCPeerConnection()
        try:
            for _ in range(sending):
                pc.addTransceiver("audio", direction="sendonly")
            for _ in range(inactive):
                pc.addTransceiver("audio", direction="inactive")
            return (await pc.createOffer()).sdp
        finally:
            await pc.close()

    try:
        for sdp in (
            await offer(max_sections + 1),  # every m-line sending
            await offer(1, max_sections),  # one sending, too many m-lines
            await offer(max_tracks + 1),  # few enough m-lines, too many tracks
            await offer(40),
        ):
            with pytest.raises(ClientError) as refused:
                await interp.request({"type": "publish", "sdp": sdp, "tracks": []})
            assert refused.value.code == "too_many_tracks", refused.value
            # nothing half-created: no publisher connection, no track anywhere
            participant = server.room(ROOM).participants[str(interp.participant_id)]
            assert participant.publisher is None
            assert len(list(server.room(ROOM).producers())) == 2
        events = [*live_call.doctor.events, *live_call.nurse.events]
        announced = [e for e in events if e.get("type") == "track_published"]
        assert not [e for e in announced if e.get("participant_id") == interp.participant_id]
        # the limit itself is allowed
        reply = await interp.request(
            {"type": "publish", "sdp": await offer(max_tracks), "tracks": []}
        )
        assert len(reply["tracks"]) == max_tracks
        await live_call.assert_still_flowing()
    finally:
        await interp.leave()
