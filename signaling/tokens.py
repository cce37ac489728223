"""Join tokens: JWTs issued by hospital portals, verified per issuer.

Claims (docs/protocol.md#join-tokens):
  iss    the portal (must be a configured issuer)     required
  aud    the server's audience                         required
  sub    the participant's identity at the portal      required
  exp    expiry; exp - iat may not exceed the maximum  required
  iat    issue time                                    required
  room   the consult room id                           required
  name   display name                                  optional
  role   patient | health_worker | specialist | interpreter | observer
  grants {publish, subscribe, admit, record, capture}  optional (role defaults)
  e2ee   off | optional | required: the room's end-to-end encryption  optional (issuer's default;
         e2ee/mode.py, docs/e2ee.md)
  invitation  another hospital's invitation into its room  optional (signaling/invitations.py)
  jti    the token's unique id: joins once             required with auth.single_use_tokens
         (checked at join time, signaling/single_use.py; the dev issuer's tokens are multi-use)

A room belongs to the hospital whose portal issued the token: ``room`` names
one of that issuer's rooms (``JoinClaims.room_key`` is ``issuer/room``), so
two hospitals' "ward-3" are two rooms, and a token from one hospital never
reaches another's room without that hospital's signed invitation.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from e2ee.mode import E2eeMode
from sfu.errors import ErrorCode, SfuError
from sfu.participant import GRANT_NAMES, Grants, Role
from signaling.config import AuthConfig, IssuerConfig, Secret
from signaling.invitations import accept_invitation

DEV_ISSUER = "dev"
_ROOM_ID_MAX = 128
_IDENTITY_MAX = 128
_NAME_MAX = 100
# a JWS in compact form: base64url parts joined by dots. Anything else (a lone
# surrogate from JSON's \ud800, or from an HTTP header's undecodable byte) would
# make PyJWT's encode("utf-8") raise instead of refusing the token
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_\-.=]+")

ROLE_DEFAULT_GRANTS: dict[Role, Grants] = {
    Role.PATIENT: Grants(publish=True, subscribe=True),
    Role.HEALTH_WORKER: Grants(publish=True, subscribe=True, admit=True, capture=True),
    Role.SPECIALIST: Grants(publish=True, subscribe=True, admit=True, record=True, capture=True),
    Role.INTERPRETER: Grants(publish=True, subscribe=True),
    Role.OBSERVER: Grants(publish=False, subscribe=True),
}


@dataclass(frozen=True, slots=True)
class JoinClaims:
    issuer: str
    identity: str  # a guest's is prefixed with its own issuer: "<issuer>/<sub>"
    name: str
    room: str  # the room's name at its hospital
    role: Role
    grants: Grants
    expires_at: int
    host: str = ""  # the hospital whose room this is, when another's invitation says so
    jti: str = ""  # the token's id ("" without one): spent by a join (signaling/single_use.py)
    jti_until: int = 0  # the token's exp plus the leeway: until then its jti is remembered
    e2ee: E2eeMode = E2eeMode.OFF  # the room's end-to-end encryption (the claim, or the issuer's)

    @property
    def hospital(self) -> str:
        """The issuer whose room this is."""
        return self.host or self.issuer

    @property
    def room_key(self) -> str:
        """The room across the deployment: its hospital's issuer id, then its name."""
        return f"{self.hospital}/{self.room}"

    @property
    def guest(self) -> bool:
        return self.hospital != self.issuer


def valid_id(value: Any, limit: int) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and value.isprintable()
        and all(c.isascii() and (c.isalnum() or c in "-_.:@") for c in value)
    )


