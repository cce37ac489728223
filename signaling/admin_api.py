"""The admin HTTP API: rooms and nodes of the whole cluster, and draining.

Every endpoint answers from any node (the listings come from Redis in a
cluster, from this process otherwise). Authentication: ``Authorization:
Bearer <admin.token>``; ``GET /api/rooms/{room}`` also accepts a join token
for that room with the ``admit`` grant (as ``POST /api/rooms/{room}`` does),
and then answers about the token's hospital's room of that name only. Rooms
are listed with their hospital (``issuer``); the operator names one with
``?issuer=`` when two hospitals use the same name.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from sfu.errors import ErrorCode, SfuError
from signaling import protocol
from signaling.cluster import DRAINER, PLACEMENT
from signaling.config import Secret
from signaling.placement import RoomSummary
from signaling.tokens import TokenVerifier

ADMIN_TOKEN: web.AppKey[Secret | None] = web.AppKey("admin_token")
ADMIN_VERIFIER = web.AppKey("admin_verifier", TokenVerifier)


def _error(status: int, code: ErrorCode, message: str) -> web.Response:
    return web.json_response(protocol.error(code, message), status=status)


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None


def _is_admin(request: web.Request) -> bool:
    token, expected = _bearer(request), request.app[ADMIN_TOKEN]
    return bool(
        token and expected and secrets.compare_digest(token.encode(), expected.reveal().encode())
    )


def _refuse(request: web.Request) -> web.Response:
    if _bearer(request) is None:
        return _error(401, ErrorCode.TOKEN_INVALID, "bearer token required")
    return _error(403, ErrorCode.FORBIDDEN, "admin token required")


async def _rooms(request: web.Request) -> list[RoomSummary] | web.Response:
    """Every room of the cluster, or the 503 to answer while Redis is away."""
    try:
        return await request.app[PLACEMENT].rooms()
    except SfuError as exc:
        return _error(503, exc.code, exc.message)


async def list_rooms(request: web.Request) -> web.Response:
    if not _is_admin(request):
        return _refuse(request)
    rooms = await _rooms(request)
    if isinstance(rooms, web.Response):
        return rooms
    return web.json_response({"rooms": [r.as_dict() for r in rooms]})


async def get_room(request: web.Request) -> web.Response:
    name = request.match_info["room"]
    issuer = request.query.get("issuer")
    if not _is_admin(request):
        token = _bearer(request)
        if token is None:
            return _refuse(request)
        try:
            claims = request.app[ADMIN_VERIFIER].verify(token)
        except SfuError as exc:
            return _error(401, exc.code, exc.message)
        if claims.room != name or not claims.grants.admit:
            return _error(403, ErrorCode.FORBIDDEN, "needs the admit grant for this room")
        issuer = claims.hospital  # a hospital's token answers about its own room only
    rooms = await _rooms(request)
    if isinstance(rooms, web.Response):
        return rooms
    found = [r for r in rooms if r.name == name and issuer in (None, r.issuer)]
    if not found:
        return _error(404, ErrorCode.NOT_FOUND, "no such room")
    if len(found) > 1:
        message = "several hospitals have a room of this name: add ?issuer="
        return _error(409, ErrorCode.BAD_MESSAGE, message)
    return web.json_response(found[0].as_dict())


async def list_nodes(request: web.Request) -> web.Response:
    if not _is_admin(request):
        return _refuse(request)
    try:
        nodes = await request.app[PLACEMENT].nodes()
    except SfuError as exc:
        return _error(503, exc.code, exc.message)
    return web.json_response(
        {"self": request.app[PLACEMENT].node.id, "nodes": [n.as_dict() for n in nodes]}
    )


async def drain(request: web.Request) -> web.Response:
    """Drain this node (the one answering): no new rooms, participants moved."""
    if not _is_admin(request):
        return _refuse(request)
    drainer = request.app[DRAINER]
    await drainer.drain()
    placement = request.app[PLACEMENT]
    return web.json_response(
        {"node": placement.node.id, "state": placement.state.value, "drain": drainer.state.value}
    )


def add_admin_routes(app: web.Application, token: Secret | None, verifier: TokenVerifier) -> None:
    app[ADMIN_TOKEN] = token
    app[ADMIN_VERIFIER] = verifier
    app.router.add_get("/api/rooms", list_rooms)
    app.router.add_get("/api/rooms/{room}", get_room)
    app.router.add_get("/api/cluster/nodes", list_nodes)
    app.router.add_post("/api/admin/drain", drain)
