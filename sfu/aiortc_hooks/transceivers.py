"""Transceivers: keep aiortc's encoders/decoders out of the media path, read what was negotiated.

Part of sfu/aiortc_hooks (every use of aiortc's private API, pinned to aiortc 1.16.0).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters


def disable_stock_receiver(transceiver: RTCRtpTransceiver) -> None:
    """Never start RTCRtpReceiver: no decoder thread, no jitter buffer, no RTCP loop.

    RTCPeerConnection calls ``receiver.receive(params)`` once DTLS is up; the
    per-instance replacement makes that a no-op. Media arrives through
    :func:`take_over_transport` instead.
    """

    async def receive(parameters: Any) -> None:
        return None

    setattr(transceiver.receiver, "receive", receive)  # noqa: B010


def disable_stock_sender(
    transceiver: RTCRtpTransceiver, on_connected: Callable[[], None] | None = None
) -> None:
    """Never start RTCRtpSender (no encoder, no send loop, no zero-NTP SRs).

    ``on_connected`` is called when aiortc would have started the sender,
    i.e. once the DTLS transport is connected and parameters are negotiated.
    """

    async def send(parameters: Any) -> None:
        if on_connected is not None:
            on_connected()

    setattr(transceiver.sender, "send", send)  # noqa: B010


NACK_RETRY_TICK = 0.02  # seconds between looks at what is still missing
NACK_RETRY_MIN_WAIT = 0.1  # libwebrtc's round trip before it knows one
NACK_MAX_TRIES = 10  # as libwebrtc's NackRequester


def retry_nacks(transceiver: RTCRtpTransceiver) -> None:
    """Make a stock video receiver ask again for packets that stay missing.

    aiortc's receiver sends a NACK only when a new gap opens, so a
    retransmission lost on the link is asked for again only at the next
    loss, and its jitter buffer (512 packets) holds every later frame until
    then: seconds of frozen video at 10 % loss. Browsers (libwebrtc's
    NackRequester) ask again every round trip, up to ten times. This gives
    the receiver that behaviour: a packet is asked for again once it has
    been missing for twice the time repairs take (at least 100 ms), at most
    ten times. The loop runs while the receiver runs: aiortc's ``receive()``
    starts it and ``stop()`` (from ``RTCPeerConnection.close()``) cancels it.
    """
    receiver = transceiver.receiver
    generator = getattr(receiver, "_RTCRtpReceiver__nack_generator", None)
    if generator is None or getattr(receiver, "_digiclinic_nack_retry", False):
        return  # audio (aiortc never NACKs it), or done at an earlier negotiation
    retrier = _NackRetrier(generator.missing, receiver._send_rtcp_nack)
    stock_receive, stock_stop = receiver.receive, receiver.stop

    async def receive(parameters: Any) -> None:
        await stock_receive(parameters)
        retrier.start()

    async def stop() -> None:
        await retrier.stop()
        await stock_stop()

    setattr(receiver, "_send_rtcp_nack", retrier.send_nack)  # noqa: B010
    setattr(receiver, "receive", receive)  # noqa: B010
    setattr(receiver, "stop", stop)  # noqa: B010
    setattr(receiver, "_digiclinic_nack_retry", True)  # noqa: B010


class _NackRetrier:
    """The NACKs one receiver sent, and the loop that repeats the unanswered ones."""

    def __init__(
        self,
        missing: set[int],
        send_nack: Callable[[int, list[int]], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._missing = missing  # aiortc's NackGenerator keeps this set up to date
        self._send_nack = send_nack
        self._asked: dict[int, tuple[int, float, float]] = {}  # seq -> tries, first, last
        self._ssrc: int | None = None
        self._repair = 0.0  # smoothed time from a first NACK to the packet's arrival
        self._task: asyncio.Task[None] | None = None

    async def send_nack(self, media_ssrc: int, lost: list[int]) -> None:
        self._ssrc = media_ssrc
        now = self._clock()
        for seq in lost:
            tries, first, _ = self._asked.get(seq, (0, now, now))
            self._asked[seq] = (tries + 1, first, now)
        await self._send_nack(media_ssrc, lost)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(NACK_RETRY_TICK)
            if self._ssrc is not None:
                due = self.due(self._clock())
                if due:
                    await self.send_nack(self._ssrc, due)

    def due(self, now: float) -> list[int]:
        """Forget what arrived; the packets to ask for again now."""
        asked, missing = self._asked, self._missing
        for seq in [seq for seq in asked if seq not in missing]:
            tries, first, _ = asked.pop(seq)
            if tries == 1:  # repaired at the first ask: how long repairs take
                self._repair += 0.25 * ((now - first) - self._repair)
        wait = max(NACK_RETRY_MIN_WAIT, 2 * self._repair)
        return sorted(
            seq
            for seq, (tries, _, last) in asked.items()
            if tries < NACK_MAX_TRIES and now - last >= wait
        )


def sender_ssrcs(transceiver: RTCRtpTransceiver) -> tuple[int, int]:
    """The media and RTX SSRCs aiortc signalled for this transceiver's sender."""
    return int(transceiver.sender._ssrc), int(transceiver.sender._rtx_ssrc)


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """Codecs agreed for this m-line (known right after setRemoteDescription)."""
    return list(transceiver._codecs)


def negotiated_header_extensions(
    transceiver: RTCRtpTransceiver,
) -> list[RTCRtpHeaderExtensionParameters]:
    return list(transceiver._headerExtensions)


def dtls_transport(transceiver: RTCRtpTransceiver) -> RTCDtlsTransport:
    transport: RTCDtlsTransport = transceiver.receiver.transport
    return transport
