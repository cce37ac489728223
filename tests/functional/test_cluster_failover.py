"""Node loss and draining: participants are moved to another node without user action."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from recording.audit import generate_signing_key
from recording.crypto_stream import generate_keypair
from sfu.participant import Role
from signaling.client import ConsultClient
from tests.functional.cluster_helpers import (
    Cluster,
    decodes_video_from,
    needs_redis,
    publish_av,
    running_cluster,
)

pytestmark = needs_redis


def recording_config(tmp: Path) -> dict[str, Any]:
    public_pem = generate_keypair()[1]
    audit_private = generate_signing_key()[0]
    (tmp / "h.pub").write_bytes(public_pem)
    (tmp / "audit.key").write_bytes(audit_private)
    return {
        "enabled": True,
        "directory": str(tmp / "recordings"),
        "recipients": [{"kid": "h1", "public_key_file": str(tmp / "h.pub")}],
        "audit_log": str(tmp / "recordings" / "audit.log"),
        "audit_signing_key_file": str(tmp / "audit.key"),
    }


def mobile(cluster: Cluster, via: str, room: str, identity: str, role: Role) -> ConsultClient:
    """A client that reconnects by itself, knowing every node as an entry point."""
    others = [p.ws_url for n, p in cluster.nodes.items() if n != via]
    return cluster.client(via, room, identity, role=role, reconnect=True, fallback_urls=others)


async def call(cluster: Cluster, room: str, vias: tuple[str, str]) -> list[ConsultClient]:
    doctor = mobile(cluster, vias[0], room, "doctor", Role.SPECIALIST)
    nurse = mobile(cluster, vias[1], room, "nurse", Role.HEALTH_WORKER)
    for client in (doctor, nurse):
        await client.connect()
        await client.join()
        await publish_av(client)
    assert await decodes_video_from(doctor, nurse) == {(320, 240)}
    return [doctor, nurse]


async def back_in_call(clients: list[ConsultClient], timeout: float) -> None:
    doctor, nurse = clients
    for client in clients:
        await client.wait_until(
            lambda c=client: c.reconnections >= 1 and c.state == "active", timeout
        )
    assert await decodes_video_from(doctor, nurse, frames=5, timeout=timeout) == {(320, 240)}
    assert await decodes_video_from(nurse, doctor, frames=5, timeout=timeout) == {(320, 240)}


async def test_sigkill_of_the_rooms_node_moves_the_call_within_10s(tmp_path: Path) -> None:
    # recording on every node (each writes under recordings/<node id>)
    rec = recording_config(tmp_path)
    async with running_cluster(tmp_path, "a", "b", "c", recording=rec) as cluster:
        clients = await call(cluster, "kill-me", ("a", "b"))
        try:
            doctor, nurse = clients
            await doctor.request({"type": "recording_start"})
            await doctor.request({"type": "consent", "given": True})
            await nurse.request({"type": "consent", "given": True})
            await asyncio.sleep(1.5)
            host = cluster.node_of_url(doctor.url)
            in_progress = list((tmp_path / "recordings" / host).glob("*.rec"))
            assert in_progress

            killed_at = time.monotonic()
            proc = cluster.nodes[host].proc
            assert proc is not None
            proc.send_signal(signal.SIGKILL)
            await back_in_call(clients, timeout=10)
            recovered = time.monotonic() - killed_at
            print(f"back in a working call {recovered:.1f} s after SIGKILL")
            assert recovered < 10, f"back in a working call after {recovered:.1f} s"
            new_host = cluster.node_of_url(doctor.url)
            assert new_host != host and cluster.node_of_url(nurse.url) == new_host
            # the dead node's recording was marked interrupted by the node that re-placed
            # the room (the first to see a join for it), in its own audit log
            assert all(p.with_suffix(".interrupted").exists() for p in in_progress)
            audits = [
                (tmp_path / "recordings" / n / "audit.log").read_text()
                for n in cluster.nodes
                if n != host and (tmp_path / "recordings" / n / "audit.log").exists()
            ]
            assert sum('"recording_interrupted"' in text for text in audits) == 1
        finally:
            await asyncio.gather(*(c.leave() for c in clients))


async def test_drain_moves_participants_and_takes_no_new_rooms(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, "a", "b", "c") as cluster:
        clients = await call(cluster, "to-move", ("a", "b"))
        patient = mobile(cluster, "c", "to-move", "patient", Role.PATIENT)
        try:
            await patient.connect()
            assert (await patient.join())["state"] == "lobby"
            assert patient.participant_id is not None
            await clients[0].admit(patient.participant_id)
            await patient.wait_admitted()
            host = cluster.node_of_url(clients[0].url)
            status, body = await cluster.admin(host, "POST", "/api/admin/drain")
            assert status == 200 and body["state"] == "draining"
            await back_in_call(clients, timeout=15)
            assert {cluster.node_of_url(c.url) for c in clients} != {host}
            # the patient admitted before the move is not sent back to the lobby
            await patient.wait_until(
                lambda: patient.reconnections >= 1 and patient.state == "active", 15
            )
            assert cluster.node_of_url(patient.url) == cluster.node_of_url(clients[0].url)
            assert any(e["type"] == "reconnect" for e in clients[0].events)
            status, ready = await cluster.admin(host, "GET", "/readyz")
            assert status == 503 and ready["status"] == "draining"
            # new rooms, entering through every node (the drained one too), land elsewhere
            for i, via in enumerate(["a", "b", "c", host]):
                client = cluster.client(via, f"fresh-{i}", f"dr-{i}")
                await client.connect()
                await client.join()
                assert cluster.node_of_url(client.url) != host
                await client.leave()
            status, nodes = await cluster.admin(host, "GET", "/api/cluster/nodes")
            assert {n["id"]: n["draining"] for n in nodes["nodes"]}[host] is True
        finally:
            await asyncio.gather(*(c.leave() for c in [*clients, patient]))


async def test_sigterm_drains_the_node_before_it_exits(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, "a", "b") as cluster:
        clients = await call(cluster, "rolling-update", ("a", "b"))
        try:
            host = cluster.node_of_url(clients[0].url)
            proc = cluster.nodes[host].proc
            assert proc is not None
            proc.send_signal(signal.SIGTERM)
            await back_in_call(clients, timeout=15)
            events = [e for c in clients for e in c.events if e["type"] == "reconnect"]
            assert {e.get("reason") for e in events} == {"node_draining"}
            assert await asyncio.to_thread(proc.wait, 10) == 0
        finally:
            await asyncio.gather(*(c.leave() for c in clients))
