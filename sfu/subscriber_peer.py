"""SubscriberPeer: the connection a participant receives everyone else on.

The server offers (one sendonly m-line per Consumer) and the client answers.
Consumers are added and removed at any time: changes are batched into one
renegotiation at a time; m-lines of removed consumers become inactive.
RTCP from the subscriber (NACK, PLI/FIR, receiver reports, REMB) is routed
by media SSRC to the Consumer concerned; receiver reports, REMB and
transport feedback also feed the peer's DownlinkController
(sfu/downlink.py), which chooses what each Consumer forwards. Every packet
leaves through one TransportSender (sfu/transport_sender.py): paced, and
stamped with a transport-wide sequence number when the subscriber answered
the offered transport-cc, as browsers do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiortc import RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription

from sfu import aiortc_hooks, sdp_edits
from sfu.consumer import Consumer, ConsumerState, OutboundParams
from sfu.downlink import DownlinkController, Notify
from sfu.peer import (
    MediaSettings,
    Peer,
    PeerState,
    SdpError,
    extension_ids,
    matching_codec,
)
from sfu.rtcp import (
    KeyframeRequest,
    Nack,
    ReceiverReport,
    Remb,
    RtcpError,
    SenderReport,
    parse_rtcp,
)
from sfu.rtp import EXT_ABS_SEND_TIME, EXT_AUDIO_LEVEL, EXT_MID
from sfu.transport_sender import TransportSender
from sfu.twcc import TransportFeedback

logger = logging.getLogger(__name__)
ANSWER_TIMEOUT = 30.0  # s a subscriber has to answer an offer before its connection fails


@dataclass(frozen=True, slots=True)
class OfferedTrack:
    mid: str
    consumer: Consumer


SendOffer = Callable[[str, list[OfferedTrack]], Awaitable[None]]


class SubscriberPeer(Peer):
    role = "subscriber"

    def __init__(
        self,
        participant_id: str,
        settings: MediaSettings,
        send_offer: SendOffer,
        on_state: Callable[[PeerState], None],
        notify: Notify | None = None,
    ) -> None:
        super().__init__(participant_id, settings, on_state)
        self.consumers: dict[str, Consumer] = {}  # by mid, live ones
        self.remb_bitrate: int | None = None
        self.downlink = DownlinkController(
            participant_id, settings, self.consumers.values, notify or (lambda event: None)
        )
        self.rtcp_errors = 0
        self._send_offer = send_offer
        self._transceivers: dict[Consumer, RTCRtpTransceiver] = {}
        self._by_ssrc: dict[int, Consumer] = {}
        self._to_add: list[Consumer] = []
        self._to_remove: list[Consumer] = []
        self._awaiting_answer = False
        self._answer_watch: asyncio.TimerHandle | None = None  # ANSWER_TIMEOUT after an offer
        self._red_pts: dict[str, int] = {}  # mid -> RED payload type the subscriber answered
        self._transport_cc_ext: int | None = None  # the subscriber answered transport-cc
        self._sender: TransportSender | None = None

    # -- consumers ----------------------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        self._to_add.append(consumer)
        self._schedule()

    def remove_consumer(self, consumer: Consumer) -> None:
        if consumer in self._to_add:
            self._to_add.remove(consumer)
            consumer.close()
            return
        consumer.close()
        if consumer in self._transceivers:
            self._to_remove.append(consumer)
            self._schedule()

    def _schedule(self) -> None:
        if self.state is PeerState.CLOSED or self._awaiting_answer:
            return  # handle_answer() reschedules
        if self._task is None or self._task.done():
            self._task = self._supervise(asyncio.get_running_loop().create_task(self._negotiate()))

    async def _negotiate(self) -> None:
        await asyncio.sleep(0)  # batch changes made in the same loop iteration
        if self.state is PeerState.CLOSED or not (self._to_add or self._to_remove):
            return
        adding, self._to_add = self._to_add, []
        removing, self._to_remove = self._to_remove, []
        for consumer in adding:
            if consumer.state is ConsumerState.CLOSED:
                continue
            transceiver = self.pc.addTransceiver(consumer.kind.value, direction="sendonly")
            self._prefer_codec(transceiver, consumer)
            aiortc_hooks.disable_stock_sender(transceiver, self._on_connected)
            self._transceivers[consumer] = transceiver
        for consumer in removing:
            if consumer not in self._transceivers:
                continue
            stopped = self._transceivers.pop(consumer)
            stopped.direction = "inactive"
            for ssrc in aiortc_hooks.sender_ssrcs(stopped):
                self._by_ssrc.pop(ssrc, None)
            self.consumers.pop(stopped.mid or "", None)
        if not self._transceivers and not removing:
            return
        self._take_over_transport()
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        tracks = []
        red_mids = set()
        for consumer, transceiver in self._transceivers.items():
            if transceiver.mid is None:
                continue
            if consumer.producer.red_payload_type is not None and self.settings.opus_red:
                red_mids.add(transceiver.mid)
            self.consumers[transceiver.mid] = consumer
            tracks.append(OfferedTrack(transceiver.mid, consumer))
            media_ssrc, rtx_ssrc = aiortc_hooks.sender_ssrcs(transceiver)
            self._by_ssrc[media_ssrc] = consumer
            self._by_ssrc[rtx_ssrc] = consumer
        self._awaiting_answer = True
        self._answer_watch = asyncio.get_running_loop().call_later(
            ANSWER_TIMEOUT, self._answer_missing
        )
        sdp = sdp_edits.offer_red(self.pc.localDescription.sdp, red_mids)
        if self.settings.transport_cc:
            sdp = sdp_edits.offer_transport_cc(sdp)
        await self._send_offer(sdp, tracks)

    def _prefer_codec(self, transceiver: RTCRtpTransceiver, consumer: Consumer) -> None:
        wanted = consumer.producer.codec
        capabilities = RTCRtpSender.getCapabilities(consumer.kind.value).codecs
        preferred = []
        for capability in capabilities:
            mime = capability.mimeType.lower()
            if mime.endswith("/rtx"):
                if wanted.rtx_payload_type is not None:
                    preferred.append(capability)
                continue
            if mime != wanted.mime_type.lower() or capability.clockRate != wanted.clock_rate:
                continue
            profile = dict(wanted.parameters).get("profile-level-id")
            if wanted.name == "H264" and capability.parameters.get("profile-level-id") != profile:
                continue
            preferred.insert(0, capability)
        if preferred and not preferred[0].mimeType.lower().endswith("/rtx"):
            transceiver.setCodecPreferences(preferred)

    async def handle_answer(self, sdp: str) -> None:
        if not self._awaiting_answer:
            raise SdpError("no subscriber offer is waiting for an answer")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        except Exception as exc:
            raise SdpError(f"SDP answer rejected: {exc}") from None
        self._awaiting_answer = False
        if self._answer_watch is not None:
            self._answer_watch.cancel()
            self._answer_watch = None
        self._red_pts = sdp_edits.answered_red(sdp)
        if self.settings.transport_cc:
            self._transport_cc_ext = sdp_edits.transport_cc_id(sdp)
        if self._egress is not None and self._egress.ready:
            self._on_connected()
        if self._to_add or self._to_remove:
            self._schedule()

    def _on_connected(self) -> None:
        """DTLS is up (or renegotiation finished): bind every new Consumer."""
        if self._egress is None or self._awaiting_answer:
            return
        if self._sender is None:
            self._sender = TransportSender(self._egress)
            self.downlink.attach(self._sender)
        sender = self._sender
        started = self.downlink.start()
        if started is not None:
            self._supervise(started)
        for mid, consumer in self.consumers.items():
            if consumer.state is not ConsumerState.NEW:
                continue
            transceiver = self._transceivers.get(consumer)
            if transceiver is None or transceiver.currentDirection != "sendonly":
                continue
            codec = matching_codec(transceiver, consumer.producer.codec)
            if codec is None:
                logger.warning("subscriber %s: no codec agreed on %s", self.participant_id, mid)
                continue
            media_ssrc, rtx_ssrc = aiortc_hooks.sender_ssrcs(transceiver)
            ext = extension_ids(transceiver)
            sender.configure(self._transport_cc_ext, ext.get(EXT_ABS_SEND_TIME))  # bundle: shared
            rtx_pt = codec.rtx_payload_type
            consumer.bind(
                OutboundParams(
                    mid=mid,
                    ssrc=media_ssrc,
                    rtx_ssrc=rtx_ssrc if rtx_pt is not None else None,
                    payload_type=codec.payload_type,
                    rtx_payload_type=rtx_pt,
                    mid_ext=ext.get(EXT_MID),
                    abs_send_time_ext=ext.get(EXT_ABS_SEND_TIME),
                    audio_level_ext=ext.get(EXT_AUDIO_LEVEL),
                    nack=codec.nack,
                    cname=self.settings.cname,
                    red_payload_type=self._red_pts.get(mid),
                    transport_cc_ext=self._transport_cc_ext,
                ),
                sender,
            )

    # -- RTCP from the subscriber ------------------------------------------------------

    def on_rtcp(self, data: bytes) -> None:
        try:
            records = parse_rtcp(data)
        except RtcpError:
            self.rtcp_errors += 1
            return
        by_ssrc = self._by_ssrc
        downlink = self.downlink
        for record in records:
            if isinstance(record, Nack):
                consumer = by_ssrc.get(record.media_ssrc)
                if consumer is not None:
                    consumer.handle_nack(record.lost)
            elif isinstance(record, KeyframeRequest):
                consumer = by_ssrc.get(record.media_ssrc)
                if consumer is not None:
                    consumer.handle_keyframe_request()
            elif isinstance(record, (ReceiverReport, SenderReport)):
                blocks = []
                for block in record.reports:
                    consumer = by_ssrc.get(block.ssrc)
                    if consumer is not None:
                        rtx = consumer.params is not None and block.ssrc == consumer.params.rtx_ssrc
                        if not rtx:
                            consumer.handle_report_block(block)
                        blocks.append((consumer, block, rtx))
                if blocks:
                    downlink.on_report(blocks)
            elif isinstance(record, TransportFeedback):
                downlink.on_transport_feedback(record)
            elif isinstance(record, Remb):
                self.remb_bitrate = record.bitrate
                covered = {by_ssrc[s] for s in record.ssrcs if s in by_ssrc}
                downlink.on_remb(list(covered), record.bitrate)

    # -- teardown ----------------------------------------------------------------------

    def _answer_missing(self) -> None:
        """An offer the client never answered: its subscriptions would wait forever."""
        self._answer_watch = None
        if self._awaiting_answer and self.state is not PeerState.CLOSED:
            logger.warning("%r: no answer to the offer in %.0f s", self, ANSWER_TIMEOUT)
            self._crashed()  # connection_failed: the client reconnects

    async def close(self) -> None:
        if self._answer_watch is not None:
            self._answer_watch.cancel()
            self._answer_watch = None
        await self.downlink.close()
        if self._sender is not None:
            self._sender.close()
        for consumer in list(self._transceivers) + self._to_add:
            consumer.close()
        self._transceivers.clear()
        self.consumers.clear()
        self._by_ssrc.clear()
        self._to_add.clear()
        await self._close_connection()
