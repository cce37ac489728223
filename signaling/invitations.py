"""One hospital lets a participant of another into one of its rooms: a signed invitation.

Rooms belong to the hospital whose portal issued the token (``JoinClaims.
room_key``). A specialist at a centre abroad (issuer B) joins hospital A's
room only with an invitation that A's portal signed, carried in B's join
token as the ``invitation`` claim. The invitation is a JWT from A (checked
with A's key and algorithm, like A's own tokens)::

    iss        A (a configured issuer, not the guest's own)      required
    aud        the server's audience                              required
    iat, exp   exp - iat <= auth.max_invitation_lifetime          required
    room       A's room                                           required
    guest_iss  B: the issuer whose tokens may use it              required
    sub        the guest's identity at B (any of B's, if absent)  optional
    roles      roles the guest may have (default ["specialist"])  optional
    grants     the most the guest may do (default: its role's)    optional

The guest's token must name the same ``room``. The guest then joins A's
room with the grants its own token gives *and* the invitation allows, under
the identity ``B/<sub>`` (an identity belongs to its issuer: B's
"dr-okafor" is not A's). Every such join is logged and audited
(``guest_joined``). Without an invitation, B's token for "ward-3" joins B's
own "ward-3", a different room.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from e2ee.mode import E2eeMode
from sfu.errors import ErrorCode, SfuError
from sfu.participant import GRANT_NAMES, Grants, Role

if TYPE_CHECKING:
    from signaling.tokens import JoinClaims, TokenVerifier

DEFAULT_ROLES = (Role.SPECIALIST,)
_REQUIRED = ["exp", "iat", "iss", "aud", "room", "guest_iss"]


def _refuse(message: str) -> SfuError:
    return SfuError(ErrorCode.TOKEN_INVALID, f"invitation rejected: {message}")


def _roles(raw: Any) -> tuple[Role, ...]:
    if raw is None:
        return DEFAULT_ROLES
    if not isinstance(raw, list) or not raw:
        raise _refuse("roles must be a list of roles")
    try:
        return tuple(Role(r) for r in raw)
    except ValueError:
        raise _refuse("a role is not known") from None


def _grants(raw: Any, role_default: Grants) -> Grants:
    if raw is None:
        return role_default
    if not isinstance(raw, dict) or not all(
        k in GRANT_NAMES and isinstance(v, bool) for k, v in raw.items()
    ):
        raise _refuse("grants are malformed")
    return Grants(**{**role_default.as_dict(), **raw})


def accept_invitation(
    verifier: TokenVerifier, guest: JoinClaims, invitation: Any, role_default: Grants
) -> JoinClaims:
    """``guest``'s claims in the inviting hospital's room, or SfuError if it does not hold.

    ``role_default``: what the guest's role may do when the invitation says nothing.
    """
    host, claims = verifier.decode(invitation, "invitation", _REQUIRED)
    exp, iat = claims["exp"], claims["iat"]
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise _refuse("exp/iat must be numbers")
    if exp - iat > verifier.config.max_invitation_lifetime:
        raise _refuse("lifetime exceeds the maximum")
    if host == guest.issuer:
        raise _refuse("a hospital does not invite its own participants")
    if claims["guest_iss"] != guest.issuer:
        raise _refuse("it is for another hospital's participants")
    if claims["room"] != guest.room:
        raise SfuError(ErrorCode.WRONG_ROOM, "the invitation is for another room")
    sub = claims.get("sub")
    if sub is not None and sub != guest.identity:
        raise _refuse("it is for another participant")
    if guest.role not in _roles(claims.get("roles")):
        raise SfuError(ErrorCode.FORBIDDEN, "the invitation does not allow this role")
    allowed = _grants(claims.get("grants"), role_default)
    mine = guest.grants
    grants = Grants(
        publish=mine.publish and allowed.publish,
        subscribe=mine.subscribe and allowed.subscribe,
        admit=mine.admit and allowed.admit,
        record=mine.record and allowed.record,
        capture=mine.capture and allowed.capture,
    )
    e2ee = claims.get("e2ee", verifier.default_e2ee(host).value)  # the host's room decides
    if e2ee not in tuple(E2eeMode):
        raise _refuse("e2ee must be off, optional or required")
    return dataclasses.replace(
        guest,
        host=host,
        e2ee=E2eeMode(e2ee),
        identity=f"{guest.issuer}/{guest.identity}",
        grants=grants,
        expires_at=min(guest.expires_at, int(exp)),
    )
