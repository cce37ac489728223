"""A user-space impairment relay between one client and the server, on loopback.

The kernel here has no netem, so link impairments are emulated in user space.
The relay acts like a NAT in the middle of one ICE connection: the client is
told (by rewriting the server's SDP) that the server is at the relay's client
side; the server is told (by rewriting the client's SDP) that the client is
at the relay's server side. Every datagram crosses the relay.

Each direction (``down`` = server -> client, ``up`` = client -> server) is a
small link model, applied in this order:

1. **loss**: SRTP/SRTCP is dropped with the given probability (STUN and DTLS
   are left alone, so ICE consent and the handshake are not what is tested);
2. **rate cap**, like Linux ``tbf``: a token bucket filling at ``rate_bps``
   and holding at most ``burst_bytes``; a datagram leaves when the bucket
   holds its size in bytes, otherwise it waits in a FIFO queue limited to
   ``queue_ms`` worth of bytes at that rate (tbf's ``latency``). A datagram
   that does not fit is dropped (tail drop), as is one larger than the
   bucket. The cap applies to every datagram (SRTP, STUN, DTLS), like a real
   link;
3. **delay line**: a fixed ``delay_ms`` plus uniform jitter of up to
   ``jitter_ms`` either way; departure times never go backwards, so packet
   order is always kept (a datagram that would overtake waits behind the
   one before it).

Everything runs on the event loop with one ``loop.call_at`` timer per
direction (no task per packet; equal timer deadlines need not fire in order,
so the queues are serviced by one timer that walks them front to back).
``close()`` cancels the timers. Settings can change mid-call::

    relay.set_down(rate_bps=250_000, queue_ms=200)
    relay.set_down(rate_bps=None)          # lift the cap (the queue is flushed)
"""

from __future__ import annotations

import asyncio
import enum
import random
import re
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ udp \d+ )(\S+) (\d+)( typ host.*)$", re.M)
SOCKET_BUFFER = 4 * 1024 * 1024
MIN_BURST = 1500  # a bucket smaller than one packet lets nothing through (tbf's trap)


def _is_srtp(data: bytes) -> bool:
    return len(data) > 1 and 128 <= data[0] < 192


class _Keep(enum.Enum):
    KEEP = 0


KEEP = _Keep.KEEP
"""Default of :meth:`UdpImpairmentRelay.set_down` arguments: leave that setting alone."""


@dataclass(frozen=True)
class LinkSettings:
    """One direction of the emulated link."""

    rate_bps: float | None = None  # None: no cap
    burst_bytes: int = 4000  # token bucket size; must exceed the largest datagram
    queue_ms: float = 100.0  # queue limit, as time at rate_bps (tbf latency)
    delay_ms: float = 0.0
    jitter_ms: float = 0.0  # uniform in [-jitter, +jitter], never reordering
    loss: float = 0.0  # SRTP/SRTCP only

    def __post_init__(self) -> None:
        if self.rate_bps is not None and self.rate_bps <= 0:
            raise ValueError("rate_bps must be positive (or None for no cap)")
        if self.burst_bytes < MIN_BURST:
            raise ValueError(f"burst_bytes must be at least {MIN_BURST} (one packet)")
        if self.queue_ms < 0 or self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError("queue_ms, delay_ms and jitter_ms must not be negative")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError("loss is a probability")

    @property
    def queue_limit_bytes(self) -> float:
        return 0.0 if self.rate_bps is None else self.rate_bps / 8 * self.queue_ms / 1000


@dataclass
class LinkCounters:
    """What one direction did since the relay started."""

    packets: int = 0  # datagrams that arrived at the relay
    bytes: int = 0
    delivered: int = 0  # datagrams sent on to the far side
    delivered_bytes: int = 0
    dropped_loss: int = 0  # random loss (SRTP/SRTCP only)
    dropped_queue: int = 0  # rate-cap queue full (or datagram larger than the bucket)
    max_queue_delay_ms: float = 0.0  # longest wait in the rate-cap queue
    max_queue_bytes: int = 0  # largest backlog the rate-cap queue held


@dataclass
class RelayCounters:
    down: LinkCounters = field(default_factory=LinkCounters)
    up: LinkCounters = field(default_factory=LinkCounters)

    # the original flat names, kept for existing tests
    @property
    def down_packets(self) -> int:
        return self.down.packets

    @property
    def down_dropped(self) -> int:
        return self.down.dropped_loss

    @property
    def up_packets(self) -> int:
        return self.up.packets

    @property
    def up_dropped(self) -> int:
        return self.up.dropped_loss


