"""PublisherPeer: the connection a participant's tracks arrive on.

The client offers, the server answers (recvonly). Every decrypted packet of
the bundled transport comes here, is routed by SSRC (or, before an SSRC is
known, by the MID and RID header extensions) to its Producer and simulcast
layer. The peer also speaks RTCP upstream: NACKs for lost packets, PLIs for
keyframes, receiver reports, and what the publisher's congestion control
needs: transport-wide feedback (the arrival time of every packet, every
50-100 ms; sfu/twcc.py) when the client offered transport-cc, as browsers
do, so that its own send-side estimator adapts its encoder and simulcast
layers to its real uplink; otherwise REMB from a receive-side estimate fed
with every packet (all layers, RTX and padding included). Both are kept by
sfu/uplink_feedback.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import RTCSessionDescription
from aiortc.sdp import SessionDescription

from sfu import aiortc_hooks, sdp_edits
from sfu.errors import ErrorCode, SfuError
from sfu.layers import Layer
from sfu.media import MediaKind, Source
from sfu.peer import (
    MediaSettings,
    Peer,
    PeerState,
    SdpError,
    codec_info,
    extension_ids,
)
from sfu.producer import Producer
from sfu.rtcp import (
    ReceiverReport,
    RtcpError,
    SenderReport,
    build_nack,
    build_pli,
    build_rr,
    build_sdes_cname,
    ntp_middle,
    parse_rtcp,
)
from sfu.rtp import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    EXT_REPAIRED_RID,
    EXT_RID,
    RtpError,
    parse_rtp,
)
from sfu.uplink_feedback import RembFeedback, TwccFeedback
from sfu.uplink_health import DownlinkHint

logger = logging.getLogger(__name__)

aiortc_hooks.accept_simulcast_extensions()

FEEDBACK_TICK = 0.02
REPORT_INTERVAL = 1.0
VOICE_GONE_MS = 2000  # no audio packet for this long: the publisher sends nothing at all
RATE_INTERVAL = 0.5
"""Seconds between two samples of every layer's bitrate (and layer on/off decisions)."""
_producer_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """What the client says about one of its m-lines."""

    mid: str
    source: Source


@dataclass(slots=True)
class PublishResult:
    answer: str
    added: list[Producer]
    removed: list[Producer]


# Opus while a capture crosses the publisher's thin uplink (docs/capture.md): with RED
# and 60 ms packets about 30 kbit/s on the wire, which leaves a 60 kbit/s link room
CAPTURE_OPUS_BPS = 10_000