class TokenVerifier:
    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self._keys: dict[str, tuple[str, Any]] = {}
        self._e2ee: dict[str, E2eeMode] = {}
        for issuer in config.issuers:
            self._keys[issuer.id] = (issuer.algorithm, _verification_key(issuer))
            self._e2ee[issuer.id] = E2eeMode(issuer.e2ee)

    @property
    def issuers(self) -> list[str]:
        return list(self._keys)

    def default_e2ee(self, issuer: str) -> E2eeMode:
        """The end-to-end encryption of ``issuer``'s rooms when a token says nothing."""
        return self._e2ee[issuer]

    def verify(self, token: Any) -> JoinClaims:
        issuer, claims = self.decode(token, "token", ["exp", "iat", "iss", "aud", "sub"])
        joined = self._claims(issuer, claims)
        invitation = claims.get("invitation")
        if invitation is None:
            return joined
        return accept_invitation(self, joined, invitation, ROLE_DEFAULT_GRANTS[joined.role])

    def decode(self, token: Any, what: str, required: list[str]) -> tuple[str, dict[str, Any]]:
        """A JWT's issuer and claims, checked against that issuer's key and algorithm."""
        if not isinstance(token, str) or not token or len(token) > 8192:
            raise SfuError(ErrorCode.TOKEN_INVALID, f"{what} missing or malformed")
        if _COMPACT_JWS.fullmatch(token) is None:
            raise SfuError(ErrorCode.TOKEN_INVALID, f"{what} malformed: not base64url")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise SfuError(ErrorCode.TOKEN_INVALID, f"{what} is not a valid JWT") from None
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self._keys:
            raise SfuError(ErrorCode.UNKNOWN_ISSUER, f"{what} issuer is not trusted here")
        algorithm, key = self._keys[issuer]
        if header.get("alg") != algorithm:
            raise SfuError(ErrorCode.TOKEN_INVALID, f"{what} algorithm not allowed for its issuer")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.config.audience,
                issuer=issuer,
                leeway=self.config.leeway,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError:
            raise SfuError(ErrorCode.TOKEN_EXPIRED, f"{what} has expired") from None
        except jwt.PyJWTError as exc:
            raise SfuError(ErrorCode.TOKEN_INVALID, f"{what} rejected: {_reason(exc)}") from None
        return issuer, claims

    def _claims(self, issuer: str, claims: dict[str, Any]) -> JoinClaims:
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise SfuError(ErrorCode.TOKEN_INVALID, "token exp/iat must be numbers")
        if exp - iat > self.config.max_token_lifetime:
            raise SfuError(ErrorCode.TOKEN_INVALID, "token lifetime exceeds the maximum")
        room, identity = claims.get("room"), claims.get("sub")
        if not valid_id(room, _ROOM_ID_MAX):
            raise SfuError(ErrorCode.TOKEN_INVALID, "token has no valid room claim")
        if not valid_id(identity, _IDENTITY_MAX):
            raise SfuError(ErrorCode.TOKEN_INVALID, "token has no valid sub claim")
        try:
            role = Role(claims.get("role", "patient"))
        except ValueError:
            raise SfuError(ErrorCode.TOKEN_INVALID, "token role is not known") from None
        grants = ROLE_DEFAULT_GRANTS[role]
        raw_grants = claims.get("grants")
        if raw_grants is not None:
            if not isinstance(raw_grants, dict) or not all(
                k in GRANT_NAMES and isinstance(v, bool) for k, v in raw_grants.items()
            ):
                raise SfuError(ErrorCode.TOKEN_INVALID, "token grants are malformed")
            grants = Grants(**{**grants.as_dict(), **raw_grants})
        name = claims.get("name", identity)
        if not isinstance(name, str) or not name.strip() or len(name) > _NAME_MAX:
            raise SfuError(ErrorCode.TOKEN_INVALID, "token name is malformed")
        jti = claims.get("jti")  # required at join time with auth.single_use_tokens
        e2ee = claims.get("e2ee", self._e2ee[issuer].value)
        if e2ee not in tuple(E2eeMode):
            raise SfuError(ErrorCode.TOKEN_INVALID, "token e2ee must be off, optional or required")
        return JoinClaims(
            issuer=issuer,
            identity=str(identity),
            name=name.strip(),
            room=str(room),
            role=role,
            grants=grants,
            expires_at=int(exp),
            jti=jti if isinstance(jti, str) else "",
            jti_until=int(exp) + self.config.leeway,
            e2ee=E2eeMode(e2ee),
        )


def _reason(exc: Exception) -> str:
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "not valid yet"
    return "invalid"


def _verification_key(issuer: IssuerConfig) -> Any:
    if issuer.algorithm == "HS256":
        assert issuer.secret is not None
        return issuer.secret.reveal()
    if issuer.public_key:
        return issuer.public_key
    assert issuer.public_key_file is not None
    return Path(issuer.public_key_file).read_text()


def mint_token(
    secret: Secret,
    *,
    room: str,
    identity: str,
    role: Role,
    name: str | None = None,
    grants: dict[str, bool] | None = None,
    ttl: int = 600,
    audience: str = "digiclinic",
    issuer: str = DEV_ISSUER,
    now: float | None = None,
    e2ee: str | None = None,
) -> str:
    """An HS256 join token (development and tests; portals mint their own)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": identity,
        "room": room,
        "role": role.value,
        "name": name or identity,
        "iat": issued,
        "exp": issued + ttl,
        "jti": secrets.token_hex(8),
    }
    if grants is not None:
        claims["grants"] = grants
    if e2ee is not None:
        claims["e2ee"] = e2ee
    return jwt.encode(claims, secret.reveal(), algorithm="HS256")


def dev_secret(config: AuthConfig, create: bool = True) -> Secret:
    """The development HS256 secret: kept in a 0600 file, created on first use."""
    path = Path(config.dev_secret_file)
    if path.exists():
        return Secret(path.read_text().strip())
    if not create:
        raise FileNotFoundError(f"no development secret at {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    # created 0600 from the start: no moment where another user could open it
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(value)
    return Secret(value)


def with_dev_issuer(config: AuthConfig) -> AuthConfig:
    """If no issuer is configured, trust the local development issuer.

    Its tokens stay multi-use (``single_use_tokens`` off): the demo pages, the
    command line and the tests join again and again with one token.
    """
    if config.issuers:
        return config
    issuer = IssuerConfig(id=DEV_ISSUER, algorithm="HS256", secret=dev_secret(config))
    return dataclasses.replace(config, issuers=[issuer], single_use_tokens=False)
