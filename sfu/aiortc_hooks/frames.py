"""Encoded frames: aiortc's encoder output before packetization, its decoder input.

Browsers have encoded-frame transforms (RTCRtpScriptTransform): a page sees
each encoded frame after the encoder and before RTP packetization, and each
received frame after depacketization and before the decoder. aiortc has no
such API; these two hooks give its sender and receiver one, which the Python
client's end-to-end encryption (signaling/client_e2ee.py) uses.

* Sending: ``RTCRtpSender._next_encoded_frame`` returns the encoder's output
  already packetized. For VP8 each payload starts with the VP8 payload
  descriptor (RFC 7741), which is RTP's business and stays outside the
  transform: the payloads are joined into the VP8 frame (the bitstream), the
  transform runs on it, and the result is packetized again as aiortc would
  (``Vp8Encoder._packetize``, same picture id). Other codecs' payloads (Opus:
  one Opus packet each, a frame) go through the transform one by one.
* Receiving: the receiver hands each reassembled frame to its decoder thread
  through a queue (``RTCRtpReceiver.__decoder_queue``); it is replaced, before
  the receiver starts, by one that runs the transform on each frame first.

A transform returning None drops the frame (nothing is sent; the decoder
never sees it); one that raises drops it too (logged), and the sender or
receiver keeps running. Part of sfu/aiortc_hooks (aiortc's private API, pinned to
aiortc 1.16.0).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from typing import Any

from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor, vp8_depayload
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCEncodedFrame, RTCRtpSender

FrameTransform = Callable[[str, bytes], bytes | None]
"""(codec name: ``"VP8"``, ``"opus"``...; one encoded frame) -> the frame to use (None: drop)."""

_MARK = "_digiclinic_frame_transform"

logger = logging.getLogger(__name__)


def _run(transform: FrameTransform, codec: str, frame: bytes) -> bytes | None:
    try:
        return transform(codec, frame)
    except Exception:
        logger.exception("a %s frame transform failed: the frame is dropped", codec)
        return None


def vp8_frame(payloads: list[bytes]) -> tuple[bytes, int | None]:
    """The VP8 frame in one frame's RTP payloads (descriptors removed), and its picture id."""
    descriptor, _ = VpxPayloadDescriptor.parse(payloads[0])
    return b"".join(vp8_depayload(p) for p in payloads), descriptor.picture_id


def vp8_payloads(frame: bytes, picture_id: int | None) -> list[bytes]:
    """``frame`` packetized as aiortc's VP8 encoder does (descriptor with the picture id)."""
    payloads: list[bytes] = Vp8Encoder._packetize(frame, picture_id or 0)
    return payloads


def transform_sent_frames(sender: RTCRtpSender, transform: FrameTransform) -> None:
    """Run ``transform`` on every encoded frame ``sender`` sends, before packetization.

    Replaces the per-instance ``_next_encoded_frame`` that aiortc's send loop
    awaits for each frame (encoded from the track, or a pre-encoded packet).
    Idempotent: a sender is hooked once.
    """
    if getattr(sender, _MARK, False):
        return
    stock = sender._next_encoded_frame

    async def next_encoded_frame(codec: RTCRtpCodecParameters) -> RTCEncodedFrame | None:
        encoded = await stock(codec)
        if encoded is None or not encoded.payloads:
            return encoded
        if codec.name.upper() == "VP8":
            frame, picture_id = vp8_frame(encoded.payloads)
            out = _run(transform, codec.name, frame)
            if out is None:
                return None
            encoded.payloads = vp8_payloads(out, picture_id)
            return encoded
        done = (_run(transform, codec.name, payload) for payload in encoded.payloads)
        payloads = [payload for payload in done if payload is not None]
        if not payloads:
            return None
        encoded.payloads = payloads
        return encoded

    setattr(sender, "_next_encoded_frame", next_encoded_frame)  # noqa: B010
    setattr(sender, _MARK, True)


class _TransformingQueue(queue.Queue[Any]):
    """The decoder thread's input: each (codec, JitterFrame) goes through the transform first."""

    def __init__(self, transform: FrameTransform) -> None:
        super().__init__()
        self._transform = transform

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is not None:  # None: the receiver stops its decoder thread
            codec, frame = item
            data = _run(self._transform, codec.name, bytes(frame.data))
            if data is None:
                return
            frame.data = data
        super().put(item, block, timeout)


def transform_received_frames(receiver: RTCRtpReceiver, transform: FrameTransform) -> bool:
    """Run ``transform`` on every frame ``receiver`` reassembles, before its decoder.

    Call before the receiver starts (after setRemoteDescription, before the
    connection is up): the decoder thread takes the queue when it starts.
    False if it had started already (then nothing is hooked). Idempotent.
    """
    if getattr(receiver, _MARK, False):
        return True
    if receiver._RTCRtpReceiver__started:  # type: ignore[attr-defined]
        return False
    setattr(receiver, "_RTCRtpReceiver__decoder_queue", _TransformingQueue(transform))  # noqa: B010
    setattr(receiver, _MARK, True)
    return True
