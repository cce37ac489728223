"""Rooms placed across nodes on a real Redis: three node processes on loopback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sfu.participant import Role
from signaling.client import ClientError, ConsultClient
from tests.functional.cluster_helpers import (
    Cluster,
    decodes_video_from,
    needs_redis,
    publish_av,
    running_cluster,
)

pytestmark = needs_redis


async def test_participants_through_different_nodes_meet_and_decode(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, "a", "b", "c") as cluster:
        sizes = {"a": (320, 240), "b": (352, 288), "c": (256, 192)}
        roles = {"a": Role.SPECIALIST, "b": Role.HEALTH_WORKER, "c": Role.INTERPRETER}
        clients = {n: cluster.client(n, "consult-x", f"user-{n}", role=roles[n]) for n in sizes}
        try:
            for node, client in clients.items():
                await client.connect()
                joined = await client.join()
                assert joined["state"] == "active"
                await publish_av(client, sizes[node])
            hosts = {cluster.node_of_url(c.url) for c in clients.values()}
            assert len(hosts) == 1, "everyone is redirected to the room's one node"
            (host,) = hosts
            for name, client in clients.items():
                for other, peer in clients.items():
                    if other != name:
                        assert await decodes_video_from(client, peer) == {sizes[other]}
            # any node answers the admin API with the cluster-wide counts
            for node in ("a", "b", "c"):
                status, body = await cluster.admin(node, "GET", "/api/rooms")
                assert status == 200
                (room,) = body["rooms"]
                assert room["room"] == "consult-x" and room["participants"] == 3
                assert room["node"] == host
        finally:
            await asyncio.gather(*(c.leave() for c in clients.values()))


async def test_concurrent_first_joins_from_every_node_place_the_room_once(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, "a", "b", "c") as cluster:
        for round_ in range(3):  # three rooms, each raced for from all nodes at once
            room = f"race-{round_}"
            nodes = ("a", "b", "c")
            clients = [cluster.client(n, room, f"{n}-{i}") for n in nodes for i in (1, 2)]
            try:
                await asyncio.gather(*(c.connect() for c in clients))
                replies = await asyncio.gather(*(c.join() for c in clients))
                assert {r["room"] for r in replies} == {room}
                hosts = {cluster.node_of_url(c.url) for c in clients}
                assert len(hosts) == 1, f"{room} placed on {hosts}"
                (host,) = hosts
                for via in ("a", "b", "c"):
                    assert await cluster.room_node(via, room) == host
                # and they are really in one room of six
                status, body = await cluster.admin("a", "GET", f"/api/rooms/{room}")
                assert status == 200 and body["participants"] == 6
            finally:
                await asyncio.gather(*(c.leave() for c in clients))


async def test_redis_down_keeps_calls_refuses_new_rooms_and_recovers(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, "a", "b") as cluster:
        doctor = cluster.client("a", "ongoing", "doctor")
        nurse = cluster.client("b", "ongoing", "nurse", role=Role.HEALTH_WORKER)
        late: ConsultClient | None = None
        try:
            for client in (doctor, nurse):
                await client.connect()
                await client.join()
                await publish_av(client)
            await decodes_video_from(doctor, nurse)
            host = cluster.node_of_url(doctor.url)

            cluster.redis.stop()
            await asyncio.sleep(1.5)  # every node has noticed by now
            # the call goes on: fresh frames still decode
            assert await decodes_video_from(nurse, doctor, frames=30) == {(320, 240)}
            # a late participant of the ongoing room, entering at its node, still gets in
            late = cluster.client(host, "ongoing", "interpreter", role=Role.INTERPRETER)
            await late.connect()
            assert (await late.join())["state"] == "active"
            # a new room cannot be placed: a clear error
            fresh = cluster.client("a", "new-room", "doctor-2")
            await fresh.connect()
            with pytest.raises(ClientError) as refused:
                await fresh.join()
            assert refused.value.code == "placement_unavailable"
            assert "redis" in refused.value.message.lower()
            await fresh.close()
            metrics = await cluster.nodes["a"].metrics()
            assert metrics["digiclinic_redis_connected"] == 0
            status, ready = await cluster.admin("a", "GET", "/readyz")
            assert status == 200 and ready["redis"] == "unreachable"
            assert ready["placement"] == "degraded"

            cluster.redis.start()  # empty: every key was lost
            deadline = time.monotonic() + 10
            while True:
                again = cluster.client("b", "new-room", "doctor-3")
                await again.connect()
                try:
                    await again.join()
                    break
                except ClientError as exc:
                    assert exc.code == "placement_unavailable"
                    assert time.monotonic() < deadline, "placement did not recover"
                    await asyncio.sleep(0.3)
                finally:
                    await again.close()
            while (await cluster.nodes["b"].metrics())["digiclinic_redis_connected"] != 1:
                assert time.monotonic() < deadline + 5, "the metric shows Redis back"
                await asyncio.sleep(0.2)  # set by the next heartbeat
            # the ongoing room was re-claimed by its node: listed again, still on it
            assert await _eventually_room_node(cluster, "b", "ongoing") == host
            assert await decodes_video_from(doctor, nurse, frames=10) == {(320, 240)}
        finally:
            for client in (doctor, nurse, late):
                if client is not None:
                    await client.leave()


async def _eventually_room_node(cluster: Cluster, via: str, room: str) -> str:
    deadline = time.monotonic() + 5
    while True:
        status, body = await cluster.admin(via, "GET", f"/api/rooms/{room}")
        if status == 200:
            return str(body["node"])
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.2)
