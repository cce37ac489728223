"""ActiveSpeaker: whose video a subscriber's allocation favours as the speaker's."""

from __future__ import annotations

from sfu.consumer import Consumer
from sfu.media import MediaKind

SPEAKER_LEVEL = 70  # -dBov: quieter than this is not speaking


class ActiveSpeaker:
    """The loudest participant among the audio a subscriber receives.

    A new speaker must be the loudest on two ticks in a row, so one loud
    noise does not move the priority.
    """

    def __init__(self) -> None:
        self.participant_id: str | None = None
        self._candidate: str | None = None

    def update(self, live: list[Consumer]) -> None:
        loudest = min(
            (c.producer for c in live if c.kind is MediaKind.AUDIO),
            key=lambda p: p.audio.level,
            default=None,
        )
        candidate = (
            loudest.participant_id
            if loudest is not None and loudest.audio.level < SPEAKER_LEVEL
            else None
        )
        if candidate is not None and candidate == self._candidate:
            self.participant_id = candidate
        self._candidate = candidate
