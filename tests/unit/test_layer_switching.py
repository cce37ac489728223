"""Unit tests for sfu/consumer.py: layer switching, temporal layers, pause, long runs.

See tests/unit/consumer_support.py for the rig (a real Producer and Consumer,
a simulated publisher); the tests check the output bytes, parsed back.
"""

from __future__ import annotations

import asyncio

import pytest

from sfu.consumer import ConsumerState
from sfu.vp8 import parse_descriptor
from tests.unit.consumer_support import (
    LAYER_SSRCS,
    OUT_PT,
    OUT_SSRC,
    assert_contiguous,
    assert_pictures_continue,
    desc_of,
    make_rig,
    picture_starts,
    state,
)

# --------------------------------------------------------------------------
# starting
# --------------------------------------------------------------------------


async def test_bind_asks_the_target_layer_for_a_keyframe() -> None:
    rig = make_rig()
    assert state(rig.consumer) is ConsumerState.WAITING_KEYFRAME
    assert rig.requests == [LAYER_SSRCS[0]]


async def test_starts_only_at_a_keyframe_of_the_target_layer() -> None:
    rig = make_rig()
    q, h, f = rig.layers
    q.picture(0)
    q.picture(2)
    h.picture(0, keyframe=True)
    f.picture(0, keyframe=True)
    assert rig.sink.rtp == []
    assert state(rig.consumer) is ConsumerState.WAITING_KEYFRAME
    key = q.picture(0, keyframe=True, packets=3)
    out = rig.sink.take()
    assert len(out) == 3
    assert state(rig.consumer) is ConsumerState.FORWARDING
    assert rig.consumer.current_layer == 0
    first = desc_of(out[0])
    assert first.keyframe
    # the first picture keeps the publisher's numbering
    assert first.picture_id == q.picture_id and first.tl0 == q.tl0
    assert [p.payload for p in out] == [p.payload for p in key]
    assert [p.marker for p in out] == [False, False, True]
    assert_contiguous(out)


async def test_first_packets_are_not_numbered_by_the_layer() -> None:
    rig = make_rig()
    rig.layers[0].picture(0, keyframe=True)
    (out,) = rig.sink.take()
    assert out.ssrc == OUT_SSRC and out.payload_type == OUT_PT
    assert out.seq < 0x8000  # below 2^15: SRTP ROC safety


# --------------------------------------------------------------------------
# switching spatial layers
# --------------------------------------------------------------------------


async def test_switch_up_at_a_keyframe_of_the_new_layer() -> None:
    rig = make_rig()
    q, h, _ = rig.layers
    q.picture(0, keyframe=True, packets=2)
    for _ in range(3):
        q.picture(0, packets=2)
    rig.requests.clear()
    rig.consumer.set_target(1, 3)
    assert rig.requests == [LAYER_SSRCS[1]]
    # until layer 1 has a keyframe, layer 0 goes on and layer 1 is not sent
    h.picture(0, packets=2)
    q.picture(0, packets=2)
    assert rig.consumer.current_layer == 0
    h.picture(0, keyframe=True, packets=3)
    assert rig.consumer.current_layer == 1
    assert rig.consumer.layer_switches == 1
    q.picture(0, packets=2)  # the old layer is no longer sent
    for _ in range(3):
        h.picture(0, packets=2)
    out = rig.sink.take()
    assert len(out) == 2 * 5 + 3 + 2 * 3
    assert_contiguous(out)
    assert_pictures_continue(out)
    layers_out = [p.payload[-2] for p in out]  # the filler names the layer
    assert layers_out == [0] * 10 + [1] * 9
    keyframes = [d.keyframe for d in picture_starts(out)]
    assert keyframes == [True, False, False, False, False, True, False, False, False]


async def test_switch_down_and_up_again_keeps_everything_continuous() -> None:
    rig = make_rig()
    q, h, f = rig.layers
    f.picture(0, keyframe=True)
    rig.consumer.set_target(2, 3)
    f.picture(0, keyframe=True, packets=2)
    for tid in f.pattern(6):
        f.picture(tid, packets=2)
    rig.consumer.set_target(0, 3)
    for tid in f.pattern(3, start=7):
        f.picture(tid)
    q.picture(0, keyframe=True)
    for tid in q.pattern(5):
        q.picture(tid)
    rig.consumer.set_target(1, 3)
    h.picture(0, keyframe=True, packets=4)
    for tid in h.pattern(5):
        h.picture(tid, packets=2)
    out = rig.sink.take()
    assert rig.consumer.layer_switches == 2
    assert_contiguous(out)
    assert_pictures_continue(out)
    assert [p.payload[-2] for p in out].count(0) == 6


