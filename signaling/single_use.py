"""Single-use join tokens (``auth.single_use_tokens``): a token's ``jti`` joins once.

A join token is a bearer credential: whoever holds a copy (a forwarded link,
a browser history, a proxy log) could join with it until it expires, even
after its participant left. With single use, the first ``join`` records the
token's ``jti`` (per issuer) as used until the token's ``exp`` plus the
leeway (after that the token is refused anyway, so the record is purged),
and a later join with that token is refused with ``token_used``. A token
without a ``jti`` is refused with ``token_invalid``. The development issuer's
tokens stay multi-use (signaling/tokens.py ``with_dev_issuer``).

Reconnection: a client whose connection dropped joins again with the same
token (signaling/client_reconnect.py, web-client/client/reconnect.js). The
first ``joined`` carries ``resume``, a random secret made by the server,
sent only over the WebSocket (never in a URL); the server keeps only its
SHA-256. A join with the token *and* that secret is accepted again; the
token alone is not. An explicit ``leave``, or being denied from the lobby,
spends the token for good: after that not even the secret rejoins. A
disconnect (network drop, node draining or gone, server shutdown) does not,
so the client can come back, to any node of the cluster.

Why a secret rather than "the same identity may rejoin while its previous
session is gone": that would let whoever copied the token in as soon as the
rightful participant's connection drops, and it needs the room's memory of
who was there, which a room that moved to another node (drain, failover)
does not have. The secret needs only the shared record of the jti.

Where: a join that follows a redirect carries the jti in its ticket
(signaling/tickets.py), and the node that creates the participant records
it. A join refused after the record (room full, identity already present)
takes a first record back, so the token stays usable.

Store: in memory (one process: a restart forgets, so a token may then join
once more, within its lifetime), or in the cluster's Redis
(``<cluster.key_prefix>:jti:<digest>``, expiring with the token, shared by
every node), mirrored in memory. While Redis is unreachable a node decides
from its own memory (a token could then be used once more on another node:
the price of keeping consults joinable during an outage, as placement does).
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sfu.errors import ErrorCode, SfuError
from signaling.tokens import JoinClaims

logger = logging.getLogger(__name__)

SPENT = "spent"  # the record of a token that left: no resume secret matches it
MAX_JTI = 256
MAX_RESUME = 128
_ERRORS = (RedisError, OSError, TimeoutError)


class Outcome(enum.Enum):
    FIRST = "first"  # never used: recorded now
    RESUMED = "resumed"  # used, and the join presented its resume secret
    USED = "used"  # used (or spent): refused


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def token_key(issuer: str, jti: str) -> str:
    """The record's key: a digest of issuer and jti (a jti is unique per issuer)."""
    return hashlib.sha256(f"{issuer}\0{jti}".encode()).hexdigest()[:40]


class UsedTokenStore(Protocol):
    async def claim(self, key: str, presented: str, fresh: str, until: float) -> Outcome:
        """Record ``key`` with ``fresh`` if unknown (FIRST); RESUMED if its value is
        ``presented`` (non-empty); else USED. Values are resume secret digests."""

    async def release(self, key: str, value: str) -> None:
        """Forget ``key`` if its value is still ``value`` (a first join that failed)."""

    async def spend(self, key: str, value: str, until: float) -> None:
        """Mark ``key`` spent if its value is still ``value`` (the participant left)."""


class MemoryUsedTokens:
    """This process's records; expired ones are purged as time passes (bounded memory)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._records: dict[str, tuple[str, float]] = {}  # key -> (value, until)
        self._expiry: list[tuple[float, str]] = []  # heap of (until, key)

    def __len__(self) -> int:
        self._purge()
        return len(self._records)

    def _purge(self) -> None:
        now = self._clock()
        while self._expiry and self._expiry[0][0] <= now:
            _, key = heapq.heappop(self._expiry)
            record = self._records.get(key)
            if record is not None and record[1] <= now:
                del self._records[key]

    def put(self, key: str, value: str, until: float) -> None:
        self._purge()
        if until <= self._clock():
            return
        known = self._records.get(key)
        self._records[key] = (value, until)
        if known is None or known[1] != until:
            heapq.heappush(self._expiry, (until, key))

    def claim_now(self, key: str, presented: str, fresh: str, until: float) -> Outcome:
        self._purge()
        record = self._records.get(key)
        if record is None:
            self.put(key, fresh, until)
            return Outcome.FIRST
        if presented and hmac.compare_digest(record[0], presented):
            return Outcome.RESUMED
        return Outcome.USED

    def swap(self, key: str, expected: str, new: str | None, until: float) -> None:
        record = self._records.get(key)
        if record is None or not hmac.compare_digest(record[0], expected):
            return
        if new is None:
            del self._records[key]
        else:
            self.put(key, new, until)

    async def claim(self, key: str, presented: str, fresh: str, until: float) -> Outcome:
        return self.claim_now(key, presented, fresh, until)

    async def release(self, key: str, value: str) -> None:
        self.swap(key, value, None, 0)

    async def spend(self, key: str, value: str, until: float) -> None:
        self.swap(key, value, SPENT, until)


# KEYS: record. ARGV: presented digest ('' = none), fresh digest, ttl ms
CLAIM = """
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 'first'
end
if ARGV[1] ~= '' and current == ARGV[1] then
  return 'resumed'
