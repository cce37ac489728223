"""Unit tests for signaling/tokens.py: join-token verification, minting, dev secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sfu.errors import ErrorCode, SfuError
from sfu.participant import Grants, Role
from signaling.config import AuthConfig, IssuerConfig, Secret
from signaling.tokens import (
    DEV_ISSUER,
    ROLE_DEFAULT_GRANTS,
    JoinClaims,
    TokenVerifier,
    dev_secret,
    mint_token,
    with_dev_issuer,
)

HS_SECRET = "portal-a-shared-secret-0123456789abcdef"
AUDIENCE = "digiclinic"


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


ES_KEY = ec.generate_private_key(ec.SECP256R1())
ES_PUBLIC_PEM = _pem(ES_KEY)
OTHER_ES_KEY = ec.generate_private_key(ec.SECP256R1())


def auth_config(**kw: Any) -> AuthConfig:
    values: dict[str, Any] = {
        "audience": AUDIENCE,
        "max_token_lifetime": 3600,
        "leeway": 10,
        "issuers": [
            IssuerConfig(id="portal-hs", algorithm="HS256", secret=Secret(HS_SECRET)),
            IssuerConfig(id="portal-es", algorithm="ES256", public_key=ES_PUBLIC_PEM),
        ],
    }
    values.update(kw)
    return AuthConfig(**values)


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(auth_config())


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "portal-hs",
        "aud": AUDIENCE,
        "sub": "patient-17",
        "room": "consult-42",
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


DROP: Any = object()


def hs_token(secret: str = HS_SECRET, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm="HS256")


def es_token(key: ec.EllipticCurvePrivateKey = ES_KEY, **overrides: Any) -> str:
    overrides.setdefault("iss", "portal-es")
    return jwt.encode(claims(**overrides), key, algorithm="ES256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """A JWT assembled by hand (for algorithms pyjwt refuses to produce)."""
    signing_input = (
        _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    ).encode()
    signature = b"" if key is None else hmac.new(key, signing_input, hashlib.sha256).digest()
    return signing_input.decode() + "." + _b64(signature)


def rejected(verifier: TokenVerifier, token: Any, code: ErrorCode = ErrorCode.TOKEN_INVALID) -> str:
    with pytest.raises(SfuError) as info:
        verifier.verify(token)
    assert info.value.code == code
    return info.value.message


# --------------------------------------------------------------------------
# accepted tokens
# --------------------------------------------------------------------------


def test_valid_hs256_token_accepted_with_claims(verifier: TokenVerifier) -> None:
    exp = int(time.time()) + 300
    result = verifier.verify(hs_token(exp=exp, name="  Amina K.  ", role="health_worker"))
    assert isinstance(result, JoinClaims)
    assert result.issuer == "portal-hs"
    assert result.identity == "patient-17"
    assert result.room == "consult-42"
    assert result.name == "Amina K."
    assert result.role is Role.HEALTH_WORKER
    assert result.grants == ROLE_DEFAULT_GRANTS[Role.HEALTH_WORKER]
    assert result.grants.admit is True
    assert result.expires_at == exp


def test_valid_es256_token_accepted(verifier: TokenVerifier) -> None:
    result = verifier.verify(es_token(role="specialist"))
    assert result.issuer == "portal-es"
    assert result.role is Role.SPECIALIST
    assert result.grants == Grants(
        publish=True, subscribe=True, admit=True, record=True, capture=True
    )


def test_es256_public_key_from_file(tmp_path: Path) -> None:
    key_file = tmp_path / "portal.pem"
    key_file.write_text(ES_PUBLIC_PEM)
    config = auth_config(
        issuers=[IssuerConfig(id="portal-es", algorithm="ES256", public_key_file=str(key_file))]
    )
    assert TokenVerifier(config).verify(es_token()).issuer == "portal-es"


def test_issuers_lists_configured_issuers(verifier: TokenVerifier) -> None:
    assert verifier.issuers == ["portal-hs", "portal-es"]


def test_hand_built_hs256_token_is_accepted(verifier: TokenVerifier) -> None:
    # Sanity check for raw_token, which the algorithm-confusion tests rely on.
    token = raw_token({"alg": "HS256", "typ": "JWT"}, claims(), HS_SECRET.encode())
    assert verifier.verify(token).identity == "patient-17"


def test_role_defaults_to_patient(verifier: TokenVerifier) -> None:
    result = verifier.verify(hs_token())
    assert result.role is Role.PATIENT
    assert result.grants == Grants(publish=True, subscribe=True, admit=False, record=False)


@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_its_default_grants(verifier: TokenVerifier, role: Role) -> None:
    result = verifier.verify(hs_token(role=role.value))
    assert result.role is role
    assert result.grants == ROLE_DEFAULT_GRANTS[role]


def test_observer_cannot_publish_by_default(verifier: TokenVerifier) -> None:
    assert verifier.verify(hs_token(role="observer")).grants.publish is False


def test_explicit_grants_override_role_defaults(verifier: TokenVerifier) -> None:
    result = verifier.verify(
        hs_token(role="observer", grants={"publish": True, "record": True, "subscribe": False})
    )
    assert result.grants == Grants(publish=True, subscribe=False, admit=False, record=True)


def test_empty_grants_keep_role_defaults(verifier: TokenVerifier) -> None:
    result = verifier.verify(hs_token(role="health_worker", grants={}))
    assert result.grants == ROLE_DEFAULT_GRANTS[Role.HEALTH_WORKER]


def test_name_defaults_to_identity(verifier: TokenVerifier) -> None:
    assert verifier.verify(hs_token(sub="nurse.joy@clinic")).name == "nurse.joy@clinic"


@pytest.mark.parametrize("room", ["r", "consult-42_a.b:c@d", "A" * 128])
def test_room_id_characters_accepted(verifier: TokenVerifier, room: str) -> None:
    assert verifier.verify(hs_token(room=room)).room == room


def test_lifetime_exactly_at_maximum_is_accepted(verifier: TokenVerifier) -> None:
    now = int(time.time())
    assert verifier.verify(hs_token(iat=now, exp=now + 3600)).expires_at == now + 3600


def test_expired_within_leeway_is_accepted(verifier: TokenVerifier) -> None:
    now = int(time.time())
    verifier.verify(hs_token(iat=now - 100, exp=now - 5))


def test_iat_slightly_in_future_within_leeway_is_accepted(verifier: TokenVerifier) -> None:
    now = int(time.time())
    verifier.verify(hs_token(iat=now + 5, exp=now + 600))


# --------------------------------------------------------------------------
# rejected tokens
# --------------------------------------------------------------------------


def test_expired_token(verifier: TokenVerifier) -> None:
    now = int(time.time())
    rejected(verifier, hs_token(iat=now - 1000, exp=now - 100), ErrorCode.TOKEN_EXPIRED)
    rejected(verifier, es_token(iat=now - 1000, exp=now - 100), ErrorCode.TOKEN_EXPIRED)


def test_bad_hs256_signature(verifier: TokenVerifier) -> None:
    message = rejected(verifier, hs_token(secret="another-secret-of-sufficient-length!!"))
    assert "signature" in message


def test_bad_es256_signature(verifier: TokenVerifier) -> None:
    rejected(verifier, es_token(key=OTHER_ES_KEY))


def test_tampered_payload_rejected(verifier: TokenVerifier) -> None:
    header, _payload, signature = hs_token().split(".")
    forged = _b64(json.dumps(claims(role="specialist")).encode())
    rejected(verifier, f"{header}.{forged}.{signature}")


def test_wrong_audience(verifier: TokenVerifier) -> None:
    message = rejected(verifier, hs_token(aud="some-other-service"))
    assert "audience" in message


def test_missing_audience(verifier: TokenVerifier) -> None:
    rejected(verifier, hs_token(aud=DROP))


@pytest.mark.parametrize("claim", ["exp", "iat", "sub"])
def test_missing_required_claim(verifier: TokenVerifier, claim: str) -> None:
    message = rejected(verifier, hs_token(**{claim: DROP}))
    assert claim in message


@pytest.mark.parametrize("bad", ["\ud800", "\udc80", "\u00e9", "\x00"])
def test_token_with_characters_outside_base64url_is_malformed(
    verifier: TokenVerifier, bad: str
) -> None:
    """A lone surrogate (JSON \\ud800, or an HTTP header byte decoded with surrogateescape)
    made PyJWT's encode("utf-8") raise UnicodeEncodeError: an internal error, not a refusal."""
    token = hs_token()
    for spliced in (bad + token, token[:30] + bad + token[30:], token + bad):
        assert "malformed" in rejected(verifier, spliced)


