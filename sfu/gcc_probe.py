"""Probe clusters of the send-side estimator (sfu/gcc.py): their packets, rates and outcome.

As libwebrtc's ProbeBitrateEstimator: over a cluster's received packets (at
least ``probe_min_packets``, and ``probe_min_received`` of those reported),
the send rate and the receive rate; the result is the smaller, and when the
receive rate is below ``probe_saturated_ratio`` of the send rate the link is
saturated (the result is a fraction of the receive rate). A cluster is
decided once it has ended and all its packets are reported (or after
``probe_timeout``): SUCCEEDED when no overuse was seen meanwhile, the link
was not saturated and the result reached ``probe_success_ratio`` of the
target or of what was actually sent; FAILED otherwise.
"""

from __future__ import annotations

import enum
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sfu.gcc import GccConfig, PacketFeedback

logger = logging.getLogger(__name__)


class ProbeOutcome(enum.Enum):
    UNKNOWN = "unknown"  # never registered, or forgotten
    PENDING = "pending"  # not decided yet
    SUCCEEDED = "succeeded"  # no overuse and result >= 0.9 x target
    FAILED = "failed"  # overuse during it, too few packets, or a saturated link


@dataclass(slots=True)
class _Cluster:
    target: float
    started: float
    ended: bool = False
    sent: int = 0  # packets registered
    last_seq: int = -1  # the highest transport-wide number among them
    passed: bool = False  # feedback has reported a packet sent after the cluster's last
    reported: int = 0
    received: int = 0
    first_send: float = 0.0
    last_send: float = 0.0
    last_send_size: int = 0  # the last sent packet's bytes are not part of the send span
    first_arrival: float = 0.0
    last_arrival: float = 0.0
    first_arrival_size: int = 0  # the first arrived packet's bytes are not part of the span
    total_size: int = 0
    overuse: bool = False
    send_rate: float = 0.0  # bit/s the cluster was sent at (once measured)
    saturated: bool = False  # it arrived well below that: the link is full
    outcome: ProbeOutcome = ProbeOutcome.PENDING


