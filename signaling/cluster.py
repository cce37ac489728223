"""Wiring of placement into the app: node identity, placement, drain, metrics, recordings.

``setup_cluster`` is called by ``create_app``: it picks the in-process
placement (no Redis, the default) or the Redis one (``cluster.redis_url``),
adds the admin API and the cluster metrics, and returns the JoinRouter the
signalling sessions use. docs/cluster.md describes the whole design.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sfu.room_manager import RoomManager
from signaling.config import Config, ConfigError, RecordingConfig
from signaling.drain import Drainer
from signaling.placement import (
    InProcessPlacement,
    NodeIdentity,
    Placement,
    PlacementState,
    default_node_id,
)
from signaling.recording_service import RecordingService, mark_interrupted
from signaling.redis_placement import RedisPlacement
from signaling.routing import JoinRouter
from signaling.session import SignalingSession
from signaling.single_use import MemoryUsedTokens, SingleUseTokens, UsedTokenStore
from signaling.tickets import TicketSigner
from signaling.tokens import TokenVerifier

logger = logging.getLogger(__name__)

PLACEMENT: web.AppKey[Placement] = web.AppKey("placement")
DRAINER = web.AppKey("drainer", Drainer)


def node_identity(config: Config) -> NodeIdentity:
    server, cluster = config.server, config.cluster
    scheme = "wss" if server.tls_cert else "ws"
    url = cluster.public_url or f"{scheme}://{server.host}:{server.port}/ws"
    addresses = tuple(config.media.announce.get(a, a) for a in config.media.ice_addresses)
    return NodeIdentity(
        id=cluster.node_id or default_node_id(),
        url=url,
        media_addresses=addresses,
        capacity=cluster.capacity,
    )


def node_scoped_recording(config: RecordingConfig, node_id: str) -> RecordingConfig:
    """In a cluster each node writes recordings and its audit chain under <directory>/<node id>.

    Nodes may share a disk (workers on one machine): a node that starts must
    not mark another live node's recordings interrupted, and two processes
    must never append to one hash chain.
    """
    directory = Path(config.directory) / node_id
    audit = Path(config.audit_log)
    return dataclasses.replace(
        config, directory=str(directory), audit_log=str(audit.parent / node_id / audit.name)
    )


class ClusterCollector(Collector):
    def __init__(self, placement: Placement, drainer: Drainer) -> None:
        self._placement = placement
        self._drainer = drainer

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily("digiclinic_node_info", "This node's id", labels=["node_id"])
        info.add_metric([self._placement.node.id], 1)
        yield info
        state = GaugeMetricFamily(
            "digiclinic_placement_state", "Placement state (1 = current)", labels=["state"]
        )
        for s in PlacementState:
            state.add_metric([s.value], float(s is self._placement.state))
        yield state
        connected = self._placement.redis_connected
        if connected is not None:
            yield GaugeMetricFamily(
                "digiclinic_redis_connected", "1 while Redis answers", value=float(connected)
            )


class Reaper:
    """Marks a gone node's recordings interrupted, when this node can see its directory."""

    def __init__(self, recordings: RecordingService, base: RecordingConfig) -> None:
        self.recordings = recordings
        self.base = Path(base.directory)
        self.placement: RedisPlacement | None = None

    async def node_gone(self, node_id: str) -> None:
        settings = self.recordings.settings
        if settings is None or self.placement is None:
            return
        directory = self.base / node_id
        if not directory.is_dir() or not await self.placement.claim_reaping(node_id):
            return
        found = await asyncio.to_thread(
            mark_interrupted, dataclasses.replace(settings, directory=directory)
        )
        if found:
            logger.warning("marked %d recordings of gone node %s interrupted", len(found), node_id)


def create_recordings(config: Config, node: NodeIdentity) -> tuple[RecordingService, Reaper]:
    recording = config.recording
    if config.cluster.redis_url:
        recording = node_scoped_recording(recording, node.id)
    service = RecordingService(recording)
    return service, Reaper(service, config.recording)


def setup_cluster(
    app: web.Application,
    config: Config,
    node: NodeIdentity,
    rooms: RoomManager,
    verifier: TokenVerifier,
    sessions: set[SignalingSession],
    reaper: Reaper,
    registry_collector: list[Collector],
) -> JoinRouter:
    cluster = config.cluster
    placement: Placement
    signer = None
    used: UsedTokenStore = MemoryUsedTokens()  # single-use tokens of this process
    if cluster.redis_url:
        if not cluster.secret:
            raise ConfigError("cluster.redis_url needs cluster.secret (the same on every node)")
        signer = TicketSigner(cluster.secret, cluster.ticket_ttl)
        redis_placement = RedisPlacement(node, rooms, cluster, on_node_gone=reaper.node_gone)
        reaper.placement = redis_placement
        placement = redis_placement
        used = redis_placement.used_tokens()  # shared by every node
    else:
        placement = InProcessPlacement(node, rooms)
    drainer = Drainer(placement, rooms, lambda: sessions)
    if isinstance(placement, RedisPlacement):
        placement.on_conflict = drainer.move_room
    app[PLACEMENT] = placement
    app[DRAINER] = drainer
    registry_collector.append(ClusterCollector(placement, drainer))

    async def placement_ctx(app: web.Application) -> AsyncIterator[None]:
        await placement.start()
        logger.info("node %s (%s placement)", node.id, "redis" if signer else "in-process")
        yield
        await drainer.close()
        await placement.close()

    app.cleanup_ctx.append(placement_ctx)
    tokens = SingleUseTokens(used, verifier.config.single_use_tokens)
    return JoinRouter(verifier, placement, signer, tokens)
