"""Join routing: check the token once, find the room's node, redirect when it is elsewhere.

A ``join`` carries either the portal's ``token`` (checked here, once) or a
``ticket`` that another node issued after checking the token (see
signaling/tickets.py). If the room lives on another node the join is
answered with a ``redirect`` error carrying that node's URL and a fresh
ticket; the client opens a WebSocket there and joins with the ticket.
"""

from __future__ import annotations

from typing import Any

from sfu.errors import ErrorCode, SfuError
from sfu.room import Room
from signaling.placement import Placement
from signaling.single_use import MemoryUsedTokens, SingleUseTokens
from signaling.tickets import TicketSigner
from signaling.tokens import JoinClaims, TokenVerifier


class Redirect(SfuError):
    """The room is hosted on another node: join there with the ticket."""

    def __init__(self, url: str, ticket: str, node_id: str) -> None:
        super().__init__(ErrorCode.REDIRECT, "the room is hosted on another node: join there")
        self.details: dict[str, Any] = {"url": url, "ticket": ticket, "node": node_id}


class JoinRouter:
    def __init__(
        self,
        verifier: TokenVerifier,
        placement: Placement,
        signer: TicketSigner | None,
        tokens: SingleUseTokens | None = None,
    ) -> None:
        self.verifier = verifier
        self.placement = placement
        self.signer = signer
        # single-use tokens: checked where the participant is created (signaling/session.py)
        self.tokens = tokens or SingleUseTokens(
            MemoryUsedTokens(), verifier.config.single_use_tokens
        )

    def claims(self, body: dict[str, Any]) -> JoinClaims:
        """The verified claims of a join: from its ticket (cluster) or its token."""
        ticket = body.get("ticket")
        if ticket is not None:
            if self.signer is None:
                raise SfuError(ErrorCode.TICKET_INVALID, "this server does not accept tickets")
            return self.signer.verify(ticket, self.placement.node.id)
        return self.verifier.verify(body.get("token"))

    async def readmit(self, claims: JoinClaims) -> bool:
        """True if this identity was admitted from the room's lobby before the room moved."""
        return await self.placement.was_admitted(claims.room_key, claims.identity)

    def admitted(self, room: Room, participant_id: str) -> None:
        participant = room.participants.get(participant_id)
        if participant is not None:
            self.placement.admitted(room.id, participant.identity)

    async def route(self, claims: JoinClaims) -> None:
        """Return if the room lives here (placing it here if needed); else raise Redirect."""
        placed = await self.placement.place(claims.room_key)
        if placed.local:
            return
        assert placed.url is not None
        if self.signer is None:  # pragma: no cover - only RedisPlacement redirects
            raise SfuError(ErrorCode.PLACEMENT_UNAVAILABLE, "the room is on another node")
        raise Redirect(placed.url, self.signer.issue(claims, placed.node_id), placed.node_id)
