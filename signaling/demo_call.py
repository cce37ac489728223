"""A scripted three-party consult against a running server, to try it without a browser.

    python -m signaling.demo_call --url ws://127.0.0.1:8080/ws [--seconds 10]

A specialist and a health worker join, a patient waits in the lobby and is
admitted; everyone publishes a synthetic camera and microphone, and the
script prints what each participant decodes from the others. Tokens are
minted with the local development secret (the server must be using it).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys

from sfu.media import Source
from sfu.participant import Role
from signaling.client import ConsultClient
from signaling.config import load_config
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from signaling.tokens import dev_secret, mint_token


def _has_all(client: ConsultClient) -> bool:
    return len(client.remote_tracks) >= 4


async def run(url: str, room: str, seconds: float) -> int:
    config = load_config(None)
    secret = dev_secret(config.auth, create=False)
    people = [
        ("specialist", Role.SPECIALIST, (320, 240)),
        ("health-worker", Role.HEALTH_WORKER, (352, 288)),
        ("patient", Role.PATIENT, (256, 192)),
    ]
    clients: dict[str, ConsultClient] = {}
    readers: list[tuple[str, str, TrackReader]] = []
    try:
        for name, role, (width, height) in people:
            token = mint_token(secret, room=room, identity=name, role=role, name=name)
            client = ConsultClient(url, token, ice_addresses=["127.0.0.1"])
            await client.connect()
            joined = await client.join()
            clients[name] = client
            print(f"{name:14} joined ({joined['state']})")
            if joined["state"] == "lobby":
                lobby = await clients["specialist"].wait_event(
                    "lobby", where=lambda e: bool(e["waiting"])
                )
                await clients["specialist"].admit(lobby["waiting"][0]["id"])
                await client.wait_admitted()
                print(f"{name:14} admitted by the specialist")
            await client.publish(
                [(ToneTrack(), Source.MICROPHONE), (CameraTrack(width, height), Source.CAMERA)]
            )
        names = {c.participant_id: n for n, c in clients.items()}
        for name, client in clients.items():
            await client.wait_until(functools.partial(_has_all, client), timeout=15)
            for track in client.remote_tracks.values():
                readers.append(
                    (name, f"{names[track.participant_id]} {track.kind}", TrackReader(track.track))
                )
        await asyncio.sleep(seconds)
        for name, what, reader in readers:
            s = reader.stats
            detail = f"{sorted(s.sizes)}" if "video" in what else f"{s.samples} samples"
            print(f"{name:14} decoded {s.frames:4} frames of {what:20} {detail}")
        return 0
    finally:
        for _, _, reader in readers:
            await reader.stop()
        await asyncio.gather(*(c.leave() for c in clients.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--room", default="demo-call")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    return asyncio.run(run(args.url, args.room, args.seconds))


if __name__ == "__main__":
    sys.exit(main())
