"""The aiohttp application: HTTP API, WebSocket signalling, health and metrics.

``create_app(config)`` builds the application and never runs it (tests use
it through ``aiohttp_client``; ``digiclinic serve`` runs it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from yarl import URL

from sfu.errors import ErrorCode, SfuError
from sfu.participant import LeaveReason, ParticipantState, Role
from sfu.peer import IceServer, MediaSettings
from sfu.room import RoomSettings
from sfu.room_manager import RoomManager
from sfu.udp_mux import UdpMux
from signaling import protocol
from signaling.admin_api import add_admin_routes
from signaling.capture_service import CaptureService
from signaling.cluster import PLACEMENT, create_recordings, node_identity, setup_cluster
from signaling.config import Config
from signaling.connection_limits import TooManyConnections, UnjoinedConnections
from signaling.favicon import favicon
from signaling.metrics import SignalingMetrics
from signaling.origin_gate import origin_gate
from signaling.origins import OriginPolicy, public_url_origin
from signaling.recording_service import RecordingService
from signaling.routing import JoinRouter
from signaling.session import SessionLimits, SignalingSession
from signaling.thin_stream import make_thin
from signaling.tokens import (
    JoinClaims,
    TokenVerifier,
    dev_secret,
    mint_token,
    valid_id,
    with_dev_issuer,
)
from signaling.turn import TurnCredentials

logger = logging.getLogger(__name__)

REPO_WEB_CLIENT = Path(__file__).resolve().parent.parent / "web-client"

CONFIG = web.AppKey("config", Config)
ROOMS = web.AppKey("rooms", RoomManager)
VERIFIER = web.AppKey("verifier", TokenVerifier)
METRICS = web.AppKey("metrics", SignalingMetrics)
TURN = web.AppKey("turn", TurnCredentials)
RECORDINGS = web.AppKey("recordings", RecordingService)
CAPTURES = web.AppKey("captures", CaptureService)
SESSIONS: web.AppKey[set[SignalingSession]] = web.AppKey("sessions")
ROUTER = web.AppKey("router", JoinRouter)
ORIGINS = web.AppKey("origins", OriginPolicy)
UNJOINED = web.AppKey("unjoined", UnjoinedConnections)


def media_settings(config: Config, udp_mux: UdpMux | None = None) -> MediaSettings:
    media = config.media
    return MediaSettings(
        ice_addresses=tuple(media.ice_addresses),
        announce=dict(media.announce),
        port_range=(media.udp_port_min, media.udp_port_max),
        udp_mux=udp_mux,
        ice_servers=tuple(
            IceServer(
                urls=tuple(s.urls),
                username=s.username,
                credential=s.credential.reveal() if s.credential else None,
            )
            for s in media.ice_servers
        ),
        relay_only=media.ice_transport_policy == "relay",
        socket_buffer=media.socket_buffer_bytes,
        keyframe_interval=media.keyframe_request_interval,
        opus_dtx=media.opus_dtx,
        opus_red=media.opus_red,
        opus_max_bitrate_kbps=media.opus_max_bitrate_kbps,
        opus_ptime_ms=media.opus_ptime_ms,
        thin_link_opus_kbps=media.thin_link_opus_kbps,
        thin_link_opus_ptime_ms=media.thin_link_opus_ptime_ms,
        publisher_start_bitrate_kbps=media.publisher_start_bitrate_kbps,
        transport_cc=media.transport_cc,
        subscriber_start_bitrate_kbps=media.subscriber_start_bitrate_kbps,
        subscriber_max_bitrate_kbps=media.subscriber_max_bitrate_kbps,
        quality_interval=media.quality_interval,
        max_remote_candidates=media.max_remote_candidates,
        remote_candidate_deny=tuple(media.remote_candidate_deny),
    )


def room_settings(config: Config) -> RoomSettings:
    try:
        lobby = frozenset(Role(r) for r in config.rooms.lobby_roles)
    except ValueError as exc:
        raise ValueError(f"rooms.lobby_roles: {exc}") from None
    return RoomSettings(
        max_participants=config.rooms.max_participants,
        empty_timeout=config.rooms.empty_timeout,
        lobby_roles=lobby,
        max_media_sections=config.rooms.max_media_sections,
        max_published_tracks=config.rooms.max_published_tracks,
        announce_batch_from=config.rooms.announce_batch_from,
    )


def _error_response(status: int, code: ErrorCode, message: str) -> web.Response:
    return web.json_response(protocol.error(code, message), status=status)


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight for the HTTP API (origin already checked by the middleware)."""
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "600",
        },
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    rooms, placement = request.app[ROOMS], request.app[PLACEMENT]
    body: dict[str, object] = {
        "status": "ready",
        "rooms": len(rooms.rooms),
        "node": placement.node.id,
        "placement": placement.state.value,
    }
    if placement.redis_connected is not None:
        body["redis"] = "connected" if placement.redis_connected else "unreachable"
    if placement.state.value == "draining":  # load balancers: send nobody new here
        body["status"] = "draining"
        return web.json_response(body, status=503)
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def websocket(request: web.Request) -> web.StreamResponse:
    app = request.app
    config = app[CONFIG]
    version = request.query.get("v", str(protocol.PROTOCOL_VERSION))
    if version not in {str(v) for v in protocol.SUPPORTED_VERSIONS}:
        return _error_response(400, ErrorCode.UNSUPPORTED_VERSION, "supported protocol versions: 1")
    try:  # counted until it joins (signaling/connection_limits.py)
        unjoined = app[UNJOINED].open(request.remote)
    except TooManyConnections as exc:
        app[METRICS].errors.labels(code=exc.code.value).inc()
        response = _error_response(exc.status, exc.code, exc.message)
        response.headers["Retry-After"] = str(max(1, round(config.server.join_timeout)))
        return response
    try:
        ws = web.WebSocketResponse(
            heartbeat=20.0,
            # aiohttp refuses larger frames itself; the protocol check is stricter
            max_msg_size=config.server.max_message_bytes * 2,
        )
        await ws.prepare(request)
        if request.transport is not None:  # lost messages sent again soon (thin_stream.py)
            make_thin(request.transport.get_extra_info("socket"))
        app[METRICS].connections.inc()
        session = SignalingSession(
            ws,
            app[ROOMS],
            app[ROUTER],
            app[METRICS],
            SessionLimits(
                config.server.max_message_bytes,
                config.server.messages_per_second,
                config.server.join_timeout,
            ),
            app[TURN],
            app[RECORDINGS],
            app[CAPTURES],
            on_joined=unjoined.release,
        )
        app[SESSIONS].add(session)
        try:
            await session.run()
        finally:
            app[SESSIONS].discard(session)
    finally:
        unjoined.release()
    return ws


