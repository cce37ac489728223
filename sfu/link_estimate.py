"""The one face a subscriber link's estimator shows the DownlinkController.

Two implementations, chosen per subscriber by what its peer sends back:

- ``sfu/twcc_estimator.TwccEstimator``: transport-wide feedback on every
  packet (browsers), a send-side GCC estimate (sfu/gcc.py);
- ``sfu/bandwidth.DownlinkEstimator``: REMB, receiver reports and the RTX
  round trip (peers without transport-cc, e.g. aiortc).

Feedback goes in through the ``on_*`` methods each understands (the other's
are no-ops); the allocation reads ``estimate``, ``may_pause`` and the
congestion history; probing is asked for with ``padding_target``.
"""

from __future__ import annotations

from typing import Protocol

from sfu.probe_round import ProbeState


class LinkEstimator(Protocol):
    decreases: int  # congestion signals seen
    last_decrease: float  # when the latest one was seen (monotonic s)

    @property
    def probe_state(self) -> ProbeState: ...

    @property
    def estimate(self) -> float: ...  # bit/s, in RTP bits

    @property
    def loss(self) -> float: ...

    @property
    def queue_delay(self) -> float: ...

    @property
    def looks_clean(self) -> bool: ...

    @property
    def may_pause(self) -> bool: ...  # a real congestion signal: video may be paused

    @property
    def probing(self) -> bool: ...

    def padding_now(self, now: float) -> bool: ...

    def new_success(self) -> bool: ...  # True once after each probe that succeeded

    def padding_target(self, wanted: float, now: float, sent: float, paused: bool) -> float: ...

    def carried(self, bitrate: float) -> None: ...

    def cap(self, bitrate: float, now: float, why: str) -> None: ...

    # REMB / receiver-report feedback (no-ops for the transport-feedback estimator)
    def on_remb(
        self, key: tuple[str, ...], bitrate: int, sent_video: float, sent_audio: float, now: float
    ) -> None: ...

    def on_loss(
        self, fraction: float, sent: float, now: float, covers_probe: bool | None = None
    ) -> None: ...

    def on_queue_delay(
        self, delay: float, sent_at: float, now: float, jitter: float = 0.0, sent: float = 0.0
    ) -> None: ...
