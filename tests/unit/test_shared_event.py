"""A room's broadcast is encoded to JSON once for all its recipients (sfu/participant.py)."""

from __future__ import annotations

import json

from sfu.participant import SharedEvent


def test_encoded_once_and_the_same_for_everyone() -> None:
    event = SharedEvent({"type": "participant_left", "participant_id": "p1", "reason": "left"})
    first = event.encoded()
    assert json.loads(first) == dict(event)
    assert event.encoded() is first  # not encoded again for the next recipient
    assert event["type"] == "participant_left"  # still an event like any other
