"""ProbePadding: a subscriber link's probe padding, and the timing of its queue.

One per DownlinkController. While the link estimator probes, it pads the
link up to the probe's rate with RTX padding-only packets on one video
Consumer (the *carrier*), every ``PADDING_TICK``. For peers judged by REMB
and receiver reports (aiortc) it also:

- sends small *markers* after a probe, so the probe's tail loss shows in
  the next receiver report;
- sends sender reports on the carrier's RTX stream (every 100 ms during a
  probe, right behind its last padding, else every tick) whose echo gives
  the round trip; the least one outside probes is the link's own, and the
  excess over it during a probe is the queue the probe built;
- reads the carrier's RTX report block: the probe's own loss, and whether
  the report covers the probe's last packet.

Transport-wide feedback (sfu/twcc_estimator.py) times every packet itself:
with it only the padding is sent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sfu.consumer import Consumer, ConsumerState
from sfu.link_estimate import LinkEstimator
from sfu.media import MediaKind
from sfu.probe_round import ProbeState
from sfu.rtcp import ReportBlock

TICK = 0.5  # the controller's allocation tick: RTX sender reports outside probes
PADDING_TICK = 0.02
PADDING_SIZE = 255  # bytes of padding per probe packet (the most one packet can carry)
PADDING_OVERHEAD = 12 + 12 + 10  # header, extensions, SRTP tag
MARKER_SIZE = 8
MARK_INTERVAL = 0.1  # markers and RTX sender reports around a probe
BASE_RTT_WINDOW = 10.0  # seconds of round trips the link's own is the least of


@dataclass(frozen=True, slots=True)
class ProbeBlock:
    """What the carrier's RTX report block says of the probe it carried."""

    rate: float  # bit/s of padding the probe sent on it
    lost: float  # fraction of it lost
    covers: bool | None  # the receiver got the probe's last packet (None: not known yet)


class ProbePadding:
    def __init__(self, consumers: Callable[[], Iterable[Consumer]]) -> None:
        self._consumers = consumers
        self.packets = 0  # padding packets sent (probes and markers)
        self.rate = 0.0  # bit/s of padding now (0: none)
        self._due = 0.0  # bytes of padding owed (rates below one packet per tick)
        self._carrier: Consumer | None = None  # the Consumer padding last went on
        self._probe_rate = 0.0  # the padding rate of the latest probe
        self._last_seq: int | None = None  # RTX sequence number of its last packet
        self._padded = False  # padding is going out: an RTX sender report follows its last
        self._last_report = 0.0
        self._base_rtt: deque[tuple[float, float]] = deque()  # (when, round trip) outside probes

    def set_rate(self, rate: float) -> None:
        """Pad at ``rate`` bit/s from now on (0: stop)."""
        starting = not self.rate
        self.rate = rate
        if rate:
            self._probe_rate = rate
            if starting:
                self._last_seq = None  # known once this probe's padding is out
        else:
            self._due = 0.0

    @property
    def base_rtt(self) -> float:
        """The link's own round trip: the least one lately outside probes (s; 0 if none)."""
        return min((r for _, r in self._base_rtt), default=0.0)

    def step(self, estimator: LinkEstimator, slept: float, now: float, timed: bool) -> None:
        """One wake-up of the controller's loop, ``slept`` seconds after the last.

        ``timed``: the link is judged by receiver reports, so markers and
        RTX sender reports go out too (with transport-wide feedback, RTX
        sender reports go out only while padding, for the round trip).
        """
        if self.rate > 0 and not estimator.padding_now(now):
            self.rate = 0.0  # the probe ended, or was stopped early
            self._due = 0.0
        if self.rate > 0:
            self._pad(min(slept, 5 * PADDING_TICK))  # the time that really passed
        elif self._padded:
            self._padded = False  # the padding stopped: the probe's queue is longest now
            if timed:
                self._send_report(now)
        elif not timed:
            return
        elif estimator.probe_state is ProbeState.SETTLING:
            self._mark()
        self._time_link(estimator, now)

    def queue_delay(self, rtt: float, probing: bool, now: float) -> float | None:
        """The queue a round trip shows over the link's own (None: the link's own not known).

        A round trip outside probes counts towards the link's own.
        """
        delay = rtt - self.base_rtt if self._base_rtt else None
        if not probing:
            self._base_rtt.append((now, rtt))
            while self._base_rtt and now - self._base_rtt[0][0] > BASE_RTT_WINDOW:
                self._base_rtt.popleft()
        return delay

    def probe_block(self, consumer: Consumer, block: ReportBlock) -> ProbeBlock | None:
        """The carrier's RTX report block during a probe (None: another stream's)."""
        if consumer is not self._carrier:
            return None
        covers = None
        if self._last_seq is not None:
            # the receiver got the probe's last packet, or a later one
            covers = (block.highest_seq - self._last_seq) & 0xFFFF < 0x8000
        return ProbeBlock(self._probe_rate, block.fraction_lost / 256.0, covers)

    def carries(self, consumers: Iterable[Consumer]) -> bool:
        """Whether probe padding goes on one of ``consumers``."""
        return any(c is self._carrier for c in consumers)

    # -- sending ---------------------------------------------------------------------

    def _find_carrier(self) -> Consumer | None:
        carrier = next(
            (
                c
                for c in self._consumers()
                if c.kind is MediaKind.VIDEO and c.can_pad and c.state is not ConsumerState.CLOSED
            ),
            None,
        )
        self._carrier = carrier
        return carrier

    def _pad(self, interval: float) -> None:
        carrier = self._find_carrier()
        if carrier is None:
            return
        self._due += self.rate * interval / 8
        packets = int(self._due // (PADDING_SIZE + PADDING_OVERHEAD))
        if packets:
            self._due -= packets * (PADDING_SIZE + PADDING_OVERHEAD)
            self.packets += carrier.send_padding(packets, PADDING_SIZE)
            self._last_seq = carrier.last_rtx_seq
            self._padded = True

    def _mark(self) -> None:
        """One small padding packet after a probe, every 100 ms until it is judged.

        A queue that overflowed drops the *last* packets of the probe, and a
        receiver only counts a packet lost once a later one arrives: these
        make the probe's tail loss show in the next receiver report.
        """
        carrier = self._carrier
        if carrier is not None and carrier.state is not ConsumerState.CLOSED:
            self.packets += carrier.send_padding(1, MARKER_SIZE)

    def _time_link(self, estimator: LinkEstimator, now: float) -> None:
        """An RTX sender report every 100 ms during a probe, else every tick.

        One more goes out right behind a probe's last padding (``step``),
        and none while the probe settles, so the report that judges it
        echoes that one, sent when the probe's queue was longest.
        """
        state = estimator.probe_state
        if state is ProbeState.SETTLING or (
            state is ProbeState.PROBING and not estimator.padding_now(now)
        ):
            return  # (a probe whose padding ended settles from the next tick on)
        interval = MARK_INTERVAL if state is ProbeState.PROBING else TICK
        if now - self._last_report >= interval:
            self._send_report(now)

    def _send_report(self, now: float) -> None:
        carrier = self._carrier
        if carrier is None or carrier.state is ConsumerState.CLOSED:
            carrier = self._find_carrier()
        if (
            carrier is not None
            and carrier.state is not ConsumerState.CLOSED
            and carrier.send_rtx_report()
        ):
            self._last_report = now
