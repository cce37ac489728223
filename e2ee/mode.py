"""A room's end-to-end encryption mode (docs/e2ee.md), set by the hospital.

``off``       frames are encrypted hop by hop only (DTLS-SRTP): the server could see them.
``optional``  pages the portal gave the consult key encrypt their frames; pages
              without one may join, and everyone is shown that the consult is not
              end-to-end encrypted while such a page is in it.
``required``  every page must encrypt: a join that does not is refused
              (``e2ee_required``).

The issuer's configuration (``auth.issuers[].e2ee``) sets the default for its
rooms; a token's ``e2ee`` claim sets it for one room. A room keeps the mode of
its first join: a later token saying otherwise is refused (``e2ee_mismatch``).
"""

from __future__ import annotations

import enum

from sfu.errors import ErrorCode, SfuError


class E2eeMode(enum.StrEnum):
    OFF = "off"
    OPTIONAL = "optional"
    REQUIRED = "required"

    @property
    def on(self) -> bool:
        """Frames may be end-to-end encrypted in such a room (forwarded as they are)."""
        return self is not E2eeMode.OFF


def settle(room: E2eeMode | None, token: E2eeMode, encrypts: bool) -> E2eeMode:
    """The room's mode after a join with ``token``'s mode, or SfuError refusing the join.

    ``room``: the mode of a room someone is in (None for an empty one: the join sets it).
    ``encrypts``: the joining page said it encrypts its frames (it has the consult key).
    """
    if room is not None and room is not token:
        raise SfuError(
            ErrorCode.E2EE_MISMATCH,
            f"this room's end-to-end encryption is '{room.value}', the token says '{token.value}'",
        )
    if token is E2eeMode.REQUIRED and not encrypts:
        raise SfuError(
            ErrorCode.E2EE_REQUIRED,
            "this consult is end-to-end encrypted: the page must be given its key to join",
        )
    return token
