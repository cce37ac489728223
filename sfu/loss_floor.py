"""LossFloor: a subscriber link's own random loss, and the loss bars it raises.

A radio or satellite link loses a few percent at random whatever is sent,
and NACK/RTX repairs it. Its *floor* is the median loss of the last
``loss_floor_reports`` receiver reports outside probes (an overload's, over
``congestion_loss``, left out), at most ``high_loss``. The bars for "clean"
and for "loss that may be congestion" rise by ``loss_floor_margin`` times
the floor (reports are noisy); sfu/bandwidth.py judges loss against them.
"""

from __future__ import annotations

import statistics
from collections import deque

from sfu.tuning import TUNING


class LossFloor:
    """The loss of the latest reports outside probes, and the bars it sets."""

    __slots__ = ("_recent",)

    def __init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=TUNING.loss_floor_reports)

    def add(self, fraction: float) -> None:
        """One report's loss, outside probes (an overload's is not the link's own)."""
        if fraction <= TUNING.congestion_loss:
            self._recent.append(fraction)

    @property
    def floor(self) -> float:
        """The link's own random loss: the median of the last reports (0 with too few)."""
        if len(self._recent) < TUNING.loss_floor_min_reports:
            return 0.0
        return min(TUNING.high_loss, statistics.median(self._recent))

    @property
    def clean(self) -> float:
        """Loss below this is no complaint: probes pass, what was sent is carried."""
        return TUNING.clean_loss + TUNING.loss_floor_margin * self.floor

    @property
    def high(self) -> float:
        """Loss above this may be congestion."""
        return TUNING.high_loss + TUNING.loss_floor_margin * self.floor
