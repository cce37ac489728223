"""PublisherLayers: the bookkeeping of one published track's layers.

Which layer (sfu/layers.py) each of the track's SSRCs, media or RTX,
belongs to, and which layers the publisher should keep sending (the
``publisher_layers`` message): the Producer says up to which layer someone
needs, this decides what to switch on or off, and when.

A layer that *arrives* and that nobody has needed for LAYER_STOP_DELAY
seconds is switched off (it costs the publisher's uplink). One the
publisher does not send (never yet, or not for LAYER_STALE seconds: a
browser drops its upper layers by itself when its own estimate is too low
for them) is left alone while every layer below it is on: it costs nothing,
and switching it off and on again made Chromium probe its thin uplink every
ten seconds. A layer switched on stays on at least LAYER_MIN_ON seconds
(unless its absence would leave a gap below a needed layer). Every layer
below a needed one stays on: a browser told to send its top layer and not
the middle one spends a thin uplink on 720p first (real Chromium on a
250 kbit/s uplink: ``[q, f]`` and ``[q, h, f]`` in turn).
"""

from __future__ import annotations

from sfu.layers import Layer

LAYER_STOP_DELAY = 5.0
"""Seconds a layer must be unneeded before the publisher is told to stop it."""
LAYER_MIN_ON = 10.0  # seconds a layer switched on stays on at least
LAYER_STALE = 2.0  # seconds without a packet: the publisher is not sending the layer


class PublisherLayers:
    """A track's layers by SSRC, and which of them the publisher should send."""

    __slots__ = ("_switched", "_unneeded_since", "by_ssrc", "layers", "simulcast")

    def __init__(self, rids: list[str] | None, clock_rate: int) -> None:
        self.layers = [Layer(i, rid, clock_rate) for i, rid in enumerate(rids or [None])]
        self.simulcast = len(self.layers) > 1
        self.by_ssrc: dict[int, Layer] = {}  # media and RTX SSRCs
        self._unneeded_since: dict[int, float] = {}  # layer index -> since when nobody needs it
        self._switched: dict[int, float] = {}  # layer index -> when it was last switched on/off

    # -- SSRCs -------------------------------------------------------------------

    def bind_ssrc(self, ssrc: int, layer: Layer | None = None) -> Layer:
        layer = layer or self.layers[0]
        if layer.ssrc is not None:
            self.by_ssrc.pop(layer.ssrc, None)
        layer.bind(ssrc)
        self.by_ssrc[ssrc] = layer
        return layer

    def bind_rtx(self, rtx_ssrc: int, layer: Layer | None = None) -> Layer:
        layer = layer or self.layers[0]
        layer.rtx_ssrc = rtx_ssrc
        self.by_ssrc[rtx_ssrc] = layer
        return layer

    def by_rid(self, rid: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.rid == rid), None)

    # -- which layers the publisher sends -----------------------------------------------

    def keep_up_to(self, top: int, now: float) -> list[bool] | None:
        """Layers 0..``top`` are needed: which to send, or None when nothing changed."""
        if not self.simulcast:
            if self.layers[0].active:
                return None
            self.layers[0].active = True  # back from a weak uplink
            return [True]
        now_ms = now * 1000
        changed = False
        below_on = True  # every layer below this one stays on
        for layer in self.layers:
            index = layer.index
            if index <= top:
                self._unneeded_since.pop(index, None)
                if not layer.active:
                    layer.active = changed = True
                    self._switched[index] = now
            elif layer.active:
                arriving = (
                    layer.stream is not None and now_ms - layer.last_arrival_ms < LAYER_STALE * 1000
                )
                if arriving:
                    since = self._unneeded_since.setdefault(index, now)
                else:
                    since = now
                    self._unneeded_since.pop(index, None)
                if not below_on or (
                    now - since >= LAYER_STOP_DELAY
                    and now - self._switched.get(index, -1e9) >= LAYER_MIN_ON
                ):
                    layer.active = False
                    changed = True
                    self._switched[index] = now
                    self._unneeded_since.pop(index, None)
            below_on = below_on and layer.active
        return [layer.active for layer in self.layers] if changed else None

    def all_off(self, now: float) -> list[bool] | None:
        """None of them (a weak uplink: audio first), or None when already so."""
        if not any(layer.active for layer in self.layers):
            return None
        for layer in self.layers:
            if layer.active:
                layer.active = False
                self._switched[layer.index] = now
        self._unneeded_since.clear()
        return [False] * len(self.layers)
