"""A stock aiortc video receiver asks again for packets that stay missing.

aiortc asks once per new gap; sfu/aiortc_hooks.retry_nacks repeats the
unanswered NACKs as a browser does (after twice the repair time, at least
100 ms, at most ten times).
"""

from __future__ import annotations

import asyncio
import inspect

from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from sfu.aiortc_hooks import NACK_MAX_TRIES, NACK_RETRY_MIN_WAIT, _NackRetrier


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Sent(list[tuple[int, list[int]]]):
    async def __call__(self, ssrc: int, lost: list[int]) -> None:
        self.append((ssrc, list(lost)))


def retrier(missing: set[int]) -> tuple[_NackRetrier, Sent, Clock]:
    sent, clock = Sent(), Clock()
    return _NackRetrier(missing, sent, clock), sent, clock


def test_aiortc_receiver_nacks_through_the_instance_and_keeps_a_missing_set() -> None:
    source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__nack_generator.add(packet)" in source
    assert "await self._send_rtcp_nack(" in source
    assert "sorted(self.__nack_generator.missing)" in source
    assert "self.__nack_generator = NackGenerator()" in inspect.getsource(RTCRtpReceiver.__init__)
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_nack).parameters) == [
        "self",
        "media_ssrc",
        "lost",
    ]
    assert "await self.__receiver.stop()" in inspect.getsource(RTCRtpTransceiver.stop)


def test_only_what_is_still_missing_is_asked_for_again_after_the_wait() -> None:
    missing = {10, 11}
    nacks, sent, clock = retrier(missing)
    asyncio.run(nacks.send_nack(7, [10, 11]))
    assert sent == [(7, [10, 11])]
    clock.now += NACK_RETRY_MIN_WAIT / 2
    assert nacks.due(clock.now) == []  # the first ask may still be answered
    missing.discard(10)
    clock.now += NACK_RETRY_MIN_WAIT
    assert nacks.due(clock.now) == [11]


def test_the_wait_follows_how_long_repairs_take() -> None:
    missing: set[int] = set()
    nacks, _sent, clock = retrier(missing)
    for seq in range(20):  # each repaired 400 ms after its NACK: a long round trip
        missing.add(seq)
        asyncio.run(nacks.send_nack(1, [seq]))
        clock.now += 0.4
        missing.discard(seq)
        assert nacks.due(clock.now) == []
    missing.add(99)
    asyncio.run(nacks.send_nack(1, [99]))
    clock.now += 0.5
    assert nacks.due(clock.now) == []  # asking again now would only duplicate
    clock.now += 0.4
    assert nacks.due(clock.now) == [99]


def test_at_most_ten_asks_and_the_loop_stops_with_the_receiver() -> None:
    async def run() -> Sent:
        missing = {5}
        sent = Sent()
        nacks = _NackRetrier(missing, sent)
        await nacks.send_nack(3, [5])
        nacks.start()
        await asyncio.sleep(NACK_RETRY_MIN_WAIT * (NACK_MAX_TRIES + 4))
        await nacks.stop()
        count = len(sent)
        await asyncio.sleep(NACK_RETRY_MIN_WAIT * 2)
        assert len(sent) == count  # stopped
        return sent

    sent = asyncio.run(run())
    assert sent == [(3, [5])] * NACK_MAX_TRIES


def test_a_repaired_packet_is_not_asked_for_again() -> None:
    async def run() -> Sent:
        missing = {6}
        sent = Sent()
        nacks = _NackRetrier(missing, sent)
        await nacks.send_nack(3, [6])
        nacks.start()
        missing.discard(6)
        await asyncio.sleep(NACK_RETRY_MIN_WAIT * 3)
        await nacks.stop()
        return sent

    assert asyncio.run(run()) == [(3, [6])]
