"""Join tokens as a hospital portal would mint them, with any claims a test needs."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

from sfu.participant import Role
from signaling.config import Secret


def portal_jwt(
    secret: Secret, issuer: str, room: str, identity: str, role: Role, with_jti: bool, **claims: Any
) -> str:
    """An HS256 join token; ``claims`` add to or replace the usual ones.

    ``with_jti``: add a fresh ``jti`` (configured issuers' tokens are single-use).
    """
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": issuer,
        "aud": "digiclinic",
        "sub": identity,
        "room": room,
        "role": role.value,
        "iat": now,
        "exp": now + 600,
    }
    if with_jti:
        body["jti"] = secrets.token_hex(8)
    return jwt.encode({**body, **claims}, secret.reveal(), algorithm="HS256")