class _Link:
    """One direction: loss, then a tbf-like rate cap, then an order-keeping delay line."""

    def __init__(
        self,
        settings: LinkSettings,
        counters: LinkCounters,
        rng: random.Random,
        deliver: Callable[[bytes], None],
    ) -> None:
        self.settings = settings
        self.counters = counters
        self._rng = rng
        self._deliver = deliver
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[tuple[float, bytes]] = deque()  # (arrival, datagram)
        self._queued_bytes = 0
        self._tokens = float(settings.burst_bytes)
        self._refilled_at: float | None = None
        self._line: deque[tuple[float, bytes]] = deque()  # (due, datagram)
        self._last_due = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._refilled_at = loop.time()

    # -- input -------------------------------------------------------------------------

    def push(self, data: bytes) -> None:
        if self._closed:
            return
        c, s = self.counters, self.settings
        c.packets += 1
        c.bytes += len(data)
        if s.loss and _is_srtp(data) and self._rng.random() < s.loss:
            c.dropped_loss += 1
            return
        now = self._now()
        if s.rate_bps is None:
            self._enter_line(now, data)
            return
        self._refill(now)
        if not self._queue and self._tokens >= len(data):
            self._tokens -= len(data)
            self._enter_line(now, data)
            return
        if len(data) > s.burst_bytes or self._queued_bytes + len(data) > s.queue_limit_bytes:
            c.dropped_queue += 1
            return
        self._queue.append((now, data))
        self._queued_bytes += len(data)
        c.max_queue_bytes = max(c.max_queue_bytes, self._queued_bytes)
        if len(self._queue) == 1:
            self._schedule(now)

    def configure(self, settings: LinkSettings) -> None:
        now = self._now()
        self._refill(now)  # tokens earned at the old rate are kept
        self.settings = settings
        self._tokens = min(self._tokens, float(settings.burst_bytes))
        if self._timer is not None:
            self._timer.cancel()
        self._service()  # lifting the cap releases the whole queue at once

    # -- the two stages ----------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None, "relay not started"
        return self._loop.time()

    def _refill(self, now: float) -> None:
        rate = self.settings.rate_bps
        if rate is not None and self._refilled_at is not None:
            self._tokens = min(
                float(self.settings.burst_bytes),
                self._tokens + (now - self._refilled_at) * rate / 8,
            )
        self._refilled_at = now

    def _enter_line(self, now: float, data: bytes) -> None:
        s = self.settings
        if not s.delay_ms and not s.jitter_ms and not self._line:
            self._send(data)
            return
        wait = s.delay_ms
        if s.jitter_ms:
            wait = max(0.0, wait + self._rng.uniform(-s.jitter_ms, s.jitter_ms))
        due = max(now + wait / 1000, self._last_due)  # never overtake the one before
        self._last_due = due
        self._line.append((due, data))
        if len(self._line) == 1:
            self._schedule(now)

    def _send(self, data: bytes) -> None:
        self.counters.delivered += 1
        self.counters.delivered_bytes += len(data)
        self._deliver(data)

    def _service(self) -> None:
        """Release what the bucket allows, send what is due, and set the next timer."""
        self._timer = None
        if self._closed:
            return
        now = self._now()
        rate = self.settings.rate_bps
        self._refill(now)
        queue = self._queue
        while queue and (rate is None or self._tokens >= len(queue[0][1])):
            arrived, data = queue.popleft()
            self._queued_bytes -= len(data)
            if rate is not None:
                self._tokens -= len(data)
            waited = (now - arrived) * 1000
            self.counters.max_queue_delay_ms = max(self.counters.max_queue_delay_ms, waited)
            self._enter_line(now, data)
        line = self._line
        while line and line[0][0] <= now:
            self._send(line.popleft()[1])
        self._schedule(now)

    def _next_wake(self, now: float) -> float | None:
        wake: float | None = None
        rate = self.settings.rate_bps
        if self._queue and rate is not None:
            missing = len(self._queue[0][1]) - self._tokens
            wake = now + max(0.0, missing) * 8 / rate
        if self._line:
            due = self._line[0][0]
            wake = due if wake is None else min(wake, due)
        return wake

    def _schedule(self, now: float) -> None:
        wake = self._next_wake(now)
        if wake is None or self._loop is None or self._closed:
            return
        if self._timer is not None:
            if self._timer_at <= wake:
                return
            self._timer.cancel()
        self._timer_at = wake
        self._timer = self._loop.call_at(wake, self._service)

    def queued(self) -> int:
        """Datagrams held in the rate-cap queue and the delay line."""
        return len(self._queue) + len(self._line)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self._line.clear()
        self._queued_bytes = 0


class _Side(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpImpairmentRelay, name: str) -> None:
        self.relay = relay
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay._received(self.name, data, addr)


