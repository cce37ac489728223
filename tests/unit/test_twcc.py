"""Unit tests for sfu/twcc.py: transport-cc feedback wire format, recorder, send history."""

from __future__ import annotations

import itertools
import random
import struct

import pytest

from sfu.twcc import (
    EXT_TRANSPORT_CC,
    RTPFB_TRANSPORT_CC,
    PacketResult,
    SentPacketHistory,
    TransportFeedback,
    TransportSequence,
    TwccError,
    TwccRecorder,
    build_transport_feedback,
    parse_transport_feedback,
    read_seq,
    write_seq,
)
from tests.unit.twcc_support import MEDIA, SENDER, T0, unpack

REF = 64_000 * 20  # 1.28 s


def chunks_of(packet: bytes) -> list[int]:
    count = struct.unpack_from("!H", packet, 14)[0]
    out: list[int] = []
    covered = 0
    pos = 20
    while covered < count:
        chunk = struct.unpack_from("!H", packet, pos)[0]
        out.append(chunk)
        pos += 2
        if not chunk & 0x8000:
            covered += chunk & 0x1FFF
        else:
            covered += 7 if chunk & 0x4000 else 14
    return out


def round_trip(
    times: list[int | None], base: int = 1000, ref: int = REF, fb_count: int = 3
) -> TransportFeedback:
    packet = build_transport_feedback(SENDER, MEDIA, base, fb_count, ref, times)
    fb = unpack(packet)
    assert (fb.sender_ssrc, fb.media_ssrc) == (SENDER, MEDIA)
    assert fb.base_seq == base & 0xFFFF
    assert fb.feedback_count == fb_count & 0xFF
    assert fb.reference_time_us == ref
    assert [seq for seq, _ in fb.packets] == [(base + i) & 0xFFFF for i in range(len(times))]
    return fb


def test_constants() -> None:
    assert EXT_TRANSPORT_CC == (
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
    )
    assert RTPFB_TRANSPORT_CC == 15


# --------------------------------------------------------------------------
# hand-computed vectors (draft section 3.1.3 example 1 and 3.1.4 example 1)
# --------------------------------------------------------------------------

# base 100, 235 statuses, reference time 2 x 64 ms, feedback count 7;
# a run of 221 "not received" (0x00DD), then the one-bit vector 0x9F1C:
# 1 not received, 5 received, 3 not received, 3 received, 2 not received.
DRAFT_VECTOR = bytes.fromhex(
    "8fcd0007"  # V=2, FMT=15, PT=205, length 7 words
    "01020304"
    "05060708"  # sender and media SSRC
    "006400eb"
    "00000207"  # base 100, 235 statuses; reference 2, fb count 7
    "00dd9f1c"  # the two chunks
    "0400ff01"
    "080810c8"  # eight small deltas: 4 0 255 1 8 8 16 200 (x 250 us)
)
DRAFT_RECEIVED = {
    322: 129_000,
    323: 129_000,
    324: 192_750,
    325: 193_000,
    326: 195_000,
    330: 197_000,
    331: 201_000,
    332: 251_000,
}


def test_parse_draft_vector() -> None:
    fb = unpack(DRAFT_VECTOR)
    assert (fb.sender_ssrc, fb.media_ssrc) == (SENDER, MEDIA)
    assert (fb.base_seq, fb.feedback_count, fb.reference_time_us) == (100, 7, 128_000)
    assert [seq for seq, _ in fb.packets] == list(range(100, 335))
    assert dict(fb.packets) == {seq: DRAFT_RECEIVED.get(seq) for seq in range(100, 335)}


def test_build_of_draft_statuses() -> None:
    # A greedy encoder (libwebrtc's too) extends the run over the vector's first
    # "not received": a run of 222 (0x00DE), then the last 13 statuses as the
    # one-bit vector 1|0|11111000111000 = 0xBE38; same size, same content.
    times = [DRAFT_RECEIVED.get(seq) for seq in range(100, 335)]
    packet = build_transport_feedback(SENDER, MEDIA, 100, 7, 128_000, times)
    assert packet == DRAFT_VECTOR[:20] + bytes.fromhex("00debe38") + DRAFT_VECTOR[24:]
    assert unpack(packet) == unpack(DRAFT_VECTOR)


def test_two_bit_vector_negative_delta_and_padding_by_hand() -> None:
    # symbols 0 1 2 1 -> 1|1|00 01 10 01 00 00 00 = 0xC640; deltas 1, -2 (0xFFFE), 4;
    # 26 bytes of content, so 2 bytes of padding with the P bit set
    expected = bytes.fromhex("afcd000601020304050607080005000400001401c64001fffe040002")
    times = [None, REF + 250, REF - 250, REF + 750]
    assert build_transport_feedback(SENDER, MEDIA, 5, 1, REF, times) == expected
    fb = unpack(expected)
    assert fb.packets == [(5, None), (6, REF + 250), (7, REF - 250), (8, REF + 750)]


