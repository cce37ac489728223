"""ConsultClient's end-to-end encryption (docs/e2ee.md): the twin of web-client/client/e2ee.js.

Owns the consult keys given (by key id), which one frames are sent with, the
room's mode and who in it sends in clear. ``encrypt`` and ``decrypt`` are the
frame transforms client_media.py hooks into aiortc (sfu/aiortc_hooks/frames.py):
every VP8 and Opus frame sent is encrypted (format v1, e2ee/frames.py) before
packetization, every frame received is decrypted before decoding, and one that
does not decrypt is dropped, never decoded.

Rotation (``set_key`` with another key id), as in the browser: the new key
decrypts at once and encrypts ``ROTATE_SEND_DELAY`` seconds later, so every
page holds it before the first frame under it arrives; the previous key still
decrypts for ``KEY_OVERLAP`` seconds after that.

For tests: ``on_raw_frame`` sees every received frame as it came, before
decryption (what the server forwarded); ``counts`` and ``receive_states``
say what happened to the frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from e2ee.frames import (
    ConsultKey,
    FrameError,
    FrameKind,
    decrypt_capture,
    decrypt_frame,
    encrypt_capture,
    encrypt_frame,
    frame_key_id,
    parse_key,
)

ROTATE_SEND_DELAY = 1.0  # seconds: e2ee.js's ROTATE_SEND_DELAY_MS
KEY_OVERLAP = 10.0  # seconds: e2ee.js's KEY_OVERLAP_MS

CODEC_KINDS = {"vp8": FrameKind.VP8, "opus": FrameKind.OPUS}
"""The codecs an end-to-end encrypted room carries (by aiortc's codec name, lower case)."""


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One received frame as it arrived, before decryption."""

    participant_id: str | None  # whose (None: not known yet)
    codec: str  # aiortc's codec name: "VP8", "opus"
    data: bytes


@dataclass(slots=True)
class FrameCounts:
    """What happened to the frames so far (the browser worker's counts)."""

    encrypted: int = 0
    decrypted: int = 0
    dropped: int = 0  # not sent (no key, another codec) or not decrypted
    passed: int = 0  # in a room whose mode is off, or from a participant sending in clear
    by_key: dict[int, int] = field(default_factory=dict)  # frames decrypted, per key id


class FrameCrypto:
    """The keys and the frame transforms of one ConsultClient."""

    def __init__(
        self, key: str | None = None, on_raw_frame: Callable[[RawFrame], None] | None = None
    ) -> None:
        self.keys: dict[int, ConsultKey] = {}
        self.raw_keys: dict[int, bytes] = {}  # every key given, by id (captures)
        self.send_key_id: int | None = None
        self.key_id: int | None = None  # the latest key given
        self.mode = "off"  # the room's (``joined``)
        self.clear_senders: set[str] = set()  # participants whose frames come in clear
        self.counts = FrameCounts()
        # (participant id, codec) -> "ok", "no-key", "wrong-key", "clear": the latest frame's
        self.receive_states: dict[tuple[str | None, str], str] = {}
        self.on_raw_frame = on_raw_frame
        self._timers: set[asyncio.TimerHandle] = set()
        if key is not None:
            self.set_key(key)

    @property
    def has_key(self) -> bool:
        return self.key_id is not None

    @property
    def encrypting(self) -> bool:
        """Our frames are end-to-end encrypted: the room's mode says so and we have the key."""
        return self.mode != "off" and self.has_key

    # -- keys ----------------------------------------------------------------------------

    def set_key(self, text: str) -> None:
        """The consult key ("<key id>.<base64url>"): the first, or a new one (a rotation)."""
        key_id, raw = parse_key(text)
        previous = self.send_key_id
        self.keys[key_id] = ConsultKey.from_raw(key_id, raw)
        self.raw_keys[key_id] = raw  # captures outlive rotations: every key given is kept
        self.key_id = key_id
        if previous is None or previous == key_id:
            self.send_key_id = key_id
            return

        def send_with() -> None:
            if self.key_id != key_id:
                return  # rotated again meanwhile
            self.send_key_id = key_id
            self._later(KEY_OVERLAP, forget)

        def forget() -> None:
            if self.send_key_id != previous:
                self.keys.pop(previous, None)

        self._later(ROTATE_SEND_DELAY, send_with)

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def run() -> None:
            self._timers.discard(handle)
            callback()

        handle = loop.call_later(delay, run)
        self._timers.add(handle)

    # -- the room ------------------------------------------------------------------------

    def joined(self, reply: dict[str, Any]) -> None:
        """The ``joined`` reply: the room's mode, and who is in it."""
        mode = reply.get("e2ee")
        self.mode = mode if mode in ("off", "optional", "required") else "off"
        self.roster(reply.get("participants"))

    def roster(self, participants: Any) -> None:
        """A list of roster entries (``joined``, ``admitted``)."""
        for info in participants if isinstance(participants, list) else []:
            self.participant(info)

    def participant(self, info: Any) -> None:
        """One roster entry (``participant_joined``): whether its frames come in clear."""
        if not isinstance(info, dict) or not isinstance(info.get("id"), str):
            return
        if info.get("e2ee"):
            self.clear_senders.discard(info["id"])
        else:
            self.clear_senders.add(info["id"])

    def left(self, participant_id: Any) -> None:
        if isinstance(participant_id, str):
            self.clear_senders.discard(participant_id)

    # -- the frame transforms ------------------------------------------------------------

    def encrypt(self, codec: str, frame: bytes) -> bytes | None:
        """One frame we send (sfu/aiortc_hooks/frames.py's FrameTransform); None: not sent."""
        if not self.encrypting or not frame:
            return frame
        kind = CODEC_KINDS.get(codec.lower())
        key = None if self.send_key_id is None else self.keys.get(self.send_key_id)
        if kind is None or key is None:  # never in clear
            self.counts.dropped += 1
            return None
        self.counts.encrypted += 1
        return encrypt_frame(key, kind, frame)

    def decryptor(self, sender: Callable[[], str | None]) -> Callable[[str, bytes], bytes | None]:
        """The transform for one receiver; ``sender`` says whose frames it carries now."""

        def decrypt(codec: str, frame: bytes) -> bytes | None:
            return self.decrypt(sender(), codec, frame)

        return decrypt

    def decrypt(self, participant_id: str | None, codec: str, frame: bytes) -> bytes | None:
        """One frame received from ``participant_id``; None: dropped (it does not decrypt)."""
        if self.mode == "off":
            return frame
        if self.on_raw_frame is not None:
            self.on_raw_frame(RawFrame(participant_id, codec, frame))
        at = (participant_id, codec)
        # a required room never takes a frame in clear, whatever the roster says
        clear = self.mode != "required" and participant_id in self.clear_senders
        if not frame or (participant_id is not None and clear):
            self.counts.passed += 1
            self.receive_states[at] = "clear"
            return frame
        kind = CODEC_KINDS.get(codec.lower())
        key_id = frame_key_id(frame)
        try:
            if kind is None:
                raise FrameError(f"{codec} is not end-to-end encrypted")
            plain = decrypt_frame(self.keys, kind, frame)
        except FrameError:
            self.counts.dropped += 1
            known = key_id is not None and key_id in self.keys
            self.receive_states[at] = "wrong-key" if known or kind is None else "no-key"
            return None
        self.counts.decrypted += 1
        assert key_id is not None
        self.counts.by_key[key_id] = self.counts.by_key.get(key_id, 0) + 1
        self.receive_states[at] = "ok"
        return plain

    # -- clinical captures (signaling/client_captures.py) --------------------------------

    def seal_capture(self, data: bytes) -> tuple[bytes, int] | None:
        """A capture (or note) sealed under the send key, and its key id; None if not encrypting."""
        if not self.encrypting or self.send_key_id is None:
            return None
        key_id = self.send_key_id
        return encrypt_capture(key_id, self.raw_keys[key_id], data), key_id

    def open_capture(self, data: bytes) -> bytes:
        """A sealed capture opened (FrameError if no key given opens it)."""
        return decrypt_capture(self.raw_keys, data)

    def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
