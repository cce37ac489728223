"""DownlinkController: what one subscriber is sent, from what its link carries.

Owned by a SubscriberPeer. Twice a second it measures what each Consumer
sends, prices every video track's options (simulcast layer x VP8 temporal
layer, never larger than the size the subscriber renders it at), allocates
the estimate (sfu/bandwidth.py) by priority (sfu/allocation.py) with
hysteresis, and applies the result: a target layer per Consumer, or a pause
with reason "bandwidth" that the subscriber is told about. While the
estimator probes, it pads the link with RTX padding packets. Every
``quality_interval`` the subscriber gets a "quality" event (estimate,
link loss, jitter and round trip, layers, pauses) for its quality indicator.
The tracks it paused are remembered by sfu/bandwidth_pauses.py; its tuning
constants are in ``AdaptationTuning`` (sfu/tuning.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from sfu.allocation import (
    PRIORITY_OTHER,
    PRIORITY_PINNED,
    PRIORITY_SCREEN,
    PRIORITY_SPEAKER,
    Demand,
    Option,
    allocate,
    with_hysteresis,
)
from sfu.audio_cap import ThinLinkAudio
from sfu.bandwidth import DownlinkEstimator
from sfu.bandwidth_pauses import BandwidthPauses
from sfu.consumer import Consumer, ConsumerState
from sfu.delivery import DeliveryCheck
from sfu.layers import Layer
from sfu.link_estimate import LinkEstimator
from sfu.media import MediaKind, Source
from sfu.peer import MediaSettings
from sfu.probe_padding import PADDING_TICK, TICK, ProbePadding
from sfu.quality import track_quality
from sfu.red_choice import RedChoice
from sfu.rtcp import ReportBlock
from sfu.send_rates import RATE_SMOOTHING, SendRates
from sfu.speaker import ActiveSpeaker
from sfu.transport_sender import TransportSender
from sfu.tuning import TUNING
from sfu.twcc import TransportFeedback
from sfu.twcc_estimator import TwccEstimator

logger = logging.getLogger(__name__)

Notify = Callable[[dict[str, Any]], None]


class DownlinkController:
    def __init__(
        self,
        subscriber_id: str,
        settings: MediaSettings,
        consumers: Callable[[], Iterable[Consumer]],
        notify: Notify,
    ) -> None:
        now = time.monotonic()
        self.subscriber_id = subscriber_id
        self.settings = settings
        self.estimator: LinkEstimator = DownlinkEstimator(
            settings.subscriber_start_bitrate_kbps * 1000,
            settings.subscriber_max_bitrate_kbps * 1000,
            now,
        )
        self._sender: TransportSender | None = None
        self._rates = SendRates()
        self._consumers = consumers
        self._notify = notify
        # tracks paused for bandwidth, their steps and resumes (sfu/bandwidth_pauses.py)
        self._pauses: BandwidthPauses[Consumer] = BandwidthPauses()
        self._speaker = ActiveSpeaker()
        self._last_tick = now
        self._last_quality = now
        self._padding = ProbePadding(consumers)  # probes' padding, timed (sfu/probe_padding.py)
        self._delivery = DeliveryCheck()  # streams the reports say nothing of
        self.rtt: float | None = None  # the latest round trip measured (s)
        self.resumed_at: float | None = None  # the latest resume of video paused for bandwidth
        self.jitter = 0.0  # the largest interarrival jitter of the latest receiver report (s)
        self._red = RedChoice(
            subscriber_id
        )  # RED audio where the link has room (sfu/red_choice.py)
        self._thin_audio = ThinLinkAudio(settings.thin_link_opus_kbps * 1000)
        self._task: asyncio.Task[None] | None = None

    @property
    def pauses(self) -> int:
        """Video tracks paused for bandwidth so far."""
        return self._pauses.count

    @property
    def audio_rate(self) -> float:
        """What this subscriber is sent of audio (bit/s)."""
        return self._rates.audio

    @property
    def video_rate(self) -> float:
        """What this subscriber is sent of video (bit/s)."""
        return self._rates.video

    def attach(self, sender: TransportSender) -> None:
        """The subscriber transport's sender: paced at the estimate, its sends recorded."""
        self._sender = sender

    def start(self) -> asyncio.Task[None] | None:
        """Start adapting; returns the new task (its owner supervises it), None if running."""
        if self._task is not None:
            return None
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self._task

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # (died: counted)
                await self._task
            self._task = None

    async def _run(self) -> None:
        now = time.monotonic()
        while True:
            await asyncio.sleep(PADDING_TICK if self._padding.rate > 0 else TICK / 5)
            woke = time.monotonic()
            slept, now = woke - now, woke
            # a probe that just succeeded is acted on at once (a paused video resumes)
            if self.estimator.new_success() or now - self._last_tick >= TICK:
                self.tick(now)
            # transport feedback times every packet: no markers, no RTX reports
            timed = not isinstance(self.estimator, TwccEstimator)
            self._padding.step(self.estimator, slept, now, timed)

    # -- feedback --------------------------------------------------------------------

    def on_transport_feedback(self, feedback: TransportFeedback) -> None:
        """Transport-wide feedback: from the first, the link is estimated from it alone."""
        sender = self._sender
        if sender is None or not sender.transport_cc:
            return
        now = time.monotonic()
        estimator = self.estimator
        if not isinstance(estimator, TwccEstimator):
            estimator = TwccEstimator(
                self.settings.subscriber_start_bitrate_kbps * 1000,
                self.settings.subscriber_max_bitrate_kbps * 1000,
                now,
            )
            self.estimator = estimator
            sender.on_stamped = estimator.on_sent
        estimator.on_feedback(sender.history.resolve(feedback, now), now, self.rtt)

    def on_remb(self, consumers: list[Consumer], bitrate: int) -> None:
        now = time.monotonic()
        pauses = self._pauses
        grace = TUNING.remb_grace
        if not consumers or all(
            c in pauses.paused or pauses.since_resume(c, now) < grace for c in consumers
        ):
            # streams that only carry probe padding, or only just got their
            # video back: a receiver's REMB is bounded by the little it saw
            # lately, and says nothing of the link
            return
        key = tuple(sorted(c.id for c in consumers))
        sent = sum(self._rates.of(c) for c in consumers)
        if self._padding.carries(consumers):
            sent += self._padding.rate
        self.estimator.on_remb(key, bitrate, sent, self._rates.audio, now)

    def on_report(
        self, blocks: list[tuple[Consumer, ReportBlock, bool]], now: float | None = None
    ) -> None:
        """One receiver report's blocks: loss weighted by what each stream carries, jitter.

        A block about a retransmission (RTX) stream counts with the probe
        padding it carried, so a probe's own loss is seen even when the
        video it pads is paused. A media stream whose packets stopped
        arriving counts as lost (sfu/delivery.py), whatever its block says.
        A report only about streams that carry (almost) nothing, such as
        the paused video's own report from an aiortc receiver, says nothing
        of the link's loss and is left out.
        """
        weight = total = carried = 0.0
        covers: bool | None = None
        now = time.monotonic() if now is None else now
        jitter = [
            block.jitter / consumer.producer.codec.clock_rate
            for consumer, block, rtx in blocks
            if not rtx
        ]
        if jitter:
            self.jitter = max(jitter)
        for consumer, block, rtx in blocks:
            if rtx:
                round_trip = consumer.rtx_round_trip(block)
                if round_trip is not None:
                    self._on_round_trip(*round_trip, now)
                probe = self._padding.probe_block(consumer, block)
                if not self.estimator.probing or probe is None:
                    continue
                covers = probe.covers if probe.covers is not None else covers
                carried += probe.rate
                rate = max(probe.rate, 1.0)
                lost = probe.lost
            else:
                carried += self._rates.of(consumer)
                rate = max(self._rates.of(consumer), 1.0)
                unreported = self._delivery.unreported_loss(
                    consumer, block.highest_seq, now, self._padding.base_rtt
                )
                lost = max(block.fraction_lost / 256.0, unreported)
            weight += rate
            total += rate * lost
        if carried >= TUNING.quiet_rate:
            # (aiortc sends one report per receiver: a paused video's says nothing)
            self.estimator.on_loss(total / weight, self._rates.total, now, covers)

    # -- allocation ------------------------------------------------------------------

    def tick(self, now: float) -> None:
        elapsed = max(now - self._last_tick, 1e-3)
        self._last_tick = now
        live = [c for c in self._consumers() if c.state is not ConsumerState.CLOSED and c.params]
        self._measure(live, elapsed)
        if isinstance(self.estimator, TwccEstimator) and self._sender is not None:
            share = self._sender.payload_share()
            if share is not None:
                self.estimator.payload_share += RATE_SMOOTHING * (
                    share - self.estimator.payload_share
                )
        self._delivery.sample(live, now)
        self._speaker.update(live)
        estimator = self.estimator
        pauses = self._pauses
        t = TUNING
        self._red.choose(live, estimator.estimate, self._rates.of, estimator.may_pause)
        cap = self._thin_audio.update(
            estimator.estimate, self._rates.audio, estimator.decreases > 0, now
        )
        for consumer in live:
            if consumer.kind is MediaKind.AUDIO:
                consumer.audio_cap_bps = cap
        if (
            estimator.looks_clean
            and not pauses.paused
            and now - estimator.last_decrease >= t.decrease_hold
            and self._rates.total > estimator.estimate
        ):
            # what went through without complaint is carried by the link
            estimator.carried(self._rates.total)
        video = [
            c for c in live if c.kind is MediaKind.VIDEO and not (c.pause_reasons - {"bandwidth"})
        ]
        options = {c: self._options(c) for c in video}
        demands = [Demand(c, self._priority(c), options[c]) for c in video]
        budget = estimator.estimate - self._rates.audio
        eager = allocate(budget * t.tolerance, demands)
        cautious = allocate(budget * t.headroom, demands)
        lenient = allocate(budget * t.pause_tolerance, demands)
        # before any sign of congestion, a low start estimate chooses small
        # layers but never pauses a track (nor does one that is low only
        # because little is sent)
        measured = estimator.may_pause
        paused_now = False
        for consumer in video:
            opts = options[consumer]
            if not opts:
                continue
            current = None if consumer in pauses.paused else _index_of(consumer, opts)
            may_raise = pauses.since_step_down(consumer, now) >= t.upgrade_hold
            choice = with_hysteresis(
                current, cautious.choice[consumer], eager.choice[consumer], may_raise
            )
            if (
                choice is None
                and current is not None
                and (not measured or lenient.choice[consumer] is not None)
            ):
                choice = 0  # no sign of congestion yet, or not far enough below
                # (a paused track comes back only when the allocation has room for it)
            if choice is None and consumer not in pauses.paused:
                paused_now = True
            self._apply(consumer, opts, current, choice, now)
        if paused_now:
            # what is left is what the link has shown it carries: probe up from there
            estimator.cap(self._rates.audio + eager.total / t.tolerance, now, "pause")
        # probe for what the best options need *with* headroom, or a step up
        # would never pass the cautious allocation
        wanted = self._rates.audio + eager.wanted / t.headroom
        if any(pauses.since_resume(c, now) < TICK / 2 for c in video):
            wanted = 0.0  # a track just came back: that is this tick's step up
        target = estimator.padding_target(
            wanted, now, self._rates.total, paused=bool(pauses.paused)
        )
        self._padding.set_rate(max(0.0, target - self._rates.audio - self._rates.video))
        if self._sender is not None:
            # a REMB estimate (aiortc peers) is not trusted for pacing: such peers are unpaced
            paced = isinstance(estimator, TwccEstimator)
            self._sender.set_rate(max(estimator.estimate, target) * t.pacing_factor * paced)
            # a link too thin for any video: its feedback for the audio is thinned too
            self._sender.sparse_audio_feedback = bool(video) and all(
                c in pauses.paused for c in video
            )
        if now - self._last_quality >= self.settings.quality_interval:
            self._last_quality = now
            if self._sender is not None:
                sent = self._sender.pacer.sent_by_class
                logger.debug("subscriber %s: %r, sent %s", self.subscriber_id, estimator, sent)
            if video:
                self._notify(self.quality(video))

    def _measure(self, live: list[Consumer], elapsed: float) -> None:
        for consumer in self._rates.measure(live, elapsed):
            self._pauses.forget(consumer)

    def _priority(self, consumer: Consumer) -> int:
        if consumer.pinned:
            return PRIORITY_PINNED
        if consumer.producer.participant_id == self._speaker.participant_id:
            return PRIORITY_SPEAKER
        if consumer.producer.source is Source.SCREEN_SHARE:
            return PRIORITY_SCREEN
        return PRIORITY_OTHER

    def _options(self, consumer: Consumer) -> list[Option]:
        """What this track can be sent at, smallest first, never larger than rendered.

        A layer the publisher was told to stop is offered (a subscriber that
        wants it gets it asked back), except while the publisher's uplink is
        weak: its camera is then tried on the lowest layer only, and a
        subscriber that kept waiting for a larger one saw nothing of the
        trial (real Chromium after a 60 kbit/s cap: 4 s of frames arrived,
        none reached the specialist).
        """
        producer = consumer.producer
        layers = producer.layers
        now_ms = int(time.monotonic() * 1000)
        may_ask = not producer.uplink_weak
        usable = [
            layer
            for layer in layers
            if (layer.stream is not None and now_ms - layer.last_arrival_ms < TUNING.layer_stale_ms)
            or (may_ask and not layer.active)
        ] or layers[:1]
        usable = usable[: _size_limit(usable, consumer.render_size) + 1]
        bottom = usable[0]
        temporal_layers = max(1, bottom.rates.temporal_seen)
        options = [Option(bottom.index, t, bottom.price(t)) for t in range(temporal_layers)]
        for layer in usable[1:]:
            top = max(1, layer.rates.temporal_seen) - 1
            # a larger layer never prices below a smaller one (measurements lag)
            price = max(layer.price(top), options[-1].price * 1.1)
            options.append(Option(layer.index, top, price))
        return options

    def _apply(
        self,
        consumer: Consumer,
        options: list[Option],
        current: int | None,
        choice: int | None,
        now: float,
    ) -> None:
        pauses = self._pauses
        if choice is None:
            if pauses.pause(consumer, now):
                consumer.pause("bandwidth")
                logger.info(
                    "%r paused: not enough bandwidth (%r, audio %d, video %d, lowest %d)",
                    consumer,
                    self.estimator,
                    self._rates.audio,
                    self._rates.video,
                    options[0].price,
                )
                self._notify_paused(consumer, True)
            return
        estimate = self.estimator.estimate
        if pauses.held(consumer, now, estimate):
            return  # it came back and was paused again: it waits (sfu/resume_backoff.py)
        option = options[choice]
        if choice != current:
            logger.debug(
                "%r: option %s -> %s (%d/%d bit/s, estimate %r)",
                consumer,
                current,
                choice,
                option.spatial,
                option.temporal,
                self.estimator,
            )
        if current is not None and choice < current:
            pauses.stepped_down(consumer, now)
        consumer.set_target(option.spatial, option.temporal)
        if pauses.resume(consumer, now, estimate):
            consumer.resume("bandwidth")
            self.resumed_at = now
            logger.info("%r resumed", consumer)
            self._notify_paused(consumer, False)

    def _notify_paused(self, consumer: Consumer, paused: bool) -> None:
        self._notify(
            {
                "type": "track_paused",
                "track_id": consumer.producer.id,
                "paused": paused,
                "reason": "bandwidth",
            }
        )

    def _on_round_trip(self, rtt: float, sent_at: float, now: float) -> None:
        self.rtt = rtt
        estimator = self.estimator
        delay = self._padding.queue_delay(rtt, estimator.probing, now)
        if delay is not None:
            sent = self._rates.total
            estimator.on_queue_delay(delay, sent_at, now, self.jitter, sent)

    # -- reporting ----------------------------------------------------------------------

    @property
    def red_on(self) -> bool:
        """RED audio forwarded (where negotiated): the link has room for it."""
        return self._red.on

    def quality(self, video: Iterable[Consumer]) -> dict[str, Any]:
        tracks = [track_quality(c, self._rates.of(c)) for c in video]
        return {
            "type": "quality",
            "estimate_bps": int(self.estimator.estimate),
            # True: redundant audio forwarded; False: off, the link is too weak
            # for it; None: no audio track here has RED at both ends
            "audio_red": self._red.reported,
            "link": self.link_stats(),
            "tracks": tracks,
        }

    def link_stats(self) -> dict[str, Any]:
        """The receiver's view of its link, from its receiver reports."""
        rtt = self.rtt
        if rtt is None:
            # no RTX stream to time: the media streams' sender reports
            measured = [c.rtt_ms for c in self._consumers() if c.rtt_ms is not None]
            rtt = max(measured) / 1000 if measured else None
        return {
            "loss": round(self.estimator.loss, 4),
            "jitter_ms": round(self.jitter * 1000, 1),
            "rtt_ms": None if rtt is None else round(rtt * 1000, 1),
            "queue_delay_ms": round(self.estimator.queue_delay * 1000, 1),
        }


def _index_of(consumer: Consumer, options: list[Option]) -> int | None:
    """The option a Consumer is at (its target), or the nearest below it."""
    best = None
    selection = consumer.layer_selection
    for i, option in enumerate(options):
        if (
            option.spatial == selection.target_layer
            and option.temporal <= selection.target_temporal
            and (best is None or option.temporal > options[best].temporal)
        ):
            best = i
    if best is None:
        below = [i for i, o in enumerate(options) if o.spatial < selection.target_layer]
        best = max(below, default=0)
    return best


def _size_limit(layers: list[Layer], size: tuple[int, int] | None) -> int:
    """Index in ``layers`` of the smallest one big enough for ``size`` (the last if none).

    No size said: no limit. A 0x0 size (not on screen): the smallest layer.
    """
    if size is None:
        return len(layers) - 1
    width, height = size
    if not width or not height:
        return 0
    slack = TUNING.size_slack
    for i, layer in enumerate(layers):
        if not layer.width:
            return len(layers) - 1  # sizes not known yet: no limit
        if layer.width >= width * slack and layer.height >= height * slack:
            return i
    return len(layers) - 1