def test_missing_room(verifier: TokenVerifier) -> None:
    rejected(verifier, hs_token(room=DROP))


def test_lifetime_over_maximum(verifier: TokenVerifier) -> None:
    now = int(time.time())
    message = rejected(verifier, hs_token(iat=now, exp=now + 3601))
    assert "lifetime" in message


def test_lifetime_limit_follows_config() -> None:
    short = TokenVerifier(auth_config(max_token_lifetime=60))
    now = int(time.time())
    rejected(short, hs_token(iat=now, exp=now + 61))
    short.verify(hs_token(iat=now, exp=now + 60))


def test_iat_in_the_future(verifier: TokenVerifier) -> None:
    now = int(time.time())
    rejected(verifier, hs_token(iat=now + 600, exp=now + 1200))


def test_nbf_in_the_future(verifier: TokenVerifier) -> None:
    now = int(time.time())
    rejected(verifier, hs_token(nbf=now + 600))


@pytest.mark.parametrize(("exp", "iat"), [("9999999999", None), (None, "1700000000")])
def test_non_numeric_exp_or_iat(verifier: TokenVerifier, exp: Any, iat: Any) -> None:
    now = int(time.time())
    overrides = {"exp": exp if exp is not None else now + 60, "iat": iat if iat else now}
    rejected(verifier, hs_token(**overrides))


