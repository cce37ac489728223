"""Single-use join tokens: the in-memory record, tickets, the development issuer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sfu.errors import ErrorCode, SfuError
from sfu.participant import Grants, Role
from signaling.config import AuthConfig, IssuerConfig, Secret
from signaling.single_use import MemoryUsedTokens, Outcome, SingleUseTokens
from signaling.tickets import TicketSigner
from signaling.tokens import JoinClaims, TokenVerifier, mint_token, with_dev_issuer

NOW = 1_800_000_000.0
CLAIMS = JoinClaims(
    issuer="portal",
    identity="dr-a",
    name="Dr A",
    room="ward-1",
    role=Role.SPECIALIST,
    grants=Grants(publish=True, subscribe=True, admit=True, record=True),
    expires_at=int(NOW) + 600,
    jti="abc123",
    jti_until=int(NOW) + 610,
)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_records_are_purged_once_their_token_has_expired() -> None:
    clock = Clock()
    store = MemoryUsedTokens(clock)
    for i in range(1000):
        assert store.claim_now(f"k{i}", "", "d", NOW + 10 + i % 10) is Outcome.FIRST
    assert len(store) == 1000
    clock.now = NOW + 15
    assert 0 < len(store) < 1000
    clock.now = NOW + 20
    assert len(store) == 0 and not store._expiry  # nothing left, heap included
    assert store.claim_now("k1", "", "d", NOW + 30) is Outcome.FIRST  # expired: forgotten


def test_a_record_resumes_with_its_value_only_until_spent_or_released() -> None:
    store = MemoryUsedTokens(Clock())
    assert store.claim_now("k", "", "secret-1", NOW + 60) is Outcome.FIRST
    assert store.claim_now("k", "", "other", NOW + 60) is Outcome.USED
    assert store.claim_now("k", "wrong", "other", NOW + 60) is Outcome.USED
    assert store.claim_now("k", "secret-1", "other", NOW + 60) is Outcome.RESUMED
    store.swap("k", "wrong", None, 0)  # another session's value: no effect
    assert store.claim_now("k", "secret-1", "other", NOW + 60) is Outcome.RESUMED
    store.swap("k", "secret-1", "spent", NOW + 60)
    assert store.claim_now("k", "secret-1", "other", NOW + 60) is Outcome.USED
    assert store.claim_now("k2", "", "secret-2", NOW + 60) is Outcome.FIRST
    store.swap("k2", "secret-2", None, 0)  # a failed first join: released
    assert store.claim_now("k2", "", "secret-3", NOW + 60) is Outcome.FIRST


async def test_use_refuses_a_second_join_and_a_token_without_jti() -> None:
    tokens = SingleUseTokens(MemoryUsedTokens(Clock()), required=True)
    use = await tokens.use(CLAIMS, "")
    assert use is not None and use.first and len(use.resume) >= 32
    with pytest.raises(SfuError) as refused:
        await tokens.use(CLAIMS, "")
    assert refused.value.code is ErrorCode.TOKEN_USED
    resumed = await tokens.use(CLAIMS, use.resume)
    assert resumed is not None and not resumed.first and resumed.resume == use.resume
    await tokens.unused(resumed)  # a failed rejoin keeps the record
    assert await tokens.use(CLAIMS, use.resume) is not None
    await tokens.spend(use)
    with pytest.raises(SfuError):
        await tokens.use(CLAIMS, use.resume)
    for jti in ("", "x" * 300, "a\nb"):
        with pytest.raises(SfuError) as invalid:
            await tokens.use(dataclasses.replace(CLAIMS, jti=jti), "")
        assert invalid.value.code is ErrorCode.TOKEN_INVALID
    multi = SingleUseTokens(MemoryUsedTokens(Clock()), required=False)
    assert await multi.use(dataclasses.replace(CLAIMS, jti=""), "") is None


def test_a_ticket_carries_the_tokens_jti_and_its_expiry() -> None:
    signer = TicketSigner(Secret("s3cret"), ttl=30)
    claims = signer.verify(signer.issue(CLAIMS, "node-b", now=NOW), "node-b", now=NOW)
    assert (claims.jti, claims.jti_until) == (CLAIMS.jti, CLAIMS.jti_until)
    assert claims.expires_at == int(NOW) + 30  # the ticket's own, much shorter


def test_the_token_jti_and_its_memory_span_come_from_the_verified_token() -> None:
    secret = Secret("portal-secret-0123456789abcdef-0123")
    config = AuthConfig(issuers=[IssuerConfig(id="portal", algorithm="HS256", secret=secret)])
    assert config.single_use_tokens  # production issuers: single use by default
    token = mint_token(secret, room="r", identity="i", role=Role.PATIENT, issuer="portal")
    claims = TokenVerifier(config).verify(token)
    assert claims.jti and claims.jti_until == claims.expires_at + config.leeway


def test_the_development_issuer_stays_multi_use(tmp_path: Path) -> None:
    dev = with_dev_issuer(
        AuthConfig(dev_secret_file=str(tmp_path / "secret"), max_invitation_lifetime=60)
    )
    assert [i.id for i in dev.issuers] == ["dev"]
    assert not dev.single_use_tokens
    assert dev.max_invitation_lifetime == 60  # the rest of the section is kept
