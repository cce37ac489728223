"""The weak-link benchmark's arithmetic: what its subscriber reports and how runs are read.

The sockets and namespaces are exercised in tests/functional/test_link_emulation.py.
"""

from __future__ import annotations

import struct
from typing import Any

from benchmarks.loadgen.link_probe import LinkProbe, Stream, read_offer, vp8_keyframe_size
from benchmarks.weak_link_analysis import (
    freezes,
    layer_changes,
    metric_samples,
    paused_for_bandwidth,
    paused_intervals,
    quality_samples,
    sequence_loss,
    settle_time,
)
from sfu.rtp import build_header

OFFER = """v=0
m=audio 9 UDP/TLS/RTP/SAVPF 111
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
a=ssrc:1111 cname:x
m=video 9 UDP/TLS/RTP/SAVPF 96 97
a=mid:1
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=ssrc-group:FID 2222 3333
a=ssrc:2222 cname:x
a=ssrc:3333 cname:x
"""


def quality(layer: str | None, paused: bool = False, estimate: int = 300_000) -> dict[str, Any]:
    return {
        "type": "quality",
        "estimate_bps": estimate,
        "tracks": [
            {
                "track_id": "p1:2",
                "participant_id": "p1",
                "layer": layer,
                "spatial": 0,
                "temporal": 0,
                "width": 320,
                "height": 180,
                "paused": paused,
                "reason": "bandwidth" if paused else None,
                "bitrate_bps": 150_000,
            }
        ],
    }


OFFER_EVENT: dict[str, Any] = {
    "type": "subscriber_offer",
    "tracks": [
        {"mid": "0", "track_id": "p1:1", "kind": "audio"},
        {"mid": "1", "track_id": "p1:2", "kind": "video"},
    ],
}


def test_settle_is_the_last_change_that_then_held_long_enough() -> None:
    samples = [(2.0, "q"), (4.0, "q"), (6.0, "h"), (8.0, "h"), (10.0, "h"), (12.0, "h")]
    assert settle_time(samples, end=14.0, hold=5.0) == 6.0
    assert layer_changes(samples) == 1
    # a change 2 s before the end: not settled
    assert settle_time([*samples, (12.5, "q")], end=14.0, hold=5.0) is None
    # never changed: settled from the first report
    assert settle_time([(2.0, "f"), (4.0, "f")], end=20.0) == 2.0
    assert settle_time([], end=20.0) is None


def test_freezes_count_long_gaps_but_not_announced_pauses() -> None:
    frames = [i / 15 for i in range(30)]  # 2 s at 15 fps
    frames += [2.8 + i / 15 for i in range(30)]  # a 0.87 s gap, then 2 s more
    result = freezes(frames, end=4.8, gap_s=0.5)
    assert result.count == 1 and 0.8 < result.longest_s < 0.9
    # the same gap inside a pause the server announced is not a freeze
    paused = paused_intervals(
        [
            (1.9, {"type": "track_paused", "paused": True}),
            (2.9, {"type": "track_paused", "paused": False}),
        ],
        end=5.0,
    )
    assert freezes(frames, end=4.8, gap_s=0.5, paused=paused).count == 0
    # video that stops 2 s before the end froze
    assert freezes(frames, end=6.8, gap_s=0.5).count == 2
    assert freezes([], end=10.0).count == 0


def test_sequence_loss_counts_gaps_from_a_start_time() -> None:
    seqs = [(i * 0.02, s) for i, s in enumerate(s for s in range(100) if s % 20 != 7)]
    assert sequence_loss(seqs) == 0.05
    assert sequence_loss(seqs, start=100.0) is None


def test_quality_events_give_layers_pauses_and_the_bandwidth_reason() -> None:
    events = [
        (0.5, OFFER_EVENT),
        (2.0, quality("q")),
        (4.0, quality("h")),
        (6.0, quality("h", paused=True)),
        (8.0, quality("q")),
    ]
    samples = quality_samples(events)
    assert [e["layer"] for _t, e in samples] == ["q", "h", "h", "q"]
    assert samples[0][1]["estimate_bps"] == 300_000
    intervals = paused_intervals(events, end=10.0)
    assert [(i.start, i.end) for i in intervals] == [(6.0, 8.0)]
    assert paused_for_bandwidth(events)
    assert paused_for_bandwidth(events[:3]) is False
    assert paused_for_bandwidth(events[:1]) is None  # the server never said