@pytest.mark.parametrize("role", ["doctor", "PATIENT", "", 3, None])
def test_unknown_role(verifier: TokenVerifier, role: Any) -> None:
    rejected(verifier, hs_token(role=role))


@pytest.mark.parametrize(
    "grants",
    [
        {"publish": "yes"},
        {"publish": 1},
        {"superuser": True},
        ["publish"],
        "publish",
        True,
    ],
)
def test_malformed_grants(verifier: TokenVerifier, grants: Any) -> None:
    message = rejected(verifier, hs_token(grants=grants))
    assert "grants" in message


@pytest.mark.parametrize(
    "room",
    [
        "",
        "room 1",
        "room/1",
        "../etc",
        "room\n1",
        "room\x00",
        "room#1",
        "A" * 129,
        42,
        None,
        ["consult-42"],
    ],
)
def test_bad_room_id(verifier: TokenVerifier, room: Any) -> None:
    message = rejected(verifier, hs_token(room=room))
    assert "room" in message


@pytest.mark.parametrize("room", ["c\u00f6nsult", "\u0661\u0662\u0663", "\uff52\uff4f\uff4f\uff4d"])
def test_non_ascii_room_id_rejected(verifier: TokenVerifier, room: str) -> None:
    # Unicode letters and digits pass str.isalnum(); room ids are ASCII only.
    assert room.isalnum()
    rejected(verifier, hs_token(room=room))


@pytest.mark.parametrize("sub", ["", "a b", "x" * 129, "id\t1", 17, "patient-\u00e9"])
def test_bad_identity(verifier: TokenVerifier, sub: Any) -> None:
    rejected(verifier, hs_token(sub=sub))


@pytest.mark.parametrize("name", ["", "   ", "n" * 101, 5, ["a"]])
def test_bad_name(verifier: TokenVerifier, name: Any) -> None:
    message = rejected(verifier, hs_token(name=name))
    assert "name" in message


def test_unknown_issuer(verifier: TokenVerifier) -> None:
    rejected(verifier, hs_token(iss="rogue-portal"), ErrorCode.UNKNOWN_ISSUER)


@pytest.mark.parametrize("iss", [DROP, 7, ""])
def test_missing_or_non_string_issuer(verifier: TokenVerifier, iss: Any) -> None:
    # built by hand: pyjwt refuses to encode a non-string iss
    token = raw_token({"alg": "HS256", "typ": "JWT"}, claims(iss=iss), HS_SECRET.encode())
    rejected(verifier, token, ErrorCode.UNKNOWN_ISSUER)