def _bearer_claims(request: web.Request) -> JoinClaims | web.Response:
    """The verified join token of ``Authorization: Bearer``, or the 401 to answer."""
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return _error_response(401, ErrorCode.TOKEN_INVALID, "bearer token required")
    try:
        return request.app[VERIFIER].verify(auth.removeprefix("Bearer ").strip())
    except SfuError as exc:
        return _error_response(401, exc.code, exc.message)


async def turn_credentials(request: web.Request) -> web.Response:
    """Fresh TURN credentials for an admitted participant (``Authorization: Bearer <join token>``).

    The token names the room and identity; the participant must be in the room
    and admitted right now — nobody in the lobby gets relay credentials.
    """
    claims = _bearer_claims(request)
    if isinstance(claims, web.Response):
        return claims
    room = request.app[ROOMS].rooms.get(claims.room_key)
    participant = None
    if room is not None:
        participant = next(
            (p for p in room.participants.values() if p.identity == claims.identity), None
        )
    if participant is None:
        return _error_response(404, ErrorCode.NOT_JOINED, "join the room first")
    if participant.state is not ParticipantState.ACTIVE:
        return _error_response(403, ErrorCode.NOT_ADMITTED, "waiting in the lobby")
    return web.json_response({"ice_servers": request.app[TURN].ice_servers(participant.id)})


async def demo_token(request: web.Request) -> web.Response:
    """Development join tokens for the demo pages (local development issuer only)."""
    query = request.query
    try:
        role = Role(query.get("role", "patient"))
    except ValueError:
        return _error_response(400, ErrorCode.BAD_MESSAGE, "unknown role")
    room, identity = query.get("room", "demo"), query.get("identity", "")
    name = query.get("name") or identity
    if not (valid_id(room, 128) and valid_id(identity, 128)) or not 0 < len(name) <= 100:
        return _error_response(
            400, ErrorCode.BAD_MESSAGE, "room and identity: letters, digits, -_.:@"
        )
    auth = request.app[CONFIG].auth
    token = mint_token(
        dev_secret(auth),
        room=room,
        identity=identity,
        role=role,
        name=name,
        ttl=min(3600, auth.max_token_lifetime),
        audience=auth.audience,
    )
    return web.json_response({"token": token, "room": room, "role": role.value})


DEMO_PAGE = URL("/client/demo/index.html")


async def demo_index(request: web.Request) -> web.Response:
    """``/`` opens the demo, keeping the query string (``?role=…&lang=…``); the path is fixed."""
    raise web.HTTPFound(DEMO_PAGE.with_query(list(request.query.items())))


