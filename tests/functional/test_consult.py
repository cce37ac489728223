"""Three real aiortc participants in one consult, media through the SFU."""

from __future__ import annotations

import asyncio

from sfu.media import Source
from sfu.participant import Role
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from tests.conftest import RunningServer

SIZES = {"patient": (320, 240), "health_worker": (352, 288), "specialist": (256, 192)}


async def test_three_party_consult_each_decodes_the_others(server: RunningServer) -> None:
    clients = {}
    try:
        for identity, role in (
            ("specialist", Role.SPECIALIST),
            ("health_worker", Role.HEALTH_WORKER),
            ("patient", Role.PATIENT),
        ):
            client = server.client(server.token("consult-1", identity, role))
            await client.connect()
            clients[identity] = client
            joined = await client.join()
            if role is Role.PATIENT:
                assert joined["state"] == "lobby"
                lobby = await clients["specialist"].wait_event(
                    "lobby", where=lambda e: bool(e["waiting"])
                )
                await clients["specialist"].admit(lobby["waiting"][0]["id"])
                await client.wait_admitted()
            w, h = SIZES[identity]
            await client.publish(
                [(ToneTrack(), Source.MICROPHONE), (CameraTrack(w, h, fps=15), Source.CAMERA)]
            )

        readers: dict[tuple[str, str, str], TrackReader] = {}
        ids = {name: c.participant_id for name, c in clients.items()}
        for name, client in clients.items():
            for other, other_id in ids.items():
                if other == name:
                    continue
                for kind in ("audio", "video"):
                    track = await client.wait_for_track(
                        lambda t, k=kind, p=other_id: t.kind == k and t.participant_id == p
                    )
                    readers[(name, other, kind)] = TrackReader(track.track)

        for (name, other, kind), reader in readers.items():
            if kind == "video":
                stats = await reader.wait_frames(20, timeout=20)
                assert stats.sizes == {SIZES[other]}, (name, other, stats.sizes)
            else:
                stats = await reader.wait_frames(50, timeout=20)
                assert stats.samples >= 50 * 960
                assert stats.peak > 1000, "audio should carry the tone, not silence"

        # the server forwarded packets and never lost track of anyone
        totals = server.rooms.totals()
        assert totals.producers == 6
        assert totals.consumers == 12
        assert totals.packets_out > totals.packets_in
        for reader in readers.values():
            await reader.stop()
    finally:
        await asyncio.gather(*(c.leave() for c in clients.values()))