class PublisherPeer(Peer):
    role = "publisher"

    def __init__(
        self,
        participant_id: str,
        settings: MediaSettings,
        on_state: Callable[[PeerState], None],
        on_layers: Callable[[Producer, list[bool]], None] | None = None,
        on_audio_cap: Callable[[Producer, int | None], None] | None = None,
        on_uplink: Callable[[Producer, bool], None] | None = None,
        *,
        max_media_sections: int | None = None,
        max_tracks: int | None = None,
    ) -> None:
        super().__init__(participant_id, settings, on_state)
        self.producers: dict[str, Producer] = {}  # by mid
        # caps on one offer (rooms.max_media_sections, rooms.max_published_tracks); None: none
        self.max_media_sections = max_media_sections
        self.max_tracks = max_tracks
        self._on_layers = on_layers
        self._on_audio_cap = on_audio_cap
        self._on_uplink = on_uplink
        # what the same participant's downlink says, set by the room: a hint
        # that a weak uplink widened too (sfu/uplink_health.py)
        self.downlink_hint: Callable[[], DownlinkHint | None] | None = None
        # until then (monotonic s) a capture crosses this publisher's thin uplink
        # (signaling/capture_service.py): its audio takes the thin-link form
        self.capture_thin_until = 0.0
        self._rid_ext: int | None = None
        self._repaired_rid_ext: int | None = None
        self.rtp_errors = 0
        self._by_ssrc: dict[int, Producer] = {}
        self._mid_ext: int | None = None
        self._abs_ext: int | None = None
        self._rtcp_ssrc = random.getrandbits(32)
        # what the publisher's congestion control is told (sfu/uplink_feedback.py):
        # transport-wide feedback when the client offered it, else REMB
        self._twcc = TwccFeedback()
        self._remb = RembFeedback()
        self._lock = asyncio.Lock()

    @property
    def rembs_sent(self) -> int:
        return self._remb.sent

    @property
    def twcc_feedbacks_sent(self) -> int:
        return self._twcc.sent

    def _entered(self, state: PeerState) -> None:
        if state is PeerState.CONNECTED and self._task is None:
            self._task = self._supervise(
                asyncio.get_running_loop().create_task(self._feedback_loop())
            )

    # -- negotiation ----------------------------------------------------------

    async def negotiate(self, offer: str, tracks: dict[str, Source]) -> PublishResult:
        async with self._lock:
            return await self._negotiate(offer, tracks)

    async def _negotiate(self, offer: str, tracks: dict[str, Source]) -> PublishResult:
        if self.state is PeerState.CLOSED:
            raise SdpError("publisher connection is closed")
        try:
            parsed = SessionDescription.parse(offer)
        except Exception as exc:  # aiortc raises assorted errors on bad SDP
            raise SdpError(f"unparseable SDP offer: {type(exc).__name__}") from None
        if not parsed.media:
            raise SdpError("SDP offer has no media section")
        self._check_size(parsed)
        for media in parsed.media:
            if media.kind not in ("audio", "video"):
                raise SdpError(f"unsupported m-line kind {media.kind!r}")
            if media.rtp.muxId is None:
                raise SdpError("every m-line needs a=mid")
            if not media.ice or not media.dtls or not media.dtls.fingerprints:
                raise SdpError("m-line without ICE credentials or DTLS fingerprint")
            label = tracks.get(media.rtp.muxId)
            if label is not None and label.kind.value != media.kind:
                raise SdpError(f"m-line {media.rtp.muxId} is {media.kind} but labelled {label}")
        rids = sdp_edits.offered_rids(offer)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        except Exception as exc:
            raise SdpError(f"SDP offer rejected: {exc}") from None
        for transceiver in self.pc.getTransceivers():
            aiortc_hooks.disable_stock_receiver(transceiver)
            transceiver.direction = "recvonly"
        self._take_over_transport()
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        edited, red_pts = self._edit_answer(self.pc.localDescription.sdp, offer, rids)
        if self._twcc.ext is not None:
            aiortc_hooks.stamp_arrivals(self.pc, self._twcc.arrivals)
        added, removed = self._update_producers(parsed, tracks, rids)
        for producer in added:
            producer.red_payload_type = red_pts.get(producer.mid)
        return PublishResult(edited, added, removed)

    def _check_size(self, parsed: SessionDescription) -> None:
        """Refuse, before anything is set up, an offer with too many m-lines or tracks.

        An offer describes the whole connection, so its sending m-lines are all
        the tracks the participant publishes (as in ``_update_producers``).
        """
        limit = self.max_media_sections
        if limit is not None and len(parsed.media) > limit:
            raise SfuError(
                ErrorCode.TOO_MANY_TRACKS,
                f"a publish offer has at most {limit} m-lines ({len(parsed.media)} offered)",
            )
        sending = sum(
            1 for m in parsed.media if m.port != 0 and m.direction in ("sendonly", "sendrecv")
        )
        if self.max_tracks is not None and sending > self.max_tracks:
            raise SfuError(
                ErrorCode.TOO_MANY_TRACKS,
                f"at most {self.max_tracks} published tracks at once ({sending} offered)",
            )

    @property
    def thin_link_audio(self) -> bool:
        """Answer with thin-link packets: a subscriber's thin link wishes our audio smaller.

        ``media.thin_link_opus_ptime_ms`` long packets (60 ms: a third of the
        20 ms packets' ~30 kbit/s of headers on that subscriber's link; real
        Chromium at 60 kbit/s lost 2.0 % of the specialist's audio instead of
        2.9-4.1 %). RED stays (the SFU forwards it only where it fits). Not
        for a publisher's own weak uplink: there its browser's camera trials
        and feedback keep the link full whatever the audio takes, and 60 ms
        packets lost more of its voice (5.7-6.6 % concealed instead of
        2.1-2.4 %; 11 % without RED). The publisher renegotiates to take it
        (``publisher_audio``'s ``packet_ms``).
        """
        return any(
            p.kind is MediaKind.AUDIO and p.audio.thin_packets for p in self.producers.values()
        )

    def _edit_answer(
        self, answer: str, offer: str, rids: dict[str, list[str]]
    ) -> tuple[str, dict[str, int]]:
        """What aiortc can't write: the simulcast answer and the codec wishes.

        The answer's fmtp describes what this receiver wants: Opus in-band FEC
        (and DTX, unless configured off; a most average bitrate and a packet
        duration where configured, or thin-link audio's: ``thin_link_audio``),
        and for simulcast publishers a start
        bitrate so the browser enables its upper layers at once instead of
        after tens of seconds of ramp-up. RED over Opus, when offered (and
        not configured off), is answered first so the browser sends it;
        returns the answer and mid -> RED payload type.
        """
        answer = sdp_edits.answer_simulcast(answer, rids)
        opus = {"minptime": "10", "useinbandfec": "1"}
        if self.settings.opus_dtx:
            opus["usedtx"] = "1"
        if self.settings.opus_max_bitrate_kbps:
            opus["maxaveragebitrate"] = str(self.settings.opus_max_bitrate_kbps * 1000)
        thin = self.thin_link_audio
        ptime = self.settings.thin_link_opus_ptime_ms if thin else self.settings.opus_ptime_ms
        if ptime:
            opus["ptime"] = str(ptime)
        answer = sdp_edits.set_fmtp(answer, "opus", opus)
        if rids:
            start = {"x-google-start-bitrate": str(self.settings.publisher_start_bitrate_kbps)}
            for codec in ("VP8", "H264"):
                answer = sdp_edits.set_fmtp(answer, codec, start)
        answer, twcc_ext = sdp_edits.answer_transport_cc(answer, offer)
        if twcc_ext is not None:
            self._twcc.ext = twcc_ext
        if not self.settings.opus_red:
            return answer, {}
        return sdp_edits.answer_red(answer, offer)

    def _update_producers(
        self, parsed: SessionDescription, tracks: dict[str, Source], rids: dict[str, list[str]]
    ) -> tuple[list[Producer], list[Producer]]:
        transceivers = {t.mid: t for t in self.pc.getTransceivers()}
        added: list[Producer] = []
        removed: list[Producer] = []
        sending: set[str] = set()
        for media in parsed.media:
            mid = media.rtp.muxId
            transceiver = transceivers.get(mid)
            if transceiver is None or media.port == 0:
                continue
            if media.direction not in ("sendonly", "sendrecv"):
                continue
            sending.add(mid)
            if mid in self.producers:
                continue
            kind = MediaKind(media.kind)
            source = tracks.get(mid) or (
                Source.CAMERA if kind is MediaKind.VIDEO else Source.MICROPHONE
            )
            ext = extension_ids(transceiver)
            self._mid_ext = ext.get(EXT_MID, self._mid_ext)
            self._abs_ext = ext.get(EXT_ABS_SEND_TIME, self._abs_ext)
            self._rid_ext = ext.get(EXT_RID, self._rid_ext)
            self._repaired_rid_ext = ext.get(EXT_REPAIRED_RID, self._repaired_rid_ext)
            layer_rids = rids.get(mid) if kind is MediaKind.VIDEO and EXT_RID in ext else None
            producer = Producer(
                producer_id=f"{self.participant_id}:{next(_producer_ids)}",
                participant_id=self.participant_id,
                kind=kind,
                source=source,
                codec=codec_info(transceiver),
                mid=mid,
                request_keyframe_upstream=self._send_pli,
                keyframe_interval=self.settings.keyframe_interval,
                rids=layer_rids,
            )
            producer.audio.level_ext = ext.get(EXT_AUDIO_LEVEL)
            ssrcs = [s.ssrc for s in media.ssrc]
            fid = next((g.items for g in media.ssrc_group if g.semantic == "FID"), None)
            if producer.simulcast:
                pass  # layers are latched from their RID extension as packets arrive
            elif fid and len(fid) == 2:
                self._bind(producer, int(fid[0]), int(fid[1]))
            elif ssrcs:
                self._bind(producer, ssrcs[0], None)
            self.producers[mid] = producer
            added.append(producer)
        for mid in list(self.producers):
            if mid not in sending:
                producer = self.producers.pop(mid)
                self._forget(producer)
                removed.append(producer)
        return added, removed

    def _bind(self, producer: Producer, ssrc: int, rtx_ssrc: int | None) -> None:
        producer.bind_ssrc(ssrc)
        self._by_ssrc[ssrc] = producer
        if rtx_ssrc is not None:
            producer.bind_rtx(rtx_ssrc)
            self._by_ssrc[rtx_ssrc] = producer

    def _forget(self, producer: Producer) -> None:
        for ssrc in [s for s, p in self._by_ssrc.items() if p is producer]:
            del self._by_ssrc[ssrc]
        producer.close()

    # -- packets in -------------------------------------------------------------

    def on_rtp(self, data: bytes, arrival_ms: int) -> None:
        try:
            packet = parse_rtp(data)
        except RtpError:
            self.rtp_errors += 1
            return
        producer = self._by_ssrc.get(packet.ssrc)
        if producer is None:
            producer = self._latch(packet.ssrc, packet.payload_type, packet.extensions)
            if producer is None:
                return
        twcc = self._twcc
        if twcc.ext is not None:
            seq = packet.extensions.get(twcc.ext)
            if seq is not None and len(seq) == 2:
                arrival = twcc.arrivals.pop(data[2:4] + data[8:12], None)
                if arrival is None:
                    arrival = time.monotonic_ns() // 1000
                twcc.recorder.on_packet(int.from_bytes(seq, "big"), arrival)
                twcc.media_ssrc = packet.ssrc
                twcc.bytes_since += len(data)
        elif self._abs_ext is not None and producer.kind is MediaKind.VIDEO:
            ast = packet.extensions.get(self._abs_ext)
            if ast is not None and len(ast) == 3:
                ast_value = int.from_bytes(ast, "big")
                remb = self._remb
                estimator = remb.estimator
                if (
                    estimator.add(arrival_ms, ast_value, len(data), packet.ssrc)
                    and estimator.bitrate < remb.sent_bitrate * 0.9
                ):
                    self._send_remb()
        producer.receive_rtp(packet, arrival_ms, len(data))

    def _latch(self, ssrc: int, payload_type: int, extensions: dict[int, bytes]) -> Producer | None:
        """An SSRC not in the SDP: find its m-line (MID) and simulcast layer (RID)."""
        if self._mid_ext is None or self._mid_ext not in extensions:
            return None
        producer = self.producers.get(extensions[self._mid_ext].decode(errors="replace"))
        if producer is None:
            return None
        rtx = payload_type == producer.codec.rtx_payload_type
        layer: Layer | None = producer.layers[0]
        if producer.simulcast:
            rid_ext = self._repaired_rid_ext if rtx else self._rid_ext
            rid = extensions.get(rid_ext) if rid_ext is not None else None
            if rid is None:
                return None
            layer = producer.layer_by_rid(rid.decode(errors="replace"))
        if layer is None:
            return None
        if rtx:
            if layer.rtx_ssrc is not None:
                return None
            producer.bind_rtx(ssrc, layer)
        else:
            if layer.ssrc is not None:
                return None
            producer.bind_ssrc(ssrc, layer)
        self._by_ssrc[ssrc] = producer
        return producer

    def on_rtcp(self, data: bytes) -> None:
        try:
            records = parse_rtcp(data)
        except RtcpError:
            self.rtp_errors += 1
            return
        for record in records:
            if isinstance(record, SenderReport):
                producer = self._by_ssrc.get(record.ssrc)
                if producer is not None:
                    producer.receive_sender_report(record)

    # -- feedback out -------------------------------------------------------------

    def _send_rtcp(self, data: bytes) -> None:
        if self._egress is not None:
            self._egress.send_rtcp(data)

    def _send_pli(self, media_ssrc: int) -> None:
        self._send_rtcp(build_pli(self._rtcp_ssrc, media_ssrc))

    def _send_remb(self) -> None:
        if self._twcc.ext is not None:
            return  # the client estimates its uplink itself, from transport feedback
        ssrcs = [
            layer.ssrc
            for p in self.producers.values()
            if p.kind is MediaKind.VIDEO
            for layer in p.layers
            if layer.ssrc is not None
        ]
        remb = self._remb.build(self._rtcp_ssrc, ssrcs)
        if remb is not None:
            self._send_rtcp(remb)

    @property
    def uplink_estimate(self) -> int:
        """The publisher's uplink bandwidth estimate (bit/s) sent in REMB; 0 before one exists."""
        return self._remb.estimator.bitrate

    def _send_reports(self) -> None:
        now = time.monotonic()
        blocks = []
        for producer in self.producers.values():
            for layer in producer.layers:
                stream = layer.stream
                if stream is None or stream.highest < 0:
                    continue
                lsr = dlsr = 0
                last_sr = producer.last_sr.get(stream.ssrc)
                if last_sr is not None:
                    lsr = ntp_middle(last_sr[0].ntp)
                    dlsr = int((now - last_sr[1]) * 65536)
                blocks.append(stream.report_block(lsr, dlsr))
        if not blocks:
            return
        report = build_rr(ReceiverReport(self._rtcp_ssrc, blocks[:31]))
        self._send_rtcp(report + build_sdes_cname(self._rtcp_ssrc, self.settings.cname))
        self._send_remb()

    async def _feedback_loop(self) -> None:
        now = time.monotonic()
        next_report = now + REPORT_INTERVAL
        last_rates = now
        twcc = self._twcc
        twcc.start(now)
        while True:
            await asyncio.sleep(FEEDBACK_TICK)
            now = time.monotonic()
            now_ms = int(now * 1000)
            for feedback in twcc.due(self._rtcp_ssrc, now):
                self._send_rtcp(feedback)
            for producer in self.producers.values():
                for layer in producer.layers:
                    stream = layer.stream
                    if stream is None or not stream.missing:
                        continue
                    lost = stream.due_nacks(now_ms)
                    if lost:
                        producer.counters.nacks += 1
                        self._send_rtcp(build_nack(self._rtcp_ssrc, stream.ssrc, lost))
            if now - last_rates >= RATE_INTERVAL:
                self._sample_layers(now - last_rates, now)
                last_rates = now
            if now >= next_report:
                next_report += REPORT_INTERVAL
                self._send_reports()

    def _sample_layers(self, elapsed: float, now: float) -> None:
        """Layer rates; which layers are needed; whether the uplink is the weak side; audio caps.

        A camera arriving at a crawl (sfu/uplink_health.py) is asked off and the
        publisher's audio down to the thin-link bitrate: audio first on its own
        uplink. ``downlink_hint`` (the same participant's downlink) hints when to
        try the camera again.
        """
        hint = self.downlink_hint() if self.downlink_hint is not None else None
        producers = list(self.producers.values())
        for producer in producers:
            producer.sample_rates(elapsed)
        # a camera is judged only while the publisher's voice arrives: with nothing at all
        # arriving it is on hold (the console's other rooms) or gone, not on a weak uplink
        now_ms = now * 1000  # (DTX: a silent voice still sends a packet every 400 ms)
        speaking = any(
            p.kind is MediaKind.AUDIO and now_ms - p.layers[0].last_arrival_ms < VOICE_GONE_MS
            for p in producers
        )
        for producer in producers:
            if producer.check_uplink(now, hint, speaking) and self._on_uplink is not None:
                self._on_uplink(producer, producer.uplink_weak)
            needed = producer.needed_layers(now)
            if needed is not None and self._on_layers is not None:
                self._on_layers(producer, needed)
        thin = self.settings.thin_link_opus_kbps * 1000
        weak = thin > 0 and any(p.uplink_weak for p in producers)
        # a capture crossing a thin uplink: the audio leaves it room, in 60 ms packets
        # (a third of 20 ms packets' ~30 kbit/s of headers) at CAPTURE_OPUS_BPS
        # (RED stays: with it the voice takes about twice that)
        capturing = thin > 0 and now < self.capture_thin_until
        for producer in producers:
            wished = producer.wanted_audio_cap()
            cap = wished
            if weak and producer.kind is MediaKind.AUDIO:
                cap = min(cap or thin, thin)
            if capturing and producer.kind is MediaKind.AUDIO:
                cap = min(cap or thin, thin, CAPTURE_OPUS_BPS)
            # thin-link packets for subscribers' thin links and captures only: on its own
            # weak uplink the publisher's audio keeps 20 ms RED (thin_link_audio says why)
            packets = (wished is not None or capturing) and bool(
                self.settings.thin_link_opus_ptime_ms
            )
            if producer.audio.ask(cap, packets) and self._on_audio_cap is not None:
                self._on_audio_cap(producer, cap)

    # -- teardown -------------------------------------------------------------------

    async def close(self) -> list[Producer]:
        """Close the connection; returns the producers that ended with it."""
        ended = list(self.producers.values())
        for producer in ended:
            producer.close()
        self.producers.clear()
        self._by_ssrc.clear()
        await self._close_connection()
        return ended
