"""The export of an end-to-end encrypted consult: consult keys, frame decryption, remux.

In an end-to-end encrypted room (e2ee/mode.py) the pages encrypt every encoded
frame (e2ee/frames.py, format v1) and the recorder writes them as it gets them:
the recording's WebM holds VP8 and Opus frames that are still encrypted under
the consult key, inside the at-rest encryption for the hospital. Its header
metadata says so (``"e2ee": "v1"``, recording/room_recording.py).

After the at-rest layer is decrypted (recording/crypto_stream.py), this module
decrypts each frame with the consult key its key id names and remuxes the WebM
with PyAV: packets demuxed, their bytes replaced, timestamps and key-frame
flags kept. A frame that does not decrypt is left out and counted; after a
video frame is left out, the delta frames up to the next key frame are left
out too (they would decode into garbage without it).

Keys are never printed or logged: messages name key ids only.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from e2ee.frames import (
    VERSION,
    ConsultKey,
    FrameError,
    FrameKind,
    decrypt_frame,
    frame_key_id,
    parse_key,
)
from recording.crypto_stream import RecordingFormatError

FORMAT = f"v{VERSION}"
"""The header metadata's ``e2ee`` value of a recording whose frames are in format v1."""

KINDS = {"vp8": FrameKind.VP8, "opus": FrameKind.OPUS}


class ConsultKeyNeeded(ValueError):
    """The recording is end-to-end encrypted and no consult key was given."""


def frame_format(header: Mapping[str, Any]) -> str | None:
    """The recording's end-to-end frame format (``"v1"``), or None if its frames are clear.

    ValueError for a format this tool cannot read.
    """
    value = header.get("metadata", {}).get("e2ee")
    if value is None:
        return None
    if value != FORMAT:
        raise ValueError(
            f"the consult was end-to-end encrypted with frame format {value!r}; "
            f"this tool reads {FORMAT!r} only"
        )
    return FORMAT


def load_raw_keys(texts: Iterable[str], files: Iterable[Path]) -> dict[int, bytes]:
    """The consult keys given (``<key id>.<base64url>``, and files of one per line), by id.

    Blank lines and lines starting with ``#`` in a file are skipped. ValueError names
    where a bad key is, never the key.
    """
    given: list[tuple[str, str]] = [(text, "--consult-key") for text in texts]
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                given.append((line, f"{path} line {number}"))
    raws: dict[int, bytes] = {}
    for text, where in given:
        try:
            key_id, raw = parse_key(text)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if raws.get(key_id, raw) != raw:
            raise ValueError(f"{where}: key id {key_id} is given twice with different keys")
        raws[key_id] = raw
    return raws


def load_keys(texts: Iterable[str], files: Iterable[Path]) -> dict[int, ConsultKey]:
    """``load_raw_keys``, as frame keys."""
    raws = load_raw_keys(texts, files)
    return {key_id: ConsultKey.from_raw(key_id, raw) for key_id, raw in raws.items()}


def need_keys(frames: str) -> ConsultKeyNeeded:
    return ConsultKeyNeeded(
        f"the consult was end-to-end encrypted (frame format {frames}): its audio and video "
        "need the consult key(s) too. Give them with --consult-key <key id>.<key> "
        "(repeat it for rotated keys) or --consult-keys FILE (one per line). Nothing exported"
    )


@dataclass
class DecryptReport:
    """What the decryption of one recording did (no key material)."""

    decrypted: Counter[str] = field(default_factory=Counter)  # by stream kind: video, audio
    failed: Counter[int | None] = field(default_factory=Counter)  # by key id (None: too short)
    skipped: int = 0  # video delta frames left out after a failed frame, until a key frame
    given: frozenset[int] = frozenset()  # the key ids given
    problem: str | None = None  # why demuxing stopped early (a cut file)

    @property
    def failed_frames(self) -> int:
        return sum(self.failed.values())

    def summary(self) -> str:
        return (
            f"{self.decrypted['video']} video and {self.decrypted['audio']} audio frames "
            "decrypted with the consult key(s)"
        )

    def failures(self) -> str:
        """How many frames did not decrypt, by key id, with the likely reason."""
        reasons = []
        for key_id, count in sorted(self.failed.items(), key=lambda kv: (kv[0] is None, kv[0])):
            if key_id is None:
                reasons.append(f"{count} too short to be encrypted")
            elif key_id in self.given:
                reasons.append(f"key id {key_id}: {count}, the key given for it is wrong")
            else:
                reasons.append(f"key id {key_id}: {count}, no key given for it")
        text = f"{self.failed_frames} frames did not decrypt ({'; '.join(reasons)})"
        if self.skipped:
            text += f"; {self.skipped} video frames after them left out until the next key frame"
        return text


def decrypt_webm(data: bytes, keys: dict[int, ConsultKey]) -> tuple[bytes, DecryptReport]:
    """The WebM ``data`` with every VP8 and Opus frame decrypted, and what happened.

    Frames that do not decrypt are left out (see the module's description).
    """
    report = DecryptReport(given=frozenset(keys))
    out = io.BytesIO()
    try:
        source = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, OSError) as exc:  # e.g. a recording cut before its first frame
        raise RecordingFormatError(f"the recording's WebM cannot be read ({exc})") from None
    try:
        target = av.open(out, mode="w", format="webm")
        try:
            _remux(source, target, keys, report)
        finally:
            target.close()
    finally:
        source.close()
    return out.getvalue(), report


def _remux(source: Any, target: Any, keys: dict[int, ConsultKey], report: DecryptReport) -> None:
    streams: dict[int, tuple[Any, FrameKind, str]] = {}
    for stream in source.streams:
        kind = KINDS.get(stream.codec_context.name)
        if kind is None or stream.type not in ("video", "audio"):
            raise ValueError(f"the recording holds a {stream.codec_context.name} stream")
        streams[stream.index] = (target.add_stream_from_template(stream), kind, stream.type)
    broken = False  # a video frame was left out: wait for the next key frame
    try:
        for packet in source.demux():
            if packet.size == 0 or packet.pts is None:
                continue  # the demuxer's end-of-stream packets
            out_stream, kind, stream_type = streams[packet.stream.index]
            frame = bytes(packet)
            try:
                plain = decrypt_frame(keys, kind, frame)
            except FrameError:
                report.failed[frame_key_id(frame)] += 1
                broken = broken or kind is FrameKind.VP8
                continue
            key = packet.is_keyframe
            if kind is FrameKind.VP8:
                key = not plain[0] & 0x01  # the frame tag's P bit (in clear, authenticated)
                if broken and not key:
                    report.skipped += 1
                    continue
                broken = False
            copy = av.Packet(plain)
            copy.stream = out_stream
            copy.pts, copy.dts = packet.pts, packet.dts
            copy.time_base = packet.time_base
            if packet.duration:
                copy.duration = packet.duration
            copy.is_keyframe = key
            target.mux(copy)
            report.decrypted[stream_type] += 1
    except av.FFmpegError as exc:  # a recording cut short ends in a partial cluster
        report.problem = f"the WebM ends early ({exc}); exported what precedes it"
