"""ICE candidates as a weapon: a client cannot aim the server's STUN at arbitrary hosts and ports.

A real network namespace holds the "victim": UDP listeners on a service
port (53) and on ephemeral ports. A client sends candidates naming them;
whatever the server sends there is counted on the victim's side.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable

import pytest

from sfu.media import Source
from sfu.participant import Role
from signaling.client import ClientError, ConsultClient
from signaling.demo_media import ToneTrack
from tests.conftest import RunningServer
from tests.helpers.netns_link import netns_available, netns_link

pytestmark = pytest.mark.skipif(not netns_available()[0], reason=netns_available()[1])

VICTIM = """
import json, select, socket, sys, time
ports = [int(p) for p in sys.argv[2].split(",")]
socks = {}
for port in ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], port))
    socks[s] = port
print("ready", flush=True)
counts = {p: 0 for p in ports}
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    ready, _, _ = select.select(list(socks), [], [], 0.1)
    for s in ready:
        s.recv(2048)
        counts[socks[s]] += 1
print(json.dumps(counts), flush=True)
"""


def without_candidates(sdp: str) -> str:
    return "".join(line for line in sdp.splitlines(keepends=True) if "a=candidate" not in line)


def candidate(address: str, port: int, protocol: str = "udp", n: int = 1) -> dict[str, object]:
    line = f"candidate:{n} 1 {protocol} 2122260223 {address} {port} typ host generation 0"
    return {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0}


async def offer(client: ConsultClient, init: dict[str, object]) -> str:
    """'ack', or the error code the server answered."""
    try:
        await client.request({"type": "ice_candidate", "pc": "publisher", "candidate": init})
    except ClientError as exc:
        return exc.code
    return "ack"


async def test_candidates_are_capped_and_validated_and_the_victim_sees_only_what_was_allowed(
    server_factory: Callable[..., object],
) -> None:
    with netns_link() as link:
        server: RunningServer = await server_factory(  # type: ignore[operator]
            media={"ice_addresses": ["127.0.0.1", link.root_addr]}
        )
        ephemeral = list(range(40000, 40020))
        victim = link.popen(
            [sys.executable, "-c", VICTIM, link.ns_addr, ",".join(map(str, [53, *ephemeral])), "6"],
            stdout=asyncio.subprocess.PIPE,
            text=True,
        )
        assert victim.stdout is not None and victim.stdout.readline().strip() == "ready"
        # an offer without candidates: the server's ICE checks only what is trickled below
        doctor = ConsultClient(
            server.ws_url,
            server.token("weapon", "doctor", Role.SPECIALIST),
            ice_addresses=["127.0.0.1"],
            publisher_offer_filter=without_candidates,
        )
        publishing: asyncio.Task[object] | None = None
        try:
            await doctor.connect()
            await doctor.join()
            publishing = asyncio.create_task(doctor.publish([(ToneTrack(), Source.MICROPHONE)]))
            await doctor.wait_event("publish_answer", timeout=10)
            refused = {
                "service port": await offer(doctor, candidate(link.ns_addr, 53)),
                "tcp": await offer(doctor, candidate(link.ns_addr, 40000, "tcp")),
                "dns name": await offer(doctor, candidate("victim.example.org", 40000)),
                "link-local": await offer(doctor, candidate("169.254.10.1", 40000)),
                "multicast": await offer(doctor, candidate("224.0.0.251", 40000)),
                "broadcast": await offer(doctor, candidate("255.255.255.255", 40000)),
            }
            assert set(refused.values()) == {"bad_message"}, refused
            answers = [
                await offer(doctor, candidate(link.ns_addr, port, n=i))
                for i, port in enumerate(ephemeral)
            ]
            # 16 taken at most
            assert answers[:16] == ["ack"] * 16 and set(answers[16:]) == {"bad_message"}, answers
            # the call goes on
            assert (await doctor.request({"type": "ping"}))["type"] == "pong"
        finally:
            if publishing is not None:
                publishing.cancel()
                await asyncio.gather(publishing, return_exceptions=True)
            await doctor.leave()
        out, _ = await asyncio.to_thread(victim.communicate, timeout=15)
        counts = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}
        assert counts[53] == 0, counts
        assert all(counts[p] == 0 for p in ephemeral[16:]), counts
        # (the accepted ones get no checks either here: the doctor's own checks completed the
        # server's ICE before these were trickled, and aioice starts no new checks once its
        # check list has completed; the cap bounds what it could send: 16 x its retransmits)
        assert sum(counts.values()) <= 16 * 10, counts
