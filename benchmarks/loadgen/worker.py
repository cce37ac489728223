"""A load-generator worker process: runs its share of a step's participants.

The coordinator (benchmarks/runner.py) starts several of these so the load
generator is not the bottleneck. Control runs over a multiprocessing pipe:

    coordinator -> worker   ("snapshot", tag) | ("stop",)
    worker -> coordinator   ("progress", dict) every second
                            ("snapshot", tag, dict) in reply
                            ("done", dict) after stop
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import resource
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from aiortc import RTCRtpTransceiver

from benchmarks.loadgen.janus_member import JanusMember
from benchmarks.loadgen.rtp_source import RtpReplaySender, route_rtcp
from benchmarks.loadgen.traffic_sink import TrafficSink
from benchmarks.scenario import ParticipantSpec
from benchmarks.synthetic_media import opus_clip, vp8_clip
from sfu import aiortc_hooks
from sfu.media import Source
from signaling.client import ConsultClient

logger = logging.getLogger(__name__)
CLONE_NEWNET = 0x40000000


@dataclass
class WorkerPlan:
    worker_id: int
    ws_url: str
    specs: list[ParticipantSpec]
    tokens: dict[str, str]  # spec key -> join token
    start_at: float  # time.monotonic() of step start (shared clock)
    video_bitrate: int
    loopback: bool = True
    sample_every: int = 10
    stamped: bool = True  # latency trailers in payloads (not for a server that decodes)
    server: str = "digiclinic"  # or "janus": its VideoRoom API (benchmarks/loadgen/janus_member.py)
    netns: str | None = None  # enter this network namespace first (a Janus step)
    address: str = "127.0.0.1"  # the host address our ICE offers


@dataclass
class Member:
    spec: ParticipantSpec
    client: ConsultClient | JanusMember | None = None
    sink: TrafficSink | None = None
    senders: list[RtpReplaySender] = field(default_factory=list)
    joined_at: float | None = None
    left: bool = False
    error: str | None = None
    reconnections: int = 0

    def gone(self) -> bool:
        return self.left


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Worker:
    def __init__(self, conn: Connection, plan: WorkerPlan) -> None:
        self.conn = conn
        self.plan = plan
        self.members = [Member(spec) for spec in plan.specs]
        self.video = vp8_clip(bitrate=plan.video_bitrate)
        self.audio = opus_clip()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self._on_command)
        # uvloop makes a watched descriptor non-blocking; the pipe's one socket also carries
        # our snapshots, and a large one (400 subscribers) then went out half-written
        # (EAGAIN mid-message) and the coordinator read garbage ("invalid load key")
        os.set_blocking(self.conn.fileno(), True)
        for member in self.members:
            loop.call_at(self._when(member.spec.join_at), self._start_join, member)
            if member.spec.leave_at is not None:
                loop.call_at(self._when(member.spec.leave_at), self._start_leave, member)
            if member.spec.reconnect_at is not None:
                loop.call_at(self._when(member.spec.reconnect_at), self._start_reconnect, member)
        progress = loop.create_task(self._progress())
        await self.stopping.wait()
        progress.cancel()
        with contextlib.suppress(OSError, ValueError):
            loop.remove_reader(self.conn.fileno())
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(self._leave(m) for m in self.members), return_exceptions=True)
        with contextlib.suppress(OSError):  # the coordinator may be gone
            self.conn.send(("done", self._snapshot(clear=False)))

    def _start_join(self, member: Member) -> None:
        self._spawn(self._join(member))

    def _start_leave(self, member: Member) -> None:
        self._spawn(self._leave(member))

    def _start_reconnect(self, member: Member) -> None:
        self._spawn(self._reconnect(member))

    def _when(self, offset: float) -> float:
        loop = asyncio.get_running_loop()
        return loop.time() + (self.plan.start_at + offset - time.monotonic())

    def _on_command(self) -> None:
        try:
            while self.conn.poll():
                self._handle(self.conn.recv())
        except (EOFError, OSError):  # the coordinator is gone: stop rather than spin
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
            self.stopping.set()

    def _handle(self, command: tuple[Any, ...]) -> None:
        if command[0] == "snapshot":
            self.conn.send(("snapshot", command[1], self._snapshot(clear=True)))
        elif command[0] == "stop":
            self.stopping.set()

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            joined = sum(1 for m in self.members if m.joined_at is not None and not m.left)
            received = sum(m.sink.packets for m in self.members if m.sink is not None)
            sent = sum(s.packets_sent for m in self.members for s in m.senders)
            errors = sum(1 for m in self.members if m.error)
            reconnections = sum(m.reconnections for m in self.members)
            reasons = sorted({m.error for m in self.members if m.error})[:3]
            self.conn.send(
                (
                    "progress",
                    {
                        "joined": joined,
                        "received": received,
                        "sent": sent,
                        "errors": errors,
                        "reconnections": reconnections,
                        "error_reasons": reasons,
                        "cpu": cpu_seconds(),
                    },
                )
            )

    async def _join(self, member: Member, resume: str | None = None) -> None:
        if self.plan.server == "janus":
            await self._join_janus(member)
            return
        spec = member.spec
        sink = TrafficSink(self.plan.sample_every) if spec.subscribe else None
        client = ConsultClient(
            self.plan.ws_url,
            self.plan.tokens[spec.key],
            ice_addresses=["127.0.0.1"] if self.plan.loopback else None,
            auto_subscribe=spec.subscribe,
            media_sink=sink,
            subscriber_offer_filter=sink.learn_offer if sink is not None else None,
        )
        client.resume = resume  # a rejoin after a dropped connection (single-use tokens)
        member.client, member.sink = client, sink
        try:
            if sink is not None:
                sink.joined_at = time.monotonic()
                sink.unprotect = lambda: _unprotector(client)
            await client.connect()
            await client.join()
            member.joined_at = time.monotonic()
            sources = []
            if spec.publish_audio:
                sources.append(Source.MICROPHONE)
            if spec.publish_video:
                sources.append(Source.CAMERA)
            if sources:
                await self._publish(member, client, sources)
        except Exception as exc:  # a failed join is a result, not a crash
            member.error = f"{type(exc).__name__}: {exc}"[:200]

    async def _join_janus(self, member: Member) -> None:
        """The same participant in Janus's VideoRoom (a publisher publishes both sources)."""
        spec = member.spec
        sink = TrafficSink(self.plan.sample_every) if spec.subscribe else None
        client = JanusMember(
            self.plan.ws_url,
            self.plan.address,
            media_sink=sink,
            offer_filter=sink.learn_offer if sink is not None else None,
        )
        member.client, member.sink = client, sink
        try:
            if sink is not None:
                sink.joined_at = time.monotonic()
                sink.unprotect = lambda: _unprotector(client)
                await client.subscribe(asyncio.get_running_loop().time() + 30.0)
            elif spec.publish_audio or spec.publish_video:
                sources = [
                    s
                    for s, on in (
                        (Source.MICROPHONE, spec.publish_audio),
                        (Source.CAMERA, spec.publish_video),
                    )
                    if on
                ]
                await self._publish(member, client, sources)
            member.joined_at = time.monotonic()
        except Exception as exc:  # a failed join is a result, not a crash
            member.error = f"{type(exc).__name__}: {exc}"[:200]

    async def _publish(
        self, member: Member, client: ConsultClient | JanusMember, sources: list[Source]
    ) -> None:
        senders: list[RtpReplaySender] = []

        def start() -> None:
            for sender in senders:
                sender.start()

        transceivers: list[RTCRtpTransceiver]
        if isinstance(client, JanusMember):
            transceivers = await client.publish([s.kind.value for s in sources], start)
        else:
            transceivers = await client.publish_raw(sources, start)
        for transceiver, source in zip(transceivers, sources, strict=True):
            clip = self.video if source is Source.CAMERA else self.audio
            senders.append(
                RtpReplaySender(transceiver, clip, transceiver.mid or "", self.plan.stamped)
            )
        member.senders = senders
        dtls = aiortc_hooks.dtls_transport(transceivers[0])
        aiortc_hooks.take_over_transport(dtls, lambda data, ms: None, route_rtcp(senders))
        if dtls.state == "connected":
            start()

    async def _reconnect(self, member: Member) -> None:
        """Drop the connection without ``leave`` (a lost network), then join again."""
        client = member.client
        if member.left or not isinstance(client, ConsultClient) or member.joined_at is None:
            return
        for sender in member.senders:
            await sender.stop()
        member.senders = []
        with contextlib.suppress(Exception):
            await client.close()  # WebSocket and transports gone, no leave message
        if member.gone():  # its leave time came while it was dropping
            return
        member.reconnections += 1
        await self._join(member, resume=client.resume)

    async def _leave(self, member: Member) -> None:
        if member.left or member.client is None:
            return
        member.left = True
        for sender in member.senders:
            await sender.stop()
        with contextlib.suppress(Exception):
            await member.client.close()

    def _snapshot(self, clear: bool) -> dict[str, Any]:
        people: dict[str, Any] = {}
        for member in self.members:
            sink = member.sink
            entry: dict[str, Any] = {
                "joined": member.joined_at is not None,
                "left": member.left,
                "error": member.error,
                "sent": sum(s.packets_sent for s in member.senders),
                "keyframe_requests": sum(s.keyframe_requests for s in member.senders),
            }
            if sink is not None:
                entry["streams"] = sink.snapshot()
                entry["latency_ns"] = list(sink.latency_ns)
                if clear:
                    sink.latency_ns.clear()
                if sink.first_video_at is not None and sink.joined_at is not None:
                    entry["first_video_s"] = sink.first_video_at - sink.joined_at
            people[member.spec.key] = entry
        return {"cpu": cpu_seconds(), "at": time.monotonic(), "participants": people}


def _unprotector(client: ConsultClient | JanusMember) -> Any:
    pc = client.subscriber_pc
    if pc is None or not pc.getTransceivers():
        return None
    return aiortc_hooks.srtp_unprotector(pc.getTransceivers()[0])


def enter_namespace(name: str) -> None:
    """Move this whole process into network namespace ``name`` (before any socket)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
    finally:
        os.close(fd)


def worker_main(conn: Connection, plan: WorkerPlan) -> None:
    """Process entry point (multiprocessing 'spawn')."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when to stop
    if plan.netns is not None:
        enter_namespace(plan.netns)
    logging.basicConfig(level=logging.ERROR)
    for noisy in ("aiortc", "aioice"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        import uvloop  # noqa: PLC0415 - optional, per-process

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(Worker(conn, plan).run())