async def test_timestamps_keep_moving_forward_across_a_switch() -> None:
    rig = make_rig()
    q, h, _ = rig.layers
    q.picture(0, keyframe=True)
    q.picture(0)
    rig.consumer.set_target(1, 3)
    h.picture(0, keyframe=True)
    h.picture(0)
    out = rig.sink.take()
    stamps = [p.timestamp for p in out]
    assert (stamps[1] - stamps[0]) & 0xFFFFFFFF == 3000
    assert 0 < (stamps[2] - stamps[1]) & 0xFFFFFFFF < 90_000  # a real, short gap
    assert (stamps[3] - stamps[2]) & 0xFFFFFFFF == 3000


async def test_keyframe_of_another_layer_than_the_target_does_not_switch() -> None:
    rig = make_rig()
    q, h, f = rig.layers
    q.picture(0, keyframe=True)
    rig.consumer.set_target(1, 3)
    f.picture(0, keyframe=True)
    assert rig.consumer.current_layer == 0
    rig.consumer.set_target(0, 3)  # changed its mind before layer 1 had a keyframe
    h.picture(0, keyframe=True)
    assert rig.consumer.current_layer == 0
    assert rig.consumer.layer_switches == 0


async def test_a_keyframe_request_goes_to_the_layer_being_forwarded_or_awaited() -> None:
    rig = make_rig()
    rig.requests.clear()
    rig.consumer.set_target(2, 3)  # waiting: ask the new target at once
    assert rig.requests == [LAYER_SSRCS[2]]
    rig.consumer.handle_keyframe_request()
    assert rig.requests[-1] == LAYER_SSRCS[2]
    rig.layers[2].picture(0, keyframe=True)
    rig.consumer.handle_keyframe_request()
    assert rig.requests[-1] == LAYER_SSRCS[2]
    rig.consumer.set_target(0, 3)
    assert rig.requests[-1] == LAYER_SSRCS[0]
    rig.consumer.set_target(0, 1)  # same layer: no new request
    assert len(rig.requests) == 4