def test_offer_reading_finds_ssrcs_rtx_and_abs_send_time() -> None:
    info = read_offer(OFFER)
    assert (info.audio_ssrc, info.video_ssrc, info.rtx_ssrc) == (1111, 2222, 3333)
    assert info.abs_send_time_ext == 3
    assert info.mids == {"0": "audio", "1": "video"}


def test_receiver_report_block_follows_rfc3550_across_a_wrap() -> None:
    stream = Stream(ssrc=5, clock_rate=90000)
    seqs = [65530 + i for i in range(20) if i not in (8, 9)]  # two lost around the wrap
    for i, seq in enumerate(seqs):
        stream.add(seq & 0xFFFF, 3000 * i, i / 30)
    block = stream.report(lsr=0, dlsr=0)
    assert block.packets_lost == 2
    assert block.fraction_lost == (2 << 8) // 20
    assert block.highest_seq == 65530 + 19  # extended: one wrap
    assert stream.report(0, 0).fraction_lost == 0  # nothing new since the last report


def test_vp8_keyframe_size_reads_the_frame_header() -> None:
    frame_tag = bytes([0x10, 0x02, 0x00])  # P bit clear: keyframe
    header = b"\x9d\x01\x2a" + struct.pack("<HH", 640, 360)
    assert vp8_keyframe_size(bytes([0x10]) + frame_tag + header + b"\x00" * 20) == (640, 360)
    interframe = bytes([0x10, 0x11, 0x02, 0x00])
    assert vp8_keyframe_size(interframe + header) is None


def test_probe_counts_frames_audio_and_asks_for_repair() -> None:
    probe = LinkProbe(t0=0.0)
    probe.learn_offer(OFFER)
    for seq in range(10):
        probe(build_header(False, 111, seq, 960 * seq, 1111, b"") + b"\x00" * 40)
    for seq in (100, 101, 104, 105):  # 102, 103 lost; frames end at 101 and 105
        marker = seq in (101, 105)
        probe(build_header(marker, 96, seq, 3000 * (seq // 102), 2222, b"") + b"\x00" * 100)
    summary = probe.summary()
    assert [s for _t, s in summary["audio_seq"]] == list(range(10))
    assert len(summary["frames"]) == 2
    assert summary["video"] == {"expected": 6, "received": 4}
    now = 1e9  # far in the future: every gap is overdue
    probe._missing = {k: [now - 0.2, 0.0, 0] for k in probe._missing}
    probe._send_nacks(now)
    assert (probe.nacks_sent, probe.nacked_packets) == (1, 2)
    probe._send_nacks(now + 2.0)  # not repaired within a second: a keyframe instead
    assert probe.plis_sent == 1 and not probe._missing


def test_metrics_give_the_servers_view_of_one_subscriber() -> None:
    metrics = [
        (
            1.0,
            {
                'digiclinic_consumer_layer{participant="s1",track="p1:2",paused_reason=""}': 1.0,
                'digiclinic_consumer_layer{participant="s2",track="p1:2",paused_reason=""}': 2.0,
                'digiclinic_subscriber_estimate_bps{participant="s1"}': 400000.0,
                "digiclinic_rtp_bytes_out_total": 1000.0,
            },
        ),
        (
            2.0,
            {
                'digiclinic_consumer_layer{participant="s1",track="p1:2",'
                'paused_reason="bandwidth"}': -1.0,
                'digiclinic_subscriber_estimate_bps{participant="s1"}': 90000.0,
            },
        ),
    ]
    layers, estimates = metric_samples(metrics, "s1")
    assert layers == [(1.0, "h"), (2.0, "paused")]
    assert estimates == [(1.0, 400000.0), (2.0, 90000.0)]