# --------------------------------------------------------------------------
# build -> parse round trips
# --------------------------------------------------------------------------


def test_run_of_received_packets_is_one_run_length_chunk() -> None:
    times: list[int | None] = [REF + 1000 * i for i in range(100)]
    packet = build_transport_feedback(SENDER, MEDIA, 1000, 3, REF, times)
    assert chunks_of(packet) == [0x2000 | 100]
    assert len(packet) == 124  # 20 + 2 + 100 deltas, padded
    assert packet[0] & 0x20
    assert packet[-1] == 2
    assert round_trip(times).packets == [(1000 + i, t) for i, t in enumerate(times)]


def test_no_padding_when_aligned() -> None:
    packet = build_transport_feedback(SENDER, MEDIA, 1, 0, REF, [REF, REF + 250])
    assert len(packet) == 24
    assert not packet[0] & 0x20


def test_alternating_statuses_use_one_bit_vectors() -> None:
    times = [REF + 500 * i if i % 2 else None for i in range(28)]
    packet = build_transport_feedback(SENDER, MEDIA, 1000, 3, REF, times)
    assert chunks_of(packet) == [0x9555, 0x9555]  # 1|0|01010101010101
    assert [t for _, t in round_trip(times).packets] == times


def test_large_deltas_use_two_bit_vectors() -> None:
    times: list[int | None] = []
    t = REF
    for i in range(30):
        t += 70_000 if i % 3 == 0 else 1000  # 70 ms does not fit a small delta
        times.append(t if i % 5 else None)
    packet = build_transport_feedback(SENDER, MEDIA, 1000, 3, REF, times)
    chunks = chunks_of(packet)
    assert all(chunk & 0xC000 == 0xC000 for chunk in chunks[:-1])
    assert chunks[-1] == 0x2002  # the last two (small deltas) are a run
    assert [t for _, t in round_trip(times).packets] == times


def test_delta_limits() -> None:
    tick = 250
    cases = [255 * tick, 256 * tick, -tick, 32767 * tick, -32768 * tick, 0]
    for delta in cases:
        times: list[int | None] = [REF + 64_000, REF + 64_000 + delta]
        assert [t for _, t in round_trip(times).packets] == times
    for delta in (32768 * tick, -32769 * tick):
        with pytest.raises(ValueError):
            build_transport_feedback(SENDER, MEDIA, 0, 0, REF, [REF, REF + delta])
    with pytest.raises(ValueError):
        build_transport_feedback(SENDER, MEDIA, 0, 0, REF, [REF - 32769 * tick])


def test_reordered_arrivals_give_negative_deltas() -> None:
    times: list[int | None] = [REF + 9000, REF + 3000, REF + 6000, REF + 2000, REF + 12_000]
    assert [t for _, t in round_trip(times).packets] == times


def test_sequence_wraps_at_65536() -> None:
    times: list[int | None] = [REF + 1000 * i for i in range(12)]
    fb = round_trip(times, base=65530)
    assert [seq for seq, _ in fb.packets] == [
        65530,
        65531,
        65532,
        65533,
        65534,
        65535,
        0,
        1,
        2,
        3,
        4,
        5,
    ]


def test_rounding_does_not_accumulate() -> None:
    rng = random.Random(7)
    times: list[int | None] = []
    t = REF
    for _ in range(500):
        t += rng.randrange(0, 3000)
        times.append(t)
    fb = round_trip(times)
    for (_, got), want in zip(fb.packets, times, strict=True):
        assert got is not None and want is not None
        assert abs(got - want) <= 125


def test_runs_longer_than_8191() -> None:
    times: list[int | None] = [None] * 10_000 + [REF + 5000]
    packet = build_transport_feedback(SENDER, MEDIA, 65000, 0, REF, times)
    assert chunks_of(packet) == [8191, 1809, 0x2001]
    assert [t for _, t in round_trip(times, base=65000).packets] == times


def test_negative_and_wrapped_reference_time() -> None:
    times: list[int | None] = [-640_000 + 1000]
    assert round_trip(times, ref=-640_000).packets[0][1] == -639_000
    # reference times are sent modulo 2**24 x 64 ms (signed 24 bits)
    big = (1 << 23) * 64_000
    packet = build_transport_feedback(SENDER, MEDIA, 0, 0, big, [big + 250])
    assert unpack(packet).reference_time_us == -big


