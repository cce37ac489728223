"""Ephemeral TURN credentials (the TURN REST scheme coturn implements).

username = "<expiry unix time>:<participant id>"
password = base64(HMAC-SHA1(static-auth-secret, username))

coturn accepts them while the expiry is in the future and the secret is one
of its ``static-auth-secret`` values; the media server never stores them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from signaling.config import Secret, TurnConfig


def turn_password(secret: Secret, username: str) -> str:
    digest = hmac.new(secret.reveal().encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class TurnCredentials:
    def __init__(self, config: TurnConfig) -> None:
        self.config = config

    @property
    def enabled(self) -> bool:
        return bool(self.config.urls and self.config.secrets)

    def ice_servers(self, participant_id: str, now: float | None = None) -> list[dict[str, Any]]:
        """The RTCIceServer list for one admitted participant (empty if TURN is off)."""
        servers: list[dict[str, Any]] = []
        if self.config.stun_urls:
            servers.append({"urls": list(self.config.stun_urls)})
        if self.enabled:
            ttl = min(self.config.ttl, self.config.max_ttl)
            expiry = int(time.time() if now is None else now) + ttl
            username = f"{expiry}:{participant_id}"
            servers.append(
                {
                    "urls": list(self.config.urls),
                    "username": username,
                    "credential": turn_password(self.config.secrets[0], username),
                    "ttl": ttl,
                }
            )
        return servers
