"""Unit tests for sfu/keyframe_requests.py: one keyframe request per layer per interval."""

from __future__ import annotations

import asyncio

import pytest

from sfu.keyframe_requests import KEYFRAME_INTERVAL_RTTS, KeyframeRequests
from sfu.layers import Layer
from sfu.media import TrafficCounters

INTERVAL = 0.05


def bound_layer(ssrc: int = 1000) -> Layer:
    layer = Layer(0, None, 90000)
    layer.bind(ssrc)
    return layer


async def test_the_first_request_goes_at_once_and_is_counted() -> None:
    sent: list[int] = []
    counters = TrafficCounters()
    requests = KeyframeRequests(sent.append, INTERVAL, counters)
    requests.request(bound_layer())
    assert sent == [1000]
    assert counters.keyframe_requests == 1


async def test_requests_inside_the_interval_become_one_at_its_end() -> None:
    sent: list[int] = []
    requests = KeyframeRequests(sent.append, INTERVAL)
    layer = bound_layer()
    requests.request(layer)
    requests.request(layer)
    requests.request(layer)
    assert sent == [1000]
    assert layer.pending_request is not None
    await asyncio.sleep(INTERVAL * 2)
    assert sent == [1000, 1000]
    assert layer.pending_request is None


async def test_each_layer_has_its_own_interval() -> None:
    sent: list[int] = []
    requests = KeyframeRequests(sent.append, INTERVAL)
    requests.request(bound_layer(1000))
    requests.request(bound_layer(2000))
    assert sent == [1000, 2000]


async def test_a_long_path_stretches_the_interval() -> None:
    requests = KeyframeRequests(lambda _: None, INTERVAL)
    layer = bound_layer()
    assert layer.stream is not None
    layer.stream.repair_ms = 400.0
    requests.request(layer)
    requests.request(layer)
    handle = layer.pending_request
    assert handle is not None
    assert handle.when() - layer.last_keyframe_request == pytest.approx(
        KEYFRAME_INTERVAL_RTTS * 0.4, abs=0.01
    )
    layer.cancel_request()


async def test_nothing_is_sent_once_closed() -> None:
    sent: list[int] = []
    requests = KeyframeRequests(sent.append, INTERVAL)
    layer = bound_layer()
    requests.request(layer)
    requests.request(layer)  # deferred
    requests.close()
    await asyncio.sleep(INTERVAL * 2)
    assert sent == [1000]