def test_token_for_one_issuer_signed_with_anothers_key(verifier: TokenVerifier) -> None:
    # iss says portal-es (ES256) but the token is HS256 with the HS issuer's secret
    token = jwt.encode(claims(iss="portal-es"), HS_SECRET, algorithm="HS256")
    rejected(verifier, token)


def test_algorithm_confusion_hs256_with_public_key_as_secret(verifier: TokenVerifier) -> None:
    # The classic attack: HMAC-sign with the issuer's public PEM as the shared secret.
    token = raw_token(
        {"alg": "HS256", "typ": "JWT"}, claims(iss="portal-es"), ES_PUBLIC_PEM.encode()
    )
    message = rejected(verifier, token)
    assert "algorithm" in message


def test_es256_token_for_hs256_issuer_rejected(verifier: TokenVerifier) -> None:
    rejected(verifier, es_token(iss="portal-hs"))


@pytest.mark.parametrize("iss", ["portal-hs", "portal-es"])
@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_rejected(verifier: TokenVerifier, iss: str, alg: str) -> None:
    rejected(verifier, raw_token({"alg": alg, "typ": "JWT"}, claims(iss=iss), None))


def test_alg_none_via_pyjwt_rejected(verifier: TokenVerifier) -> None:
    token = jwt.encode(claims(), None, algorithm="none")
    rejected(verifier, token)


def test_hs256_header_with_other_alg_name_rejected(verifier: TokenVerifier) -> None:
    token = raw_token({"alg": "HS512", "typ": "JWT"}, claims(), HS_SECRET.encode())
    rejected(verifier, token)


@pytest.mark.parametrize(
    "token",
    [None, "", 17, b"bytes", "not-a-jwt", "a.b.c", "x" * 8193, "eyJhbGciOiJIUzI1NiJ9.e30"],
)
def test_malformed_token(verifier: TokenVerifier, token: Any) -> None:
    rejected(verifier, token)


def test_oversized_token_rejected_even_if_valid(verifier: TokenVerifier) -> None:
    token = hs_token(padding="p" * 9000)
    assert len(token) > 8192
    rejected(verifier, token)


def test_payload_that_is_not_an_object(verifier: TokenVerifier) -> None:
    token = raw_token({"alg": "HS256", "typ": "JWT"}, ["iss", "portal-hs"], HS_SECRET.encode())  # type: ignore[arg-type]
    rejected(verifier, token)


def test_sfu_error_carries_no_secret(verifier: TokenVerifier) -> None:
    message = rejected(verifier, hs_token(secret="another-secret-of-sufficient-length!!"))
    assert HS_SECRET not in message


# --------------------------------------------------------------------------
# mint_token / dev_secret / with_dev_issuer
# --------------------------------------------------------------------------


def dev_config(tmp_path: Path, **kw: Any) -> AuthConfig:
    return AuthConfig(dev_secret_file=str(tmp_path / "state" / "dev-secret"), **kw)


def test_mint_token_round_trips_through_verifier(tmp_path: Path) -> None:
    secret = Secret("minted-secret-0123456789-abcdefghij")
    config = AuthConfig(issuers=[IssuerConfig(id=DEV_ISSUER, algorithm="HS256", secret=secret)])
    token = mint_token(
        secret,
        room="consult-1",
        identity="hw-3",
        role=Role.HEALTH_WORKER,
        name="Nurse Joy",
        grants={"record": True},
    )
    result = TokenVerifier(config).verify(token)
    assert result.issuer == DEV_ISSUER
    assert result.room == "consult-1"
    assert result.identity == "hw-3"
    assert result.name == "Nurse Joy"
    assert result.role is Role.HEALTH_WORKER
    assert result.grants == Grants(
        publish=True, subscribe=True, admit=True, record=True, capture=True
    )


def test_mint_token_claims() -> None:
    secret = Secret("minted-secret-0123456789-abcdefghij")
    token = mint_token(
        secret, room="r1", identity="p1", role=Role.PATIENT, ttl=120, now=1_700_000_000
    )
    payload = jwt.decode(token, options={"verify_signature": False})
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert payload["iss"] == DEV_ISSUER
    assert payload["aud"] == "digiclinic"
    assert payload["sub"] == "p1"
    assert payload["room"] == "r1"
    assert payload["role"] == "patient"
    assert payload["name"] == "p1"
    assert payload["iat"] == 1_700_000_000
    assert payload["exp"] == 1_700_000_120
    assert "grants" not in payload
    assert isinstance(payload["jti"], str)