class UdpImpairmentRelay:
    def __init__(
        self,
        down_loss: float = 0.0,
        up_loss: float = 0.0,
        seed: int = 7,
        *,
        down: LinkSettings | None = None,
        up: LinkSettings | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.counters = RelayCounters()
        self._random = random.Random(seed)
        down = down or LinkSettings()
        up = up or LinkSettings()
        if down_loss:
            down = replace(down, loss=down_loss)
        if up_loss:
            up = replace(up, loss=up_loss)
        self._down = _Link(down, self.counters.down, self._random, self._send_down)
        self._up = _Link(up, self.counters.up, self._random, self._send_up)
        self._client_side: _Side | None = None
        self._server_side: _Side | None = None
        self.server_addr: tuple[str, int] | None = None
        self.client_addr: tuple[str, int] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        _, self._client_side = await loop.create_datagram_endpoint(
            lambda: _Side(self, "client"), local_addr=(self.host, 0)
        )
        _, self._server_side = await loop.create_datagram_endpoint(
            lambda: _Side(self, "server"), local_addr=(self.host, 0)
        )
        self._down.bind(loop)
        self._up.bind(loop)

    # -- settings ----------------------------------------------------------------------

    @property
    def down(self) -> LinkSettings:
        return self._down.settings

    @property
    def up(self) -> LinkSettings:
        return self._up.settings

    @property
    def down_loss(self) -> float:
        return self._down.settings.loss

    @down_loss.setter
    def down_loss(self, value: float) -> None:
        self.set_down(loss=value)

    @property
    def up_loss(self) -> float:
        return self._up.settings.loss

    @up_loss.setter
    def up_loss(self, value: float) -> None:
        self.set_up(loss=value)

    def set_down(
        self,
        *,
        rate_bps: float | _Keep | None = KEEP,
        burst_bytes: int | _Keep = KEEP,
        queue_ms: float | _Keep = KEEP,
        delay_ms: float | _Keep = KEEP,
        jitter_ms: float | _Keep = KEEP,
        loss: float | _Keep = KEEP,
    ) -> LinkSettings:
        """Change the server -> client link now; ``rate_bps=None`` lifts the cap."""
        return self._set(self._down, rate_bps, burst_bytes, queue_ms, delay_ms, jitter_ms, loss)

    def set_up(
        self,
        *,
        rate_bps: float | _Keep | None = KEEP,
        burst_bytes: int | _Keep = KEEP,
        queue_ms: float | _Keep = KEEP,
        delay_ms: float | _Keep = KEEP,
        jitter_ms: float | _Keep = KEEP,
        loss: float | _Keep = KEEP,
    ) -> LinkSettings:
        """Change the client -> server link now; ``rate_bps=None`` lifts the cap."""
        return self._set(self._up, rate_bps, burst_bytes, queue_ms, delay_ms, jitter_ms, loss)

    @staticmethod
    def _set(
        link: _Link,
        rate_bps: float | _Keep | None,
        burst_bytes: int | _Keep,
        queue_ms: float | _Keep,
        delay_ms: float | _Keep,
        jitter_ms: float | _Keep,
        loss: float | _Keep,
    ) -> LinkSettings:
        s = link.settings
        settings = LinkSettings(
            rate_bps=s.rate_bps if rate_bps is KEEP else rate_bps,
            burst_bytes=s.burst_bytes if burst_bytes is KEEP else burst_bytes,
            queue_ms=s.queue_ms if queue_ms is KEEP else queue_ms,
            delay_ms=s.delay_ms if delay_ms is KEEP else delay_ms,
            jitter_ms=s.jitter_ms if jitter_ms is KEEP else jitter_ms,
            loss=s.loss if loss is KEEP else loss,
        )
        if link._loop is None:  # not started yet: just remember
            link.settings = settings
        else:
            link.configure(settings)
        return settings

    # -- addresses ---------------------------------------------------------------------

    def _port(self, side: _Side | None) -> int:
        assert side is not None and side.transport is not None
        return int(side.transport.get_extra_info("sockname")[1])

    @property
    def client_side_addr(self) -> tuple[str, int]:
        """Where the client sends (it believes the server is here)."""
        return (self.host, self._port(self._client_side))

    @property
    def server_side_addr(self) -> tuple[str, int]:
        """Where the server sends (it believes the client is here)."""
        return (self.host, self._port(self._server_side))

    def rewrite_server_sdp(self, sdp: str) -> str:
        """The server's SDP: its host candidate becomes the relay's client side."""

        def swap(m: re.Match[str]) -> str:
            self.server_addr = (m.group(2), int(m.group(3)))
            return f"{m.group(1)}{self.host} {self._port(self._client_side)}{m.group(4)}"

        return _CANDIDATE.sub(swap, sdp)

    def rewrite_client_sdp(self, sdp: str) -> str:
        """The client's SDP: its host candidate becomes the relay's server side."""

        def swap(m: re.Match[str]) -> str:
            self.client_addr = (m.group(2), int(m.group(3)))
            return f"{m.group(1)}{self.host} {self._port(self._server_side)}{m.group(4)}"

        return _CANDIDATE.sub(swap, sdp)

    # -- the datagram path -------------------------------------------------------------

    def _received(self, side: str, data: bytes, addr: tuple[str, int]) -> None:
        if side == "client":
            self.client_addr = addr
            self._up.push(data)
        else:
            self._down.push(data)

    def _send_up(self, data: bytes) -> None:
        side = self._server_side
        if self.server_addr is not None and side is not None and side.transport is not None:
            side.transport.sendto(data, self.server_addr)

    def _send_down(self, data: bytes) -> None:
        side = self._client_side
        if self.client_addr is not None and side is not None and side.transport is not None:
            side.transport.sendto(data, self.client_addr)

    def queued(self) -> tuple[int, int]:
        """(down, up) datagrams still held in the relay."""
        return self._down.queued(), self._up.queued()

    def close(self) -> None:
        self._down.close()
        self._up.close()
        for side in (self._client_side, self._server_side):
            if side is not None and side.transport is not None:
                side.transport.close()
