"""Errors of the Python client (signaling/client.py)."""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]

# join errors another attempt with the same token cannot fix
FATAL_JOIN_ERRORS = frozenset(
    {
        "token_invalid",
        "token_expired",
        "token_used",  # a single-use token that left, or a rejoin without its resume secret
        "unknown_issuer",
        "wrong_room",
        "forbidden",
        "denied",
    }
)


class ClientError(Exception):
    """The server answered a request with an error (``event``: the error message)."""

    def __init__(self, code: str, message: str, event: Event | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.event = event or {}