end
return 'used'
"""

# KEYS: record. ARGV: expected value, new value ('' = delete), ttl ms
SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""


def _ttl_ms(until: float) -> int:
    return max(1, int((until - time.time()) * 1000))


class RedisUsedTokens:
    """The cluster's records in Redis (one atomic script per step), mirrored in memory."""

    def __init__(
        self, redis: aioredis.Redis, prefix: str, connected: Callable[[], bool | None]
    ) -> None:
        self._prefix = prefix  # e.g. "digiclinic:jti:"
        self._connected = connected
        self._claim = redis.register_script(CLAIM)
        self._swap = redis.register_script(SWAP)
        self.local = MemoryUsedTokens()

    async def claim(self, key: str, presented: str, fresh: str, until: float) -> Outcome:
        if self._connected():
            try:
                raw: Any = await self._claim(
                    keys=[self._prefix + key], args=[presented, fresh, _ttl_ms(until)]
                )
            except _ERRORS as exc:
                logger.warning(
                    "redis unreachable (%s): single-use tokens checked on this node only",
                    type(exc).__name__,
                )
            else:
                outcome = Outcome(raw.decode() if isinstance(raw, bytes) else str(raw))
                if outcome is not Outcome.USED:
                    self.local.put(key, fresh if outcome is Outcome.FIRST else presented, until)
                return outcome
        return self.local.claim_now(key, presented, fresh, until)

    async def _redis_swap(self, key: str, expected: str, new: str, until: float) -> None:
        if not self._connected():
            return
        try:
            await self._swap(keys=[self._prefix + key], args=[expected, new, _ttl_ms(until)])
        except _ERRORS as exc:
            logger.warning("redis unreachable (%s): token record not updated", type(exc).__name__)

    async def release(self, key: str, value: str) -> None:
        self.local.swap(key, value, None, 0)
        await self._redis_swap(key, value, "", 0)

    async def spend(self, key: str, value: str, until: float) -> None:
        self.local.swap(key, value, SPENT, until)
        await self._redis_swap(key, value, SPENT, until)


@dataclass(frozen=True, slots=True)
class TokenUse:
    """A joined session's hold on its single-use token."""

    key: str
    resume: str  # the secret the client rejoins with (sent in `joined`)
    until: float
    first: bool  # recorded by this join (taken back if the join fails)

    @property
    def value(self) -> str:
        return _digest(self.resume)


class SingleUseTokens:
    """The join path's check: ``use`` before the participant is created, then
    ``unused`` if the join failed, or ``spend`` once the participant left for good."""

    def __init__(self, store: UsedTokenStore, required: bool) -> None:
        self.store = store
        self.required = required

    async def use(self, claims: JoinClaims, resume: str) -> TokenUse | None:
        """Record the token's use (None when tokens are multi-use), or SfuError."""
        if not self.required:
            return None
        jti = claims.jti
        if not jti or len(jti) > MAX_JTI or not jti.isprintable():
            raise SfuError(
                ErrorCode.TOKEN_INVALID,
                "token has no valid jti claim: this server accepts single-use tokens only",
            )
        presented = resume if 0 < len(resume) <= MAX_RESUME else ""
        fresh = secrets.token_urlsafe(32)
        key = token_key(claims.issuer, jti)
        outcome = await self.store.claim(
            key, _digest(presented) if presented else "", _digest(fresh), claims.jti_until
        )
        if outcome is Outcome.USED:
            raise SfuError(
                ErrorCode.TOKEN_USED,
                "this token has already joined: the portal issues a new one for each join",
            )
        first = outcome is Outcome.FIRST
        return TokenUse(key, fresh if first else presented, claims.jti_until, first)

    async def unused(self, use: TokenUse | None) -> None:
        """The join failed after ``use``: a first use is taken back."""
        if use is not None and use.first:
            await self.store.release(use.key, use.value)

    async def spend(self, use: TokenUse | None) -> None:
        """The participant left (or was denied): the token joins no more, resumed or not."""
        if use is not None:
            await self.store.spend(use.key, use.value, use.until)