def test_random_round_trips() -> None:
    rng = random.Random(1)
    for _ in range(300):
        n = rng.randrange(1, 120)
        t = REF + rng.randrange(0, 200) * 250
        times: list[int | None] = []
        for _ in range(n):
            if rng.random() < 0.3:
                times.append(None)
                continue
            r = rng.random()
            step = rng.randrange(0, 40) if r < 0.7 else rng.randrange(-4000, 4000)
            t += step * 250
            times.append(t)
        if all(x is None for x in times):
            continue
        base = rng.randrange(65536)
        fb = round_trip(times, base=base, fb_count=rng.randrange(256))
        assert [x for _, x in fb.packets] == times


def test_builder_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        build_transport_feedback(SENDER, MEDIA, 0, 0, REF, [])
    with pytest.raises(ValueError):
        build_transport_feedback(SENDER, MEDIA, 0, 0, REF + 1, [REF + 1000])
    with pytest.raises(ValueError):
        build_transport_feedback(SENDER, MEDIA, 0, 0, REF, [None] * 65536)


# --------------------------------------------------------------------------
# parser robustness
# --------------------------------------------------------------------------


def fci(base: int, count: int, ref_ticks: int, fb_count: int, rest: bytes) -> bytes:
    return struct.pack("!HHI", base, count, ((ref_ticks & 0xFFFFFF) << 8) | fb_count) + rest


def test_chunks_longer_than_status_count_are_cut() -> None:
    fb = parse_transport_feedback(1, 2, fci(7, 3, 0, 0, struct.pack("!H", 0x2000 | 10) + b"\1\2\3"))
    assert fb.packets == [(7, 250), (8, 750), (9, 1500)]
    fb = parse_transport_feedback(1, 2, fci(7, 2, 0, 0, struct.pack("!H", 0xBFFF) + b"\4\4"))
    assert fb.packets == [(7, 1000), (8, 2000)]
    # a zero-length run is allowed and covers nothing
    fb = parse_transport_feedback(1, 2, fci(7, 1, 0, 0, struct.pack("!HH", 0, 0x2001) + b"\4"))
    assert fb.packets == [(7, 1000)]


def test_status_count_larger_than_chunks_is_an_error() -> None:
    with pytest.raises(TwccError):
        parse_transport_feedback(1, 2, fci(7, 20, 0, 0, struct.pack("!H", 5)))
    with pytest.raises(TwccError):
        parse_transport_feedback(1, 2, fci(7, 20, 0, 0, struct.pack("!H", 0x2005) + bytes(5)))


def test_parser_errors() -> None:
    with pytest.raises(TwccError):
        parse_transport_feedback(1, 2, b"\0\1\0\1\0\0\0")  # short header
    with pytest.raises(TwccError):
        parse_transport_feedback(1, 2, fci(0, 0, 0, 0, b""))  # no status
    with pytest.raises(TwccError):
        parse_transport_feedback(1, 2, fci(0, 2, 0, 0, struct.pack("!H", 0x2002) + b"\1"))
    with pytest.raises(TwccError):
        parse_transport_feedback(1, 2, fci(0, 1, 0, 0, struct.pack("!H", 0x4001) + b"\1"))
    with pytest.raises(TwccError):  # reserved symbol 11
        parse_transport_feedback(1, 2, fci(0, 1, 0, 0, struct.pack("!H", 0x6001) + b"\1\1"))


def test_parser_accepts_buffers() -> None:
    data = DRAFT_VECTOR[12:]
    assert parse_transport_feedback(1, 2, memoryview(data)) == parse_transport_feedback(1, 2, data)
    assert parse_transport_feedback(1, 2, bytearray(data)) == parse_transport_feedback(1, 2, data)


def test_trailing_zero_padding_without_p_bit_is_ignored() -> None:
    fb = parse_transport_feedback(1, 2, fci(0, 1, -1, 9, struct.pack("!H", 0x2001) + b"\4\0\0\0"))
    assert fb.reference_time_us == -64_000
    assert fb.feedback_count == 9
    assert fb.packets == [(0, -63_000)]


def test_parser_fuzz_raises_only_twcc_error() -> None:
    rng = random.Random(2024)
    valid = [
        DRAFT_VECTOR[12:],
        build_transport_feedback(1, 2, 65530, 1, REF, [REF + 70_000 * i for i in range(20)])[12:],
        build_transport_feedback(1, 2, 0, 1, REF, [None, REF, None, REF - 500, REF + 9])[12:],
    ]
    for i in range(20_000):
        if i % 2:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        else:
            sample = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                sample[rng.randrange(len(sample))] = rng.randrange(256)
            data = bytes(sample[: rng.randrange(len(sample) + 1)])
        try:
            fb = parse_transport_feedback(1, 2, data)
        except TwccError:
            continue
        assert 0 < len(fb.packets) <= 0xFFFF


# --------------------------------------------------------------------------
# send side
# --------------------------------------------------------------------------


