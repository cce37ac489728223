"""Bandwidth estimation: aiortc's (undocumented) abs-send-time REMB estimator.

Part of sfu/aiortc_hooks (every use of aiortc's private API, pinned to aiortc 1.16.0).
"""

from __future__ import annotations

from aiortc.rate import RemoteBitrateEstimator


class UplinkEstimator:
    """Receive-side bandwidth estimate of a publisher's uplink (for REMB).

    Wraps ``aiortc.rate.RemoteBitrateEstimator`` (inter-arrival delay
    gradient + AIMD, as in libwebrtc); it needs abs-send-time on packets.
    """

    __slots__ = ("_estimator", "bitrate")

    def __init__(self) -> None:
        self._estimator = RemoteBitrateEstimator()
        self.bitrate = 0

    def add(self, arrival_ms: int, abs_send_time: int, size: int, ssrc: int) -> bool:
        """Feed one packet; True when the estimate changed."""
        result = self._estimator.add(arrival_ms, abs_send_time, size, ssrc)
        if result is None:
            return False
        self.bitrate = int(result[0])
        return True
