"""Which web pages may use this server, and what a refused one is told.

Every HTTP request carrying an ``Origin`` is checked against the origin
policy (``server.allowed_origins``, signaling/origins.py). An allowed portal
gets CORS headers on the API and on the web client's files (it loads the
widget's modules cross-origin); ``/client/`` also carries
``frame-ancestors`` (only the portals may frame the widget) and ``nosniff``.

A refused origin gets ``403 origin_not_allowed`` — except for the widget's
entry module. A portal that is not (yet) listed would otherwise show an empty
element and an error on the browser console only, which nobody at a clinic
reads. So ``/client/widget/digiclinic-consult.js`` answers such a page with
``web-client/widget/refused.js``: an element that says, in the page's
language, that this site may not show the consultation and whom to ask, and
fires ``digiclinic-error`` with ``origin_not_allowed``. It carries no
session, no token handling and nothing else of the widget; the string
catalogue it imports (``/client/i18n/``) is public text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from sfu.errors import ErrorCode
from signaling import protocol
from signaling.origins import OriginPolicy

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ENTRY_MODULE = "/client/widget/digiclinic-consult.js"
REFUSED_MODULE = Path("widget") / "refused.js"
PUBLIC_TO_ANY_ORIGIN = "/client/i18n/"  # the string catalogue: what refused.js imports


def origin_gate(policy: OriginPolicy, allowed_origins: list[str], web_client: Path) -> Middleware:
    """The middleware: the origin check, CORS and framing headers, the refusal module."""
    refused_path = web_client / REFUSED_MODULE
    refused = refused_path.read_bytes() if refused_path.is_file() else None

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if policy.allows(origin, request.host):
            response = await handler(request)
        else:
            refusal = _refusal(request, handler, refused)
            if refusal is None:
                logger.info("refused a request from a disallowed origin")
                return web.json_response(
                    protocol.error(ErrorCode.ORIGIN_NOT_ALLOWED, "origin not allowed"), status=403
                )
            response = await refusal
        # the API, and the widget's modules (portals load them cross-origin as ES modules)
        if origin is not None and request.path.startswith(("/api/", "/client/")):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        if request.path.startswith("/client/"):
            # only the portals may frame the widget (iframe mode); nobody else can
            ancestors = " ".join(["'self'", *allowed_origins])
            response.headers["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return gate


def _refusal(
    request: web.Request, handler: Handler, refused: bytes | None
) -> Awaitable[web.StreamResponse] | None:
    """What a refused origin may still load: the refusal module and the strings; else None."""
    if request.method not in ("GET", "HEAD"):
        return None
    if request.path == ENTRY_MODULE and refused is not None:
        logger.info("a page of a disallowed origin asked for the widget: sent the refusal")
        return _refused_module(refused)
    if request.path.startswith(PUBLIC_TO_ANY_ORIGIN):
        return handler(request)
    return None


async def _refused_module(body: bytes) -> web.StreamResponse:
    return web.Response(
        body=body,
        content_type="text/javascript",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},  # never cached in place of the real widget
    )