def test_transport_sequence() -> None:
    assert all(TransportSequence().next_seq() < 1 << 15 for _ in range(200))
    seqs = TransportSequence(65534)
    assert [seqs.next_seq() for _ in range(4)] == [65534, 65535, 0, 1]
    packet = bytearray(8)
    write_seq(packet, 3, 0x1234)
    TransportSequence.write_seq(packet, 5, 0x10005)
    assert packet == bytearray(b"\0\0\0\x12\x34\x00\x05\0")
    assert read_seq(packet, 3) == 0x1234


def fb_of(packets: list[tuple[int, int | None]], ref: int = 0) -> TransportFeedback:
    return TransportFeedback(SENDER, MEDIA, packets[0][0], 0, ref, packets)


def test_history_resolves_across_wrap() -> None:
    hist = SentPacketHistory()
    seqs = [(65530 + i) & 0xFFFF for i in range(12)]
    for i, seq in enumerate(seqs):
        hist.on_sent(seq, 10.0 + i / 100, 1000 + i, i % 3)
    results = hist.resolve(fb_of([(s, 5_000_000 + 1000 * i) for i, s in enumerate(seqs)]), 11.0)
    assert len(results) == 12
    assert [r.seq & 0xFFFF for r in results] == seqs
    assert [r.seq - results[0].seq for r in results] == list(range(12))
    assert results[7] == PacketResult(results[0].seq + 7, 10.07, 1007, 1, 5.007)


def test_history_repeated_and_late_reports() -> None:
    hist = SentPacketHistory()
    for seq in range(100, 110):
        hist.on_sent(seq, seq / 1000, 500, 0)
    first = hist.resolve(fb_of([(100, 0), (101, None), (102, 2000)]), 1.0)
    assert [(r.seq & 0xFFFF, r.arrival_time) for r in first] == [
        (100, 0.0),
        (101, None),
        (102, 0.002),
    ]
    # repeated: received ones are not reported again, nor is a repeated loss;
    # a packet first reported lost and later received is reported as received
    again = hist.resolve(fb_of([(100, 500), (101, 1500), (102, None), (103, None)]), 1.1)
    assert [(r.seq & 0xFFFF, r.arrival_time) for r in again] == [(101, 0.0015), (103, None)]
    assert hist.resolve(fb_of([(101, 9000), (103, None)]), 1.2) == []
    assert hist.last_feedback_time == 1.2


def test_history_skips_unknown_and_too_old() -> None:
    hist = SentPacketHistory(16)
    for seq in range(40):
        hist.on_sent(seq, seq * 0.01, 100, 2)
    results = hist.resolve(fb_of([(s, 1000 * s) for s in range(20, 45)]), 1.0)
    assert [r.seq & 0xFFFF for r in results] == list(range(24, 40))
    assert SentPacketHistory().resolve(fb_of([(1, 0)]), 0.0) == []
    with pytest.raises(ValueError):
        SentPacketHistory(1000)


def test_history_unwraps_reference_time() -> None:
    hist = SentPacketHistory()
    for seq in range(4):
        hist.on_sent(seq, 0.0, 100, 0)
    top = ((1 << 23) - 1) * 64_000  # the largest reference time; the next one wraps
    a = hist.resolve(fb_of([(0, top), (1, top + 10_000)], ref=top), 1.0)
    b = hist.resolve(fb_of([(2, -top - 64_000 + 1000)], ref=-top - 64_000), 1.1)
    times = [r.arrival_time for r in a + b]
    assert times[0] is not None and times[2] is not None
    assert times[2] - times[0] == pytest.approx(0.065)


def test_end_to_end_recorder_to_history() -> None:
    seqs = TransportSequence(65500)
    hist = SentPacketHistory()
    rec = TwccRecorder()
    rng = random.Random(5)
    sent: dict[int, float] = {}
    arrival = T0
    for i in range(200):
        seq = seqs.next_seq()
        send_time = 100.0 + i * 0.002
        hist.on_sent(seq, send_time, 1200, 1)
        sent[seq] = send_time
        arrival += 2000 + rng.randrange(-500, 500)
        if i % 10 != 3:
            rec.on_packet(seq, arrival)
    results: list[PacketResult] = []
    for packet in rec.build_feedback(SENDER, MEDIA, arrival):
        results += hist.resolve(unpack(packet), 101.0)
    assert len(results) == 200
    assert sum(r.arrival_time is None for r in results) == 20
    assert [r.send_time for r in results] == [sent[r.seq & 0xFFFF] for r in results]
    received = [r.arrival_time for r in results if r.arrival_time is not None]
    spans = [b - a for a, b in itertools.pairwise(received)]
    assert all(0.0005 < s < 0.008 for s in spans)