async def create_room(request: web.Request) -> web.Response:
    """Pre-create a room: ``Authorization: Bearer <join token with admit grant>``."""
    claims = _bearer_claims(request)
    if isinstance(claims, web.Response):
        return claims
    if claims.room != request.match_info["room"]:
        return _error_response(403, ErrorCode.WRONG_ROOM, "this token is for another room")
    if not claims.grants.admit:
        return _error_response(403, ErrorCode.FORBIDDEN, "creating rooms needs the admit grant")
    try:
        placed = await request.app[PLACEMENT].place(claims.room_key)
    except SfuError as exc:
        return _error_response(503, exc.code, exc.message)
    if not placed.local:  # created where it will live, by the first join there
        body = {"room": claims.room, "participants": 0, "node": placed.node_id}
        return web.json_response(body, status=201)
    try:
        room = request.app[ROOMS].get_or_create(claims.room_key)
    except SfuError as exc:  # too_many_rooms: rooms.max_rooms reached
        return _error_response(503, exc.code, exc.message)
    body = {"room": claims.room, "participants": len(room.participants)}
    return web.json_response(body, status=201)


async def _media_port_ctx(app: web.Application) -> AsyncIterator[None]:
    """The one UDP port of all media (media.udp_mode one_port): bound before anyone joins."""
    mux = app[ROOMS].media.udp_mux
    if mux is None:
        yield
        return
    addresses = app[CONFIG].media.ice_addresses
    try:
        await mux.open(addresses)
    except OSError as exc:
        raise MediaPortError(
            f"media.udp_port {mux.port} cannot be bound on {', '.join(addresses)}: {exc}"
        ) from exc
    for address, port in mux.ports().items():
        logger.info("media: one UDP port, %s:%d", address, port)
    yield
    mux.close()


class MediaPortError(OSError):
    """The one media UDP port is taken (or not bindable): said as such at start-up."""


async def _rooms_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[RECORDINGS].close()  # final chunks written before rooms go away
    await app[CAPTURES].close()  # captures being stored are written; plaintext dropped
    await app[ROOMS].close()  # tells everyone room_closed (server_shutdown) first
    sessions = app[SESSIONS]
    for session in [*sessions]:
        await session.close(LeaveReason.SERVER_SHUTDOWN)


def origin_policy(config: Config) -> OriginPolicy:
    server = config.server
    public = list(server.public_origins)
    cluster_origin = public_url_origin(config.cluster.public_url, server.port)
    if cluster_origin is not None:
        public.append(cluster_origin)
    return OriginPolicy(server.allowed_origins, public, tls=bool(server.tls_cert))


def create_app(config: Config) -> web.Application:
    config.validate()
    auth = with_dev_issuer(config.auth)
    origins = origin_policy(config)
    web_client = (
        Path(config.server.web_client_dir) if config.server.web_client_dir else REPO_WEB_CLIENT
    )
    app = web.Application(
        middlewares=[origin_gate(origins, config.server.allowed_origins, web_client)],
        client_max_size=config.server.max_message_bytes,
    )
    media = config.media
    mux = (
        UdpMux(media.udp_port, media.socket_buffer_bytes, media.batched_egress)
        if media.udp_mode == "one_port"
        else None
    )
    rooms = RoomManager(room_settings(config), media_settings(config, mux), config.rooms.max_rooms)
    node = node_identity(config)
    app[CONFIG] = config
    app[ORIGINS] = origins
    app[ROOMS] = rooms
    app[VERIFIER] = TokenVerifier(auth)
    app[METRICS] = SignalingMetrics(rooms)
    app[SESSIONS] = set()
    app[UNJOINED] = UnjoinedConnections(
        config.server.max_unjoined_per_address, config.server.max_unjoined_connections
    )
    app[TURN] = TurnCredentials(config.turn)
    app[RECORDINGS], reaper = create_recordings(config, node)
    app[CAPTURES] = CaptureService(
        config.capture, app[RECORDINGS].settings, config.server.max_message_bytes
    )
    app.cleanup_ctx.append(_media_port_ctx)
    app.cleanup_ctx.append(_rooms_ctx)
    collectors: list[Collector] = []
    app[ROUTER] = setup_cluster(
        app, config, node, rooms, app[VERIFIER], app[SESSIONS], reaper, collectors
    )
    for collector in collectors:
        app[METRICS].registry.register(collector)
    add_admin_routes(app, config.admin.token, app[VERIFIER])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/favicon.ico", favicon)  # every page asks for it (signaling/favicon.py)
    app.router.add_get("/ws", websocket)
    app.router.add_post("/api/rooms/{room}", create_room)
    app.router.add_get("/api/turn-credentials", turn_credentials)
    app.router.add_route("OPTIONS", "/api/{tail:.*}", preflight)
    if web_client.is_dir():
        app.router.add_static("/client/", web_client, follow_symlinks=False)
    if config.server.demo and not config.auth.issuers:
        app.router.add_get("/demo/token", demo_token)
        app.router.add_get("/", demo_index)
    return app
