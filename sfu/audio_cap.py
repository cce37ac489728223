"""Ask publishers for less audio while a subscriber's link cannot carry theirs.

The SFU never transcodes, so on a link of ~60 kbit/s a browser's default
Opus (32 kbit/s in 20 ms packets, ~61 kbit/s on the wire) fills the link by
itself: audio is lost and the signalling starves. Once the video is gone
and a congested link still spends most of its estimate on audio, the
subscriber wishes its publishers' Opus down to ``media.thin_link_opus_kbps``
(16 kbit/s: still wideband speech); the Producer asks its publisher for the
smallest wish of its subscribers (``publisher_audio``) and the browser caps
its encoder (``RTCRtpSender.setParameters``, ``maxBitrate``). The wish ends
once the estimate has held several times the audio it had before for a
while, so a capped link does not flap. A dip that still leaves twice that
audio does not restart the wait: a recovered link's estimate wobbles (one
receiver's REMB, one lossy report) and the voice would stay thin for no
reason; below twice, the link is nearly as thin as when the wish began.
"""

from __future__ import annotations

THIN_SHARE = 0.6  # audio over this share of a congested link's estimate: too thin
RELIEF_MULTIPLE = 4.0  # the wish ends once the estimate is this many times the audio before
RELIEF_HOLD = 10.0  # seconds the estimate must hold that
RELIEF_RESET = 2.0  # ...never falling below this many times the audio before


class ThinLinkAudio:
    """One subscriber's wish for smaller publisher audio, with hysteresis."""

    def __init__(self, cap_bps: int) -> None:
        self.cap_bps = cap_bps  # 0: never ask
        self.wish: int | None = None
        self._audio_before = 0.0  # what the audio took when the wish began
        self._high_since: float | None = None

    def update(self, estimate: float, audio_rate: float, congested: bool, now: float) -> int | None:
        """The cap this subscriber wishes on its publishers' audio (bit/s), or None."""
        if not self.cap_bps:
            return None
        if self.wish is None:
            if congested and audio_rate > THIN_SHARE * estimate and audio_rate > 0:
                self.wish = self.cap_bps
                self._audio_before = audio_rate
                self._high_since = None
        elif estimate >= RELIEF_MULTIPLE * self._audio_before:
            if self._high_since is None:
                self._high_since = now
            elif now - self._high_since >= RELIEF_HOLD:
                self.wish = None
        elif estimate < RELIEF_RESET * self._audio_before:
            self._high_since = None
        return self.wish
