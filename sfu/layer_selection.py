"""LayerSelection: which simulcast and VP8 temporal layers one Consumer forwards.

The *target* (spatial layer and highest temporal layer) is what the
subscriber's bandwidth allocation wants (sfu/downlink.py); the *current*
spatial layer is the one being forwarded, which becomes the target's at its
next keyframe (sfu/consumer.py decides when). The temporal layer forwarded
follows its target down at once, and up only at a picture that depends on
TL0 alone. Beside them: how the subscriber shows the track (its rendered
size, pinned or not), the inputs of that allocation besides bandwidth.
"""

from __future__ import annotations

NO_LAYER = -1  # current_layer before the first keyframe is forwarded
ALL_TEMPORAL = 3  # the highest VP8 temporal layer id: all of them


class LayerSelection:
    """The target and current layers of one Consumer, and the subscriber's display hints."""

    __slots__ = (
        "current_layer",
        "layer_switches",
        "pinned",
        "render_size",
        "target_layer",
        "target_temporal",
        "temporal",
    )

    def __init__(self) -> None:
        # what the allocation wants, and what is being forwarded
        self.target_layer = 0
        self.target_temporal = ALL_TEMPORAL
        self.current_layer = NO_LAYER
        self.temporal = ALL_TEMPORAL
        self.layer_switches = 0  # changes of the current layer (not the first start)
        # what the subscriber said about how it shows this track
        self.render_size: tuple[int, int] | None = None
        self.pinned = False

    def retarget(self, layer: int, temporal: int) -> bool:
        """Aim at ``layer``, up to temporal layer ``temporal``; True when ``layer`` is new."""
        self.target_temporal = temporal
        if layer == self.target_layer:
            return False
        self.target_layer = layer
        return True

    def started(self, layer: int) -> None:
        """Forwarding (re)started at a keyframe of ``layer``, at the target temporal layer."""
        if self.current_layer >= 0 and layer != self.current_layer:
            self.layer_switches += 1
        self.current_layer = layer
        self.temporal = self.target_temporal

    def follow_temporal(self, tid: int, layer_sync: bool) -> None:
        """At the start of a picture of temporal layer ``tid``, while the target differs.

        Down at once; up only where the picture depends on TL0 alone.
        """
        if self.target_temporal < self.temporal or tid == 0 or layer_sync:
            self.temporal = self.target_temporal
