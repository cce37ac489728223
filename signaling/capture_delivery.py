"""Complete captures sent to the participants who fetch them, paced for each one's downlink.

The pace is the participant's downlink estimate (the transport-wide estimate
the SFU keeps for its subscriber connection, sfu/downlink.py) less the audio
and video being forwarded to it, times ``SHARE``, never below the configured
floor: a capture takes what the live media leaves, so the audio is never
starved by it (docs/capture.md). Chunks are a quarter second of that budget
(512 bytes at least), so none waits long in a thin link's queue ahead of an
audio packet. One task per (participant, capture), owned here and cancelled
when the participant leaves or the service closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from sfu.participant import Participant
from signaling import capture_frames

logger = logging.getLogger(__name__)

SHARE = 0.8  # of what the live media leaves
UNKNOWN_RATE = 2_000_000.0  # bit/s, before a subscriber connection exists
MAX_RATE = 50_000_000.0
MIN_CHUNK = 512
CHUNK_SECONDS = 0.25
BACKLOG = 4  # events queued for the WebSocket beyond which the next chunk waits


class Outlet(Protocol):
    """A participant's WebSocket (the signalling session)."""

    def send_bytes(self, frame: bytes) -> bool:
        """Queue a binary frame; False once the connection is closed."""
        ...

    @property
    def backlog(self) -> int:
        """Frames and events queued, not yet written."""
        ...


def downlink_budget(participant: Participant, floor: float) -> float:
    """bit/s a capture may take on ``participant``'s downlink now."""
    subscriber = participant.subscriber
    if subscriber is None:
        return UNKNOWN_RATE
    downlink = subscriber.downlink
    spare = downlink.estimator.estimate - downlink.audio_rate - downlink.video_rate
    return max(floor, min(MAX_RATE, spare * SHARE))


def chunk_size(rate: float, chunk_max: int) -> int:
    return int(min(chunk_max, max(MIN_CHUNK, rate / 8 * CHUNK_SECONDS)))


class Deliveries:
    def __init__(self, chunk_max: int, floor: float) -> None:
        self.chunk_max = chunk_max
        self.floor = floor
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def start(
        self, participant: Participant, capture_id: str, data: bytes, offset: int, outlet: Outlet
    ) -> None:
        key = (participant.id, capture_id)
        old = self._tasks.pop(key, None)
        if old is not None:
            old.cancel()  # a newer fetch (after a reconnection) replaces it
        task = asyncio.get_running_loop().create_task(
            self._send(participant, capture_id, data, offset, outlet)
        )
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._done(key, t))

    def _done(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            logger.error("capture delivery failed", exc_info=task.exception())

    async def _send(
        self, participant: Participant, capture_id: str, data: bytes, offset: int, outlet: Outlet
    ) -> None:
        position = offset
        while position < len(data):
            rate = downlink_budget(participant, self.floor)
            piece = data[position : position + chunk_size(rate, self.chunk_max)]
            frame = capture_frames.encode(capture_frames.DOWNLOAD, capture_id, position, piece)
            if not outlet.send_bytes(frame):
                return  # the connection is gone: the client fetches again from where it stopped
            position += len(piece)
            # a WebSocket that is not keeping up (TCP's own window) holds the next chunk back
            await asyncio.sleep(len(piece) * 8 / rate + 0.05 * max(0, outlet.backlog - BACKLOG))

    def sending(self, participant_id: str) -> int:
        return sum(1 for pid, _ in self._tasks if pid == participant_id)

    def cancel_for(self, participant_id: str) -> None:
        for key in [k for k in self._tasks if k[0] == participant_id]:
            self._tasks.pop(key).cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
