"""Clinical captures from the Python client (docs/capture.md): send, resume, fetch.

    sent = await send_capture(client, jpeg, kind="photo", mime="image/jpeg", width=1920)
    data = await fetch_capture(other, sent.capture_id)

Uploads resume where the server stopped (``resume_capture``): the server says the
offset, and only the bytes after it are sent (``CaptureUpload.bytes_sent`` counts
what this client put on the wire).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signaling import capture_frames
from signaling.client import ConsultClient
from signaling.client_errors import Event


@dataclass
class CaptureUpload:
    capture_id: str
    data: bytes
    chunk: int
    offset: int = 0
    bytes_sent: int = 0  # payload bytes this client sent, over every attempt


async def begin_capture(
    client: ConsultClient, data: bytes, *, kind: str, mime: str, **fields: Any
) -> CaptureUpload:
    """Announce a capture; an end-to-end encrypting client seals it (and its note) first."""
    sealed = client.e2ee.seal_capture(data)
    if sealed is not None:
        data, fields["e2ee"] = sealed
        note = fields.get("note")
        if note:
            sealed_note, _ = client.e2ee.seal_capture(str(note).encode()) or (b"", 0)
            fields["note"] = base64.urlsafe_b64encode(sealed_note).rstrip(b"=").decode()
    reply = await client.request(
        {
            "type": "capture_begin",
            "kind": kind,
            "mime": mime,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            **{k: v for k, v in fields.items() if v is not None},
        }
    )
    return CaptureUpload(reply["capture_id"], data, int(reply["chunk_max"]))


async def resume_capture(client: ConsultClient, upload: CaptureUpload) -> CaptureUpload:
    """Ask the server where this upload stands (after a reconnection)."""
    reply = await client.request({"type": "capture_resume", "capture_id": upload.capture_id})
    upload.offset = int(reply["offset"])
    return upload


async def send_chunks(
    client: ConsultClient,
    upload: CaptureUpload,
    *,
    chunk: int | None = None,
    stop_after: int | None = None,
    rate_bps: float | None = None,
) -> None:
    """Send from ``upload.offset``: every chunk's progress is awaited before the next.

    ``stop_after``: stop once this many bytes of the capture are acknowledged (to test
    a transfer cut short). ``rate_bps``: pace the chunks.
    """
    size = min(chunk or upload.chunk, upload.chunk)
    while upload.offset < len(upload.data):
        if stop_after is not None and upload.offset >= stop_after:
            return
        piece = upload.data[upload.offset : upload.offset + size]
        frame = capture_frames.encode(
            capture_frames.UPLOAD, upload.capture_id, upload.offset, piece
        )
        target = upload.offset + len(piece)
        await client.send_bytes(frame)
        upload.bytes_sent += len(piece)
        progress = await client.wait_event("capture_progress", where=_at(upload.capture_id, target))
        upload.offset = int(progress["offset"])
        if rate_bps:
            await asyncio.sleep(len(piece) * 8 / rate_bps)


def _at(capture_id: str, offset: int) -> Callable[[Event], bool]:
    return lambda e: e.get("capture_id") == capture_id and e.get("offset") == offset


async def send_capture(
    client: ConsultClient, data: bytes, *, kind: str, mime: str, **fields: Any
) -> CaptureUpload:
    upload = await begin_capture(client, data, kind=kind, mime=mime, **fields)
    await send_chunks(client, upload)
    return upload


async def fetch_capture(client: ConsultClient, capture_id: str, timeout: float = 30.0) -> bytes:
    """Fetch a complete capture (``capture_ready`` came) and return its bytes."""
    reply = await client.request({"type": "capture_fetch", "capture_id": capture_id})
    size = int(reply["size"])
    parts: dict[int, bytes] = {}

    def complete() -> bool:
        for frame in client.frames:
            chunk = capture_frames.decode(frame)
            if chunk.capture_id == capture_id and chunk.kind == capture_frames.DOWNLOAD:
                parts[chunk.offset] = chunk.data
        return sum(len(p) for p in parts.values()) >= size

    await client.wait_until(complete, timeout)
    return b"".join(parts[o] for o in sorted(parts))
