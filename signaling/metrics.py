"""Prometheus metrics.

The packet path keeps plain integer counters on Producers and Consumers (an
increment per packet must not take a lock); a custom collector sums them at
scrape time, adding the totals of objects that have already ended so that
counters never go down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sfu.faults import FAULTS, PARTS
from sfu.room_manager import RoomManager
from signaling.downlink_metrics import DownlinkCollector


class SfuCollector(Collector):
    def __init__(self, rooms: RoomManager) -> None:
        self._rooms = rooms

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        t = self._rooms.totals()
        gauges = {
            "digiclinic_rooms": ("Rooms hosted by this node", t.rooms),
            "digiclinic_participants": ("Participants, lobby included", t.participants),
            "digiclinic_lobby_participants": ("Participants waiting in a lobby", t.lobby),
            "digiclinic_producers": ("Published tracks", t.producers),
            "digiclinic_consumers": ("Track deliveries to subscribers", t.consumers),
        }
        for name, (doc, value) in gauges.items():
            yield GaugeMetricFamily(name, doc, value=value)
        counters = {
            "digiclinic_rtp_packets_in": ("RTP packets received from publishers", t.packets_in),
            "digiclinic_rtp_bytes_in": ("RTP bytes received from publishers", t.bytes_in),
            "digiclinic_rtp_packets_out": ("RTP packets forwarded to subscribers", t.packets_out),
            "digiclinic_rtp_bytes_out": ("RTP bytes forwarded to subscribers", t.bytes_out),
            "digiclinic_nacks": ("NACKs received from subscribers and sent upstream", t.nacks),
            "digiclinic_retransmissions": (
                "Packets retransmitted (RTX) to subscribers",
                t.retransmissions,
            ),
            "digiclinic_keyframe_requests": ("PLIs sent to publishers", t.keyframe_requests),
        }
        for name, (doc, value) in counters.items():
            yield CounterMetricFamily(name, doc, value=value)
        faults = CounterMetricFamily(
            "digiclinic_isolated_faults",
            "Bugs met and contained in one part (sfu/faults.py): consumer, tap, packet, loop",
            labels=["part"],
        )
        for part in PARTS:
            faults.add_metric([part], FAULTS.counts[part])
        yield faults
        mux = self._rooms.media.udp_mux
        if mux is not None:  # media.udp_mode one_port (sfu/udp_mux.py)
            udp = CounterMetricFamily(
                "digiclinic_media_udp_datagrams",
                "Datagrams at the one media UDP port, by fate: delivered, unknown (no "
                "connection holds the address), bad_check (a STUN check that did not verify)",
                labels=["fate"],
            )
            c = mux.counters
            udp.add_metric(["delivered"], c.datagrams - c.unknown)
            udp.add_metric(["unknown"], c.unknown)
            udp.add_metric(["bad_check"], c.bad_checks)
            yield udp


class RuntimeCollector(Collector):
    """What a soak watches for leaks besides memory and descriptors: live asyncio tasks."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # scraped outside the event loop (not by the server itself)
            return
        yield GaugeMetricFamily("digiclinic_asyncio_tasks", "asyncio tasks alive", value=tasks)


class SignalingMetrics:
    def __init__(self, rooms: RoomManager) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(SfuCollector(rooms))
        self.registry.register(DownlinkCollector(rooms))
        self.registry.register(RuntimeCollector())
        # process_cpu_seconds_total, process_resident_memory_bytes...: what a load
        # tester reads from a server it cannot see the /proc of
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.join_seconds = Histogram(
            "digiclinic_join_seconds",
            "Time from join request to joined reply",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.errors = Counter(
            "digiclinic_signaling_errors",
            "Errors returned to clients, by code",
            ["code"],
            registry=self.registry,
        )
        self.connections = Counter(
            "digiclinic_websocket_connections",
            "WebSocket connections accepted",
            registry=self.registry,
        )
