"""What one video track looks like to its subscriber, for the "quality" event.

``DownlinkController`` (sfu/downlink.py) sends the event; this module only
describes a Consumer: the layer it forwards, its size, whether and why it is
paused. The fields are documented in docs/protocol.md ("quality").
"""

from __future__ import annotations

from typing import Any

from sfu.consumer import Consumer
from sfu.layers import Layer


def pause_reason(consumer: Consumer) -> str | None:
    """Why a Consumer is paused: "bandwidth" before any other reason; None if it is not."""
    reasons = consumer.pause_reasons
    if "bandwidth" in reasons:
        return "bandwidth"
    return next(iter(sorted(reasons)), None)


def track_quality(consumer: Consumer, bitrate_bps: float) -> dict[str, Any]:
    """One entry of the event's ``tracks``; ``bitrate_bps``: what it is sent now."""
    layer: Layer | None = None
    if consumer.current_layer >= 0:
        layer = consumer.producer.layers[consumer.current_layer]
    return {
        "track_id": consumer.producer.id,
        "participant_id": consumer.producer.participant_id,
        "layer": layer.rid if layer else None,
        "spatial": consumer.current_layer if layer else None,
        "temporal": consumer.temporal if layer else None,
        "width": layer.width if layer else 0,
        "height": layer.height if layer else 0,
        "paused": bool(consumer.pause_reasons),
        "reason": pause_reason(consumer),
        "bitrate_bps": int(bitrate_bps),
        # the publisher's own uplink is the weak side (sfu/uplink_health.py)
        "publisher_weak": consumer.producer.uplink_weak,
    }
