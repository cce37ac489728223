"""Placement tickets: the proof, handed over in a redirect, that a join token was checked.

A node that receives a ``join`` for a room hosted on another node verifies
the portal's JWT once, then answers with a ``redirect`` carrying the target
node's URL and a ticket: the verified claims, the room, the target node and
a short expiry, signed with HMAC-SHA256 under ``cluster.secret`` (shared by
the nodes, never by clients). The target node accepts the ticket instead of
the token, so the token is checked exactly once per join, by the node the
client first reached, and the target needs no issuer keys to trust it.

Format: ``base64url(json payload) "." base64url(hmac)``; the payload holds no
more than the claims the joined participant sees of itself anyway, and the
token's ``jti``: a single-use token is spent by the join on the target node,
so a ticket joins once too (signaling/single_use.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any

from sfu.errors import ErrorCode, SfuError
from sfu.participant import Grants, Role
from signaling.config import Secret
from signaling.tokens import JoinClaims

MAX_TICKET_CHARS = 4096
_TICKET = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TicketSigner:
    def __init__(self, secret: Secret, ttl: float) -> None:
        self._key = hashlib.sha256(b"digiclinic-ticket\0" + secret.reveal().encode()).digest()
        self.ttl = ttl

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def issue(self, claims: JoinClaims, node_id: str, now: float | None = None) -> str:
        expires = min(int((now or time.time()) + self.ttl), claims.expires_at)
        payload = {
            "node": node_id,
            "room": claims.room,
            "iss": claims.issuer,
            "host": claims.host,
            "sub": claims.identity,
            "name": claims.name,
            "role": claims.role.value,
            "grants": claims.grants.as_dict(),
            "exp": expires,
            # the join on the target node spends the token's jti (signaling/single_use.py)
            "jti": claims.jti,
            "jti_until": claims.jti_until,
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def verify(self, ticket: Any, node_id: str, now: float | None = None) -> JoinClaims:
        """The claims of a ticket for this node, or SfuError(ticket_invalid)."""
        if not isinstance(ticket, str) or len(ticket) > MAX_TICKET_CHARS or ticket.count(".") != 1:
            raise SfuError(ErrorCode.TICKET_INVALID, "ticket missing or malformed")
        if _TICKET.fullmatch(ticket) is None:  # e.g. a lone surrogate: not encodable
            raise SfuError(ErrorCode.TICKET_INVALID, "ticket malformed: not base64url")
        body, mac = ticket.split(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            raise SfuError(ErrorCode.TICKET_INVALID, "ticket signature does not match")
        try:
            payload = json.loads(_unb64(body))
            grants = Grants(**{k: bool(v) for k, v in payload["grants"].items()})
            claims = JoinClaims(
                issuer=str(payload["iss"]),
                identity=str(payload["sub"]),
                name=str(payload["name"]),
                room=str(payload["room"]),
                role=Role(payload["role"]),
                grants=grants,
                expires_at=int(payload["exp"]),
                host=str(payload.get("host", "")),
                jti=str(payload.get("jti", "")),
                jti_until=int(payload.get("jti_until", 0)),
            )
            target = str(payload["node"])
        except (ValueError, KeyError, TypeError):
            raise SfuError(ErrorCode.TICKET_INVALID, "ticket payload is malformed") from None
        if claims.expires_at < (now or time.time()):
            raise SfuError(ErrorCode.TICKET_INVALID, "ticket has expired: join with the token")
        if target != node_id:
            raise SfuError(ErrorCode.TICKET_INVALID, "ticket is for another node")
        return claims
