"""One weak-link subscriber as a process: ``python -m benchmarks.loadgen.link_subscriber SPEC``.

The weak-link benchmark (benchmarks/weak_link.py) starts it inside a network
namespace whose downlink is capped by ``tbf`` (``ip netns exec``), or on
loopback behind the user-space relay (``"relay"`` in the spec). SPEC is a
JSON file::

    {"ws_url": "ws://10.250.7.1:8080/ws", "token": "...", "ice_address": "10.250.7.2",
     "seconds": 25, "out": "/tmp/.../sub-250.json",
     "relay": null | {"rate_bps": 250000, "queue_ms": 200, "burst_bytes": 4000}}

It joins, subscribes to everything, answers like a receiver (REMB, receiver
reports, NACK, PLI: see link_probe.py), records the media it gets and the
server's ``quality``/``track_paused`` events, and writes the JSON result
after ``seconds`` (or at SIGTERM). Times are seconds since the process
started its join.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiortc import RTCRtpTransceiver

from benchmarks.loadgen.link_probe import LinkProbe
from signaling.client import ConsultClient
from tests.helpers.udp_relay import LinkSettings, UdpImpairmentRelay

RECORDED_EVENTS = ("quality", "track_paused", "track_published", "subscriber_offer", "error")


def _first_transceiver(client: ConsultClient) -> RTCRtpTransceiver | None:
    pc = client.subscriber_pc
    if pc is None:
        return None
    transceivers = pc.getTransceivers()
    return transceivers[0] if transceivers else None


def _slim(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("type") == "subscriber_offer":
        return {"type": "subscriber_offer", "tracks": event.get("tracks", [])}
    return event


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    t0 = time.monotonic()
    probe = LinkProbe(t0)
    relay: UdpImpairmentRelay | None = None
    offer_filter = probe.learn_offer
    answer_filter = None
    if spec.get("relay"):
        r = spec["relay"]
        relay = UdpImpairmentRelay(
            down=LinkSettings(
                rate_bps=r["rate_bps"], queue_ms=r["queue_ms"], burst_bytes=r["burst_bytes"]
            )
        )
        await relay.start()
        the_relay = relay

        def offer_filter(sdp: str) -> str:
            return the_relay.rewrite_server_sdp(probe.learn_offer(sdp))

        answer_filter = relay.rewrite_client_sdp
    client = ConsultClient(
        spec["ws_url"],
        spec["token"],
        ice_addresses=[spec["ice_address"]],
        auto_subscribe=True,
        media_sink=probe,
        subscriber_offer_filter=offer_filter,
        subscriber_answer_filter=answer_filter,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    events: list[tuple[float, dict[str, Any]]] = []
    result: dict[str, Any] = {"error": None, "t0_monotonic": t0}

    async def watch_events() -> None:
        seen = 0
        state = client.state
        while True:
            await asyncio.sleep(0.05)
            now = round(time.monotonic() - t0, 3)
            for event in client.events[seen:]:
                if event.get("type") in RECORDED_EVENTS:
                    events.append((now, _slim(event)))
            seen = len(client.events)
            if client.state != state:  # e.g. "closed": the server dropped the WebSocket
                state = client.state
                events.append((now, {"type": "client_state", "state": state}))

    watcher = loop.create_task(watch_events())
    try:
        await client.connect()
        await client.join()
        result["joined_s"] = round(time.monotonic() - t0, 3)
        result["participant_id"] = client.participant_id
        probe.attach(lambda: _first_transceiver(client))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, t0 + spec["seconds"] - time.monotonic()))
    except Exception as exc:  # a failed join is a result, not a crash
        result["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        result["ended_s"] = round(time.monotonic() - t0, 3)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await probe.close()
        result.update(probe.summary())
        result["events"] = events
        counts: dict[str, int] = {}
        for event in client.events:
            kind = str(event.get("type"))
            counts[kind] = counts.get(kind, 0) + 1
        result["event_counts"] = counts
        if relay is not None:
            result["relay"] = asdict(relay.counters)
            relay.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.leave(), 5)
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    logging.basicConfig(level=logging.ERROR)
    for noisy in ("aiortc", "aioice"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    result = asyncio.run(run(spec))
    Path(spec["out"]).write_text(json.dumps(result))
    return 0 if result["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
