"""One participant's recording: RTP taps -> WebM -> encrypted chunks on disk.

The packet path only appends to the WebM muxer (in memory) and, once a
second, hands the new bytes to a writer thread that encrypts and fsyncs
them. If the disk falls behind (the queue holds more than ``MAX_BACKLOG``
chunks) the newest bytes are dropped and the gap is counted: forwarding is
never stalled by recording. Every chunk is signed with the server's signing
key (crypto_stream, signing). A ``.done`` marker is written after the final
chunk, so a restart can tell complete recordings from interrupted ones
without decrypting anything; ``sealed`` then holds the chunk count and the
hash-chain digest, which the room recording writes to the audit log.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recording.crypto_stream import EncryptedWriter, RecipientKey
from recording.private_files import write_private
from recording.webm_writer import ParticipantWebm
from sfu.media import MediaKind
from sfu.producer import Producer
from sfu.rtp import RtpPacket

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0
MAX_BACKLOG = 5


def request_recorded_keyframe(producer: Producer) -> None:
    """A keyframe of the layer the recorder taps: the top one (``Producer.taps``).

    With simulcast the lowest layer's keyframe (``request_keyframe()``'s default)
    would not help: the recording would wait for the top layer's next one.
    """
    producer.request_keyframe(len(producer.layers) - 1)


class WritingState(enum.Enum):
    WRITING = "writing"
    PAUSED = "paused"  # consent missing: nothing of this participant is written
    CLOSED = "closed"


class ParticipantRecording:
    def __init__(
        self,
        directory: Path,
        recording_id: str,
        participant_id: str,
        recipients: list[RecipientKey],
        metadata: dict[str, Any],
        *,
        signing_key: Ed25519PrivateKey,
    ) -> None:
        self.participant_id = participant_id
        self.recording_id = recording_id
        self.file_id = f"{recording_id}-{participant_id}"
        self.state = WritingState.PAUSED
        self.gaps = 0
        self._webm = ParticipantWebm(video=True, audio=True)
        self.path = directory / f"{self.file_id}.rec"
        # the file is created by the writer thread: no disk I/O on the event loop
        self._writer_args = (directory, recipients, {**metadata, "participant": participant_id})
        self._signing_key = signing_key
        self._writer: EncryptedWriter | None = None
        self.sealed: tuple[int, str] | None = None  # (chunks, digest) once complete
        self._queue: queue.Queue[tuple[bytes, bool] | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._write_loop, name="recording-writer", daemon=True
        )
        self._thread.start()
        self._last_flush = time.monotonic()
        self._start_ms: int | None = None
        self._producers: list[tuple[Producer, Any]] = []

    @property
    def frames_written(self) -> tuple[int, int]:
        """Video and audio frames written so far (video starts at the first keyframe)."""
        return self._webm.video_frames, self._webm.audio_frames

    # -- packet path (event loop) ----------------------------------------------------

    def attach(self, producer: Producer) -> None:
        kind = producer.kind

        def tap(packet: RtpPacket, arrival_ms: int) -> None:
            if self.state is not WritingState.WRITING:
                return
            if self._start_ms is None:
                self._start_ms = arrival_ms
            at = arrival_ms - self._start_ms
            if kind is MediaKind.VIDEO:
                self._webm.add_video(packet, at)
                if self._webm.awaiting_keyframe:  # none yet, or lost: ask again if unanswered
                    producer.request_keyframe_if_unanswered(len(producer.layers) - 1)
            else:
                self._webm.add_audio(packet, at)
            if time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
                self.flush()

        producer.taps.append(tap)
        self._producers.append((producer, tap))

    def set_writing(self, writing: bool) -> None:
        """Synchronous: once this returns no further packet is written (withdrawal)."""
        if self.state is WritingState.CLOSED:
            return
        self.state = WritingState.WRITING if writing else WritingState.PAUSED
        if not writing:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        data = self._webm.drain()
        if not data:
            return
        if self._queue.qsize() >= MAX_BACKLOG:
            self.gaps += 1  # the disk is slower than the media: drop, never stall
            logger.warning("recording %s: disk behind, gap recorded", self.recording_id)
            return
        self._queue.put((data, False))

    def close(self) -> None:
        """Final chunk, then the .done marker; returns once everything is on disk.

        Blocks until the writer thread is done: call it in an executor.
        """
        if self.state is WritingState.CLOSED:
            return
        self.state = WritingState.CLOSED
        for producer, tap in self._producers:
            if tap in producer.taps:
                producer.taps.remove(tap)
        self._queue.put((self._webm.close(), True))
        self._queue.put(None)
        self._thread.join()

    # -- writer thread ------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            data, final = item
            try:
                if self._writer is None:
                    directory, recipients, metadata = self._writer_args
                    self._writer = EncryptedWriter(
                        directory,
                        self.file_id,
                        recipients,
                        metadata,
                        signing_key=self._signing_key,
                    )
                if final:
                    self._writer.close(data)
                    self.sealed = (self._writer.index, self._writer.digest)
                    write_private(self.path.with_suffix(".done"), f"{self.gaps}\n")
                else:
                    self._writer.write_chunk(data)
            except OSError:
                logger.exception("recording %s: write failed", self.recording_id)
                self.gaps += 1
