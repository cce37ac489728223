"""Prometheus view of adaptation: each subscriber's estimate, link and chosen layers.

Labels are the opaque participant and track ids the server generates, never
names or portal identities. Series exist while the subscriber is connected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sfu.consumer import ConsumerState
from sfu.media import MediaKind
from sfu.room_manager import RoomManager


def _per_participant(name: str, documentation: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=["participant"])


class DownlinkCollector(Collector):
    def __init__(self, rooms: RoomManager) -> None:
        self._rooms = rooms

    def collect(self) -> Iterator[GaugeMetricFamily]:
        estimate = _per_participant(
            "digiclinic_subscriber_estimate_bps",
            "The server's estimate of what each subscriber's downlink carries (bit/s)",
        )
        sent = _per_participant(
            "digiclinic_subscriber_sent_bps",
            "What each subscriber is being sent (bit/s, audio and video)",
        )
        rtt = _per_participant(
            "digiclinic_subscriber_rtt_seconds",
            "Round trip to each subscriber, from its receiver reports",
        )
        jitter = _per_participant(
            "digiclinic_subscriber_jitter_seconds",
            "Interarrival jitter each subscriber reports (the largest of its streams)",
        )
        loss = _per_participant(
            "digiclinic_subscriber_loss_ratio",
            "Packet loss each subscriber reports (fraction, weighted by stream rate; "
            "a stream that stopped arriving counts as lost)",
        )
        layer = GaugeMetricFamily(
            "digiclinic_consumer_layer",
            "Simulcast layer forwarded per subscriber and video track (-1: paused)",
            labels=["participant", "track", "paused_reason"],
        )
        states = GaugeMetricFamily(
            "digiclinic_video_consumers",
            "Video deliveries by forwarded layer or pause reason",
            labels=["state"],
        )
        by_state: Counter[str] = Counter()
        for room in self._rooms.rooms.values():
            for participant in room.participants.values():
                subscriber = participant.subscriber
                if subscriber is None:
                    continue
                downlink = subscriber.downlink
                estimate.add_metric([participant.id], downlink.estimator.estimate)
                sent.add_metric([participant.id], downlink.audio_rate + downlink.video_rate)
                link = downlink.link_stats()
                if link["rtt_ms"] is not None:
                    rtt.add_metric([participant.id], link["rtt_ms"] / 1000)
                jitter.add_metric([participant.id], downlink.jitter)
                loss.add_metric([participant.id], downlink.estimator.loss)
                for consumer in participant.consumers.values():
                    if consumer.kind is not MediaKind.VIDEO:
                        continue
                    if consumer.state is ConsumerState.CLOSED:
                        continue
                    reasons = sorted(consumer.pause_reasons)
                    reason = "bandwidth" if "bandwidth" in reasons else ",".join(reasons)
                    value = -1 if reasons or consumer.current_layer < 0 else consumer.current_layer
                    layer.add_metric([participant.id, consumer.producer.id, reason], value)
                    by_state[f"paused_{reason}" if reasons else f"layer{max(value, 0)}"] += 1
        for state, count in sorted(by_state.items()):
            states.add_metric([state], count)
        yield estimate
        yield sent
        yield rtt
        yield jitter
        yield loss
        yield layer
        yield states
