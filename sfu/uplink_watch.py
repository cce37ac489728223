"""UplinkWatch: samples what arrives of a camera for its publisher's uplink verdict.

Twice a second the Producer of a camera hands over its layers: the watch
works out the loss (after repairs) and frame rate since the last look and
feeds them to the track's UplinkHealth (sfu/uplink_health.py), which keeps
the weak/well state and its recovery trials.
"""

from __future__ import annotations

from collections.abc import Sequence

from sfu.layers import Layer
from sfu.uplink_health import DownlinkHint, UplinkHealth, UplinkState


class UplinkWatch:
    """Loss and frame rate of a camera since the last look, judged by its UplinkHealth."""

    __slots__ = ("_counts", "health")

    def __init__(self, health: UplinkHealth | None = None) -> None:
        self.health = health or UplinkHealth()
        self._counts = (0, 0)  # packets expected and received at the last check

    @property
    def weak(self) -> bool:
        return self.health.weak

    @property
    def video_allowed(self) -> bool:
        return self.health.video_allowed

    @property
    def state(self) -> UplinkState:
        return self.health.state

    def check(
        self, layers: Sequence[Layer], unjudged: bool, now: float, hint: DownlinkHint | None = None
    ) -> bool:
        """Fold in what arrived since the last check; True when ``weak`` changed.

        ``unjudged``: nothing to judge now (the camera is muted, or nothing of
        the publisher arrives at all): never weak.
        """
        expected = sum(layer.stream.expected for layer in layers if layer.stream)
        received = sum(layer.stream.packets for layer in layers if layer.stream)
        before_expected, before_received = self._counts
        self._counts = (expected, received)
        delta = expected - before_expected
        loss = max(0, delta - (received - before_received)) / delta if delta > 0 else 0.0
        fps = max(layer.rates.fps for layer in layers)
        return self.health.update(fps, loss, unjudged, now, hint)