class ProbeTracker:
    """Probe clusters: their packets, their send/receive rates, their outcome."""

    def __init__(self, config: GccConfig) -> None:
        self._c = config
        self._clusters: OrderedDict[int, _Cluster] = OrderedDict()
        self._seqs: OrderedDict[int, int] = OrderedDict()  # seq -> cluster id
        self._awaiting: list[_Cluster] = []  # ended, feedback not yet past their last packet

    def start(self, cluster_id: int, target_bps: float, now: float) -> None:
        self._clusters[cluster_id] = _Cluster(target=target_bps, started=now)
        self._clusters.move_to_end(cluster_id)
        while len(self._clusters) > self._c.probe_history:
            self._clusters.popitem(last=False)

    def on_sent(self, cluster_id: int, seq: int) -> None:
        cluster = self._clusters.get(cluster_id)
        if cluster is None or cluster.outcome is not ProbeOutcome.PENDING:
            return
        cluster.sent += 1
        cluster.last_seq = max(cluster.last_seq, seq)
        self._seqs[seq] = cluster_id
        while len(self._seqs) > self._c.probe_seq_memory:
            self._seqs.popitem(last=False)

    def end(self, cluster_id: int) -> None:
        cluster = self._clusters.get(cluster_id)
        if cluster is not None:
            cluster.ended = True
            if cluster.last_seq >= 0:
                self._awaiting.append(cluster)

    @staticmethod
    def _passed_by(cluster: _Cluster, seq: int) -> bool:
        """Feedback for ``seq``, sent after the cluster: what it has not reported never will."""
        if seq > cluster.last_seq or cluster.outcome is not ProbeOutcome.PENDING:
            cluster.passed = True
            return True
        return False

    @property
    def active(self) -> bool:
        return any(c.outcome is ProbeOutcome.PENDING for c in self._clusters.values())

    def on_result(self, r: PacketFeedback) -> None:
        if self._awaiting:  # ended clusters: has the feedback gone past one?
            self._awaiting = [c for c in self._awaiting if not self._passed_by(c, r.seq)]
        cluster_id = self._seqs.pop(r.seq, None)
        cluster = None if cluster_id is None else self._clusters.get(cluster_id)
        if cluster is None or cluster.outcome is not ProbeOutcome.PENDING:
            return
        cluster.reported += 1
        arrival = r.arrival_time
        if arrival is None:
            return
        if cluster.received == 0:
            cluster.first_send = cluster.last_send = r.send_time
            cluster.first_arrival = cluster.last_arrival = arrival
            cluster.last_send_size = cluster.first_arrival_size = r.size
        else:
            cluster.first_send = min(cluster.first_send, r.send_time)
            if r.send_time >= cluster.last_send:
                cluster.last_send, cluster.last_send_size = r.send_time, r.size
            if arrival < cluster.first_arrival:
                cluster.first_arrival, cluster.first_arrival_size = arrival, r.size
            cluster.last_arrival = max(cluster.last_arrival, arrival)
        cluster.received += 1
        cluster.total_size += r.size

    def mark_overuse(self) -> None:
        for cluster in self._clusters.values():
            if cluster.outcome is ProbeOutcome.PENDING:
                cluster.overuse = True

    def result(self, cluster_id: int) -> float | None:
        cluster = self._clusters.get(cluster_id)
        return None if cluster is None else self._rate(cluster)

    def outcome(self, cluster_id: int) -> ProbeOutcome:
        cluster = self._clusters.get(cluster_id)
        return ProbeOutcome.UNKNOWN if cluster is None else cluster.outcome

    def decide(self, now: float) -> list[float]:
        """Decide the clusters that can be; the results that may raise the estimate."""
        raises: list[float] = []
        for cluster_id, cluster in self._clusters.items():
            if cluster.outcome is not ProbeOutcome.PENDING:
                continue
            # every packet reported, or feedback has gone past the cluster: a feedback
            # lost on the way (a capped link just lifted) must not leave it undecided
            # until the timeout, and the next probe waiting behind it
            complete = cluster.ended and (cluster.reported >= cluster.sent or cluster.passed)
            timed_out = not 0 <= now - cluster.started < self._c.probe_timeout
            if not (complete or timed_out or cluster.overuse):
                continue
            rate = self._rate(cluster)
            # the link carried what was sent (not saturated) and about the target: what a
            # sender's packetization falls short of the target is not the link's doing
            good = (
                rate is not None
                and not cluster.saturated
                and (
                    rate >= self._c.probe_success_ratio * cluster.target
                    or rate >= self._c.probe_success_ratio * cluster.send_rate
                )
            )
            ok = good and not cluster.overuse
            cluster.outcome = ProbeOutcome.SUCCEEDED if ok else ProbeOutcome.FAILED
            logger.debug("gcc: probe %d %s at %s bit/s", cluster_id, cluster.outcome.value, rate)
            if rate is not None and not cluster.overuse:
                raises.append(rate)
        return raises

    def _rate(self, cluster: _Cluster) -> float | None:
        c = self._c
        if cluster.received < max(c.probe_min_packets, c.probe_min_received * cluster.reported):
            return None
        send_span = cluster.last_send - cluster.first_send
        receive_span = cluster.last_arrival - cluster.first_arrival
        if not (0 < send_span <= c.probe_max_interval and 0 < receive_span <= c.probe_max_interval):
            return None
        send_rate = (cluster.total_size - cluster.last_send_size) * 8 / send_span
        receive_rate = (cluster.total_size - cluster.first_arrival_size) * 8 / receive_span
        if receive_rate > c.probe_max_ratio * send_rate:
            return None
        cluster.send_rate = send_rate
        cluster.saturated = receive_rate < c.probe_saturated_ratio * send_rate
        if cluster.saturated:
            return c.probe_saturated_fraction * receive_rate
        return min(send_rate, receive_rate)