@pytest.mark.parametrize("forwarding", [True, False], ids=["switching", "starting"])
async def test_a_keyframe_request_left_unanswered_is_sent_again(
    forwarding: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publisher dropped the request (Chrome did, for a layer whose encoder was not
    running yet): the target layer's other packets keep arriving, and after
    KEYFRAME_RETRY_S the consumer asks again, once per retry interval."""
    monkeypatch.setattr("sfu.keyframe_requests.KEYFRAME_RETRY_S", 0.05)
    rig = make_rig()
    q, h, _ = rig.layers
    if forwarding:  # forwarding h; the allocation moves the target down to q
        rig.consumer.set_target(1, 3)
        h.picture(0, keyframe=True)
        assert rig.consumer.current_layer == 1
        rig.consumer.set_target(0, 3)
    rig.requests.clear()
    q.picture(0)  # the last request is recent: nothing more yet
    assert rig.requests == []
    await asyncio.sleep(0.06)
    q.picture(2)
    q.picture(1)  # one request per interval, not one per packet
    assert rig.requests == [LAYER_SSRCS[0]]
    h.picture(2)  # packets of another layer than the target ask nothing
    await asyncio.sleep(0.06)
    h.picture(0)
    assert rig.requests == [LAYER_SSRCS[0]]
    q.picture(0, keyframe=True)  # answered: forwarding q
    assert rig.consumer.current_layer == 0
    await asyncio.sleep(0.06)
    q.picture(2)
    assert rig.requests == [LAYER_SSRCS[0]]


# --------------------------------------------------------------------------
# temporal layers
# --------------------------------------------------------------------------


@pytest.mark.parametrize("temporal", [0, 1])
async def test_dropping_temporal_layers_closes_the_holes(temporal: int) -> None:
    rig = make_rig()
    q = rig.layers[0]
    rig.consumer.set_target(0, temporal)
    q.picture(0, keyframe=True, packets=2)
    tids = q.pattern(16)
    for tid in tids:
        q.picture(tid, packets=2)
    out = rig.sink.take()
    starts = picture_starts(out)
    assert [d.tid for d in starts] == [0] + [t for t in tids if t <= temporal]
    assert len(out) == 2 * len(starts)
    assert_contiguous(out)
    assert_pictures_continue(out)


async def test_lowering_temporal_applies_at_the_next_picture() -> None:
    rig = make_rig()
    q = rig.layers[0]
    q.picture(0, keyframe=True)
    for tid in q.pattern(4):
        q.picture(tid, packets=2)
    rig.consumer.set_target(0, 0)
    for tid in q.pattern(8, start=5):
        q.picture(tid, packets=2)
    out = rig.sink.take()
    assert [d.tid for d in picture_starts(out)] == [0, 2, 1, 2, 0, 0, 0]
    assert_contiguous(out)
    assert_pictures_continue(out)


async def test_raising_temporal_waits_for_a_tl0_picture() -> None:
    rig = make_rig()
    q = rig.layers[0]
    rig.consumer.set_target(0, 0)
    q.picture(0, keyframe=True)
    q.picture(2)
    rig.consumer.set_target(0, 2)
    q.picture(1)  # no sync: depends on a picture that was not sent
    q.picture(2)
    assert rig.consumer.temporal == 0
    q.picture(0)
    assert rig.consumer.temporal == 2
    q.picture(2)
    q.picture(1)
    out = rig.sink.take()
    assert [d.tid for d in picture_starts(out)] == [0, 0, 2, 1]
    assert_contiguous(out)
    assert_pictures_continue(out)


async def test_raising_temporal_at_a_layer_sync_picture() -> None:
    rig = make_rig()
    q = rig.layers[0]
    rig.consumer.set_target(0, 0)
    q.picture(0, keyframe=True)
    q.picture(2)
    rig.consumer.set_target(0, 1)
    q.picture(1, sync=True, packets=2)  # depends on TL0 only: can be sent
    q.picture(2)
    q.picture(0)
    q.picture(2)
    q.picture(1)
    out = rig.sink.take()
    assert rig.consumer.temporal == 1
    assert [d.tid for d in picture_starts(out)] == [0, 1, 0, 1]
    assert_contiguous(out)
    assert_pictures_continue(out)


async def test_temporal_drops_then_a_switch_continue_the_numbering() -> None:
    rig = make_rig()
    q, h, _ = rig.layers
    rig.consumer.set_target(0, 0)
    q.picture(0, keyframe=True)
    for tid in q.pattern(7):
        q.picture(tid, packets=2)  # ends with a dropped TID 2 picture
    rig.consumer.set_target(1, 1)
    h.picture(0, keyframe=True, packets=2)
    for tid in h.pattern(8):
        h.picture(tid)
    out = rig.sink.take()
    assert [d.tid for d in picture_starts(out)] == [0, 0, 0, 1, 0, 1, 0]  # two from q, five from h
    assert_contiguous(out)
    assert_pictures_continue(out)


async def test_reordered_packet_after_a_dropped_picture_gets_its_number() -> None:
    rig = make_rig()
    q = rig.layers[0]
    rig.consumer.set_target(0, 1)
    q.picture(0, keyframe=True)
    late = q.picture(0, packets=3, deliver=False)
    q.deliver(late[0])
    q.deliver(late[2])  # late[1] is delayed
    q.picture(2, packets=2)  # dropped
    q.deliver(late[1])
    q.picture(1)
    key, first, third, second, last = rig.sink.take()
    assert [p.seq for p in (first, second, third, last)] == [
        (key.seq + i) & 0xFFFF for i in (1, 2, 3, 4)
    ]
    assert second.payload == late[1].payload
    assert_pictures_continue([key, first, second, third, last])


# --------------------------------------------------------------------------
# pause and resume
# --------------------------------------------------------------------------


async def test_resume_restarts_at_a_keyframe_and_continues_the_numbering() -> None:
    rig = make_rig()
    q = rig.layers[0]
    q.picture(0, keyframe=True)
    q.picture(0)
    rig.consumer.pause("bandwidth")
    q.picture(0)
    assert state(rig.consumer) is ConsumerState.PAUSED
    rig.requests.clear()
    rig.consumer.resume("bandwidth")
    assert state(rig.consumer) is ConsumerState.WAITING_KEYFRAME
    assert rig.requests == [LAYER_SSRCS[0]]
    q.picture(0)
    q.picture(0, keyframe=True)
    q.picture(0)
    out = rig.sink.take()
    assert len(out) == 4
    assert_contiguous(out)
    assert_pictures_continue(out)


# --------------------------------------------------------------------------
# long runs
# --------------------------------------------------------------------------


async def test_tl0picidx_stays_continuous_long_after_a_switch() -> None:
    rig = make_rig()
    q, h, _ = rig.layers
    q.picture(0, keyframe=True)
    rig.consumer.set_target(1, 3)
    h.picture(0, keyframe=True)
    for _ in range(200):
        h.picture(0)
    out = rig.sink.take()
    assert len(out) == 202
    assert_pictures_continue(out)


async def test_forwards_more_than_32768_packets_without_a_drop() -> None:
    rig = make_rig(nack=False)
    q = rig.layers[0]
    q.picture(0, keyframe=True)
    rig.sink.take()
    # the rest of that picture, packet after packet (straight to the Consumer: fast)
    descriptor = bytes([0x80, 0xE0, 0x80 | q.picture_id >> 8, q.picture_id & 0xFF, q.tl0, 0])
    packet = q.packet(descriptor + b"rest", marker=False)
    packet.vp8 = parse_descriptor(packet.payload)
    for i in range(0x8000 + 10):
        packet.seq = (q.seq + i) & 0xFFFF
        rig.consumer.forward(packet, b"\x00\x00\x00")
    assert len(rig.sink.rtp) == 0x8000 + 10
