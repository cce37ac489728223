"""What a publisher's congestion control is told about its uplink.

One of two, by what the publisher offered. ``TwccFeedback``: with
transport-cc (browsers), the arrival time of every packet, sent back every
50-100 ms (sfu/twcc.py), so the publisher's own send-side estimator adapts
its encoder and simulcast layers. ``RembFeedback``: otherwise, REMB from a
receive-side estimate fed with every video packet that carries
abs-send-time. PublisherPeer feeds them on its packet path by reading and
writing their fields itself (no call per packet beyond the recorder's or
the estimator's own), and sends what its feedback loop asks them to build.
"""

from __future__ import annotations

from sfu.aiortc_hooks import UplinkEstimator
from sfu.rtcp import build_remb
from sfu.twcc import TwccRecorder, feedback_interval


class TwccFeedback:
    """Transport-wide feedback to one publisher: the arrivals recorded, and when to send them."""

    __slots__ = ("_last_sent", "arrivals", "bytes_since", "ext", "media_ssrc", "recorder", "sent")

    def __init__(self) -> None:
        self.ext: int | None = None  # the transport-wide sequence number's id; None: not offered
        self.arrivals: dict[bytes, int] = {}  # (seq, SSRC) -> when it came off the socket, us
        self.recorder = TwccRecorder()
        self.media_ssrc = 0  # the media SSRC feedback names (any of the transport's)
        self.bytes_since = 0  # received since the last feedback, for its interval
        self.sent = 0  # feedback packets built
        self._last_sent = 0.0

    def start(self, now: float) -> None:
        """The feedback loop starts at ``now``: the first feedback is an interval away."""
        self._last_sent = now

    def due(self, sender_ssrc: int, now: float) -> list[bytes]:
        """The feedback packets to send at ``now``: none before the interval is up.

        The interval is ~5 % of what arrives (sfu/twcc.py ``feedback_interval``).
        """
        if not self.recorder.has_pending:
            return []
        elapsed = now - self._last_sent
        if elapsed < feedback_interval(self.bytes_since * 8 / max(elapsed, 1e-3)):
            return []
        packets = self.recorder.build_feedback(sender_ssrc, self.media_ssrc, int(now * 1_000_000))
        self.sent += len(packets)
        self.bytes_since = 0
        self._last_sent = now
        return packets


class RembFeedback:
    """REMB to one publisher: its uplink's receive-side estimate, and what was last sent."""

    __slots__ = ("estimator", "sent", "sent_bitrate")

    def __init__(self) -> None:
        self.estimator = UplinkEstimator()  # fed with every video packet with abs-send-time
        self.sent_bitrate = 0  # the latest REMB's (bit/s)
        self.sent = 0  # REMBs built

    def build(self, sender_ssrc: int, ssrcs: list[int]) -> bytes | None:
        """A REMB of the current estimate for ``ssrcs``; None without an estimate or streams."""
        bitrate = self.estimator.bitrate
        if bitrate <= 0 or not ssrcs:
            return None
        self.sent_bitrate = bitrate
        self.sent += 1
        return build_remb(sender_ssrc, bitrate, ssrcs)
