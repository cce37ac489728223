"""KeyframeRequests: rate-limits a Producer's keyframe requests to its publisher.

Consumers ask for keyframes whenever they start or switch layers, and a
subscriber's PLIs arrive in bursts; the publisher gets at most one request
per layer per interval (longer on a long path: no new request before the
last could have been answered). A request inside the interval is not lost:
one is sent when the interval ends, unless a keyframe arrived in between
(the Producer then cancels it, ``Layer.cancel_request``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sfu.layers import Layer
from sfu.media import TrafficCounters

KEYFRAME_REQUEST_INTERVAL = 0.25
"""Minimum seconds between two keyframe requests sent to one publisher layer."""
KEYFRAME_INTERVAL_RTTS = 1.25  # upstream keyframe requests: at most one per this many RTTs
KEYFRAME_RETRY_S = 2.0
"""A consumer that still waits for a layer's keyframe this long after the last request
asks again: a publisher may drop a PLI (Chrome did, for a layer whose encoder was not
running yet: a console room switched back in; tests/browser/test_console.py), and
nothing else would ask again while that layer's other packets keep flowing."""


class KeyframeRequests:
    """At most one keyframe request per layer per interval; one inside it is deferred."""

    __slots__ = ("_closed", "_counters", "_interval", "_send_upstream")

    def __init__(
        self,
        send_upstream: Callable[[int], None],
        interval: float = KEYFRAME_REQUEST_INTERVAL,
        counters: TrafficCounters | None = None,
    ) -> None:
        self._send_upstream = send_upstream  # sends a PLI for one SSRC
        self._interval = interval
        self._counters = counters  # the Producer's: counts the requests sent
        self._closed = False

    def request(self, layer: Layer) -> None:
        """Ask for a keyframe on ``layer`` (bound to an SSRC) now, or when the interval ends."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        # no new request before the last one could have been answered (a long path)
        repair_s = (layer.stream.repair_ms or 0.0) / 1000 if layer.stream is not None else 0.0
        interval = max(self._interval, KEYFRAME_INTERVAL_RTTS * repair_s)
        wait = layer.last_keyframe_request + interval - now
        if wait <= 0:
            self._send(layer)
        elif layer.pending_request is None:
            layer.pending_request = loop.call_later(wait, self._send, layer)

    def request_if_unanswered(self, layer: Layer) -> None:
        """Ask again when no request is pending and the last is KEYFRAME_RETRY_S old."""
        if layer.pending_request is not None:
            return
        if asyncio.get_running_loop().time() - layer.last_keyframe_request >= KEYFRAME_RETRY_S:
            self.request(layer)

    def close(self) -> None:
        """The track ended: a deferred request still pending sends nothing."""
        self._closed = True

    def _send(self, layer: Layer) -> None:
        layer.pending_request = None
        if self._closed or layer.ssrc is None:
            return
        layer.last_keyframe_request = asyncio.get_running_loop().time()
        if self._counters is not None:
            self._counters.keyframe_requests += 1
        self._send_upstream(layer.ssrc)