def test_mint_token_jti_is_unique() -> None:
    secret = Secret("minted-secret-0123456789-abcdefghij")
    tokens = {
        jwt.decode(
            mint_token(secret, room="r", identity="i", role=Role.PATIENT, now=1.0),
            options={"verify_signature": False},
        )["jti"]
        for _ in range(5)
    }
    assert len(tokens) == 5


def test_minted_token_with_ttl_over_maximum_is_rejected() -> None:
    secret = Secret("minted-secret-0123456789-abcdefghij")
    config = AuthConfig(
        max_token_lifetime=600,
        issuers=[IssuerConfig(id=DEV_ISSUER, algorithm="HS256", secret=secret)],
    )
    token = mint_token(secret, room="r", identity="i", role=Role.PATIENT, ttl=601)
    rejected(TokenVerifier(config), token)


def test_dev_secret_created_with_mode_0600(tmp_path: Path) -> None:
    config = dev_config(tmp_path)
    secret = dev_secret(config)
    path = Path(config.dev_secret_file)
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == secret.reveal()
    assert len(secret.reveal()) >= 32


def test_dev_secret_reused_on_second_call(tmp_path: Path) -> None:
    config = dev_config(tmp_path)
    first = dev_secret(config)
    second = dev_secret(config)
    assert first == second
    assert first.reveal() == second.reveal()


def test_dev_secret_reads_existing_file_stripping_whitespace(tmp_path: Path) -> None:
    config = dev_config(tmp_path)
    path = Path(config.dev_secret_file)
    path.parent.mkdir(parents=True)
    path.write_text("existing-secret\n")
    assert dev_secret(config).reveal() == "existing-secret"


def test_dev_secret_without_create_raises(tmp_path: Path) -> None:
    config = dev_config(tmp_path)
    with pytest.raises(FileNotFoundError):
        dev_secret(config, create=False)
    assert not Path(config.dev_secret_file).exists()


def test_dev_secret_differs_between_installations(tmp_path: Path) -> None:
    a = dev_secret(AuthConfig(dev_secret_file=str(tmp_path / "a")))
    b = dev_secret(AuthConfig(dev_secret_file=str(tmp_path / "b")))
    assert a != b


def test_dev_secret_file_is_never_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[int] = []
    original_chmod: Callable[..., None] = Path.chmod

    def spying_chmod(self: Path, mode: int, **kw: Any) -> None:
        modes.append(stat.S_IMODE(os.stat(self).st_mode))
        original_chmod(self, mode, **kw)

    monkeypatch.setattr(Path, "chmod", spying_chmod)
    old_umask = os.umask(0o022)
    try:
        dev_secret(dev_config(tmp_path))
    finally:
        os.umask(old_umask)
    assert all(mode & 0o077 == 0 for mode in modes)


def test_with_dev_issuer_adds_dev_issuer_when_none_configured(tmp_path: Path) -> None:
    config = dev_config(tmp_path, audience="aud-x", max_token_lifetime=99, leeway=3)
    result = with_dev_issuer(config)
    assert [i.id for i in result.issuers] == [DEV_ISSUER]
    assert result.issuers[0].algorithm == "HS256"
    assert result.issuers[0].secret == dev_secret(config)
    assert (result.audience, result.max_token_lifetime, result.leeway) == ("aud-x", 99, 3)
    assert config.issuers == []


def test_with_dev_issuer_keeps_configured_issuers(tmp_path: Path) -> None:
    config = auth_config(dev_secret_file=str(tmp_path / "dev-secret"))
    assert with_dev_issuer(config) is config
    assert not (tmp_path / "dev-secret").exists()


def test_dev_token_verifies_with_dev_issuer(tmp_path: Path) -> None:
    config = with_dev_issuer(dev_config(tmp_path))
    token = mint_token(dev_secret(config), room="consult-9", identity="p", role=Role.PATIENT)
    assert TokenVerifier(config).verify(token).room == "consult-9"
