"""sfu/announcements.py: one by one in a consult, in batches in a large room."""

from __future__ import annotations

import asyncio
from typing import Any

from sfu.announcements import Announcements
from sfu.participant import Grants, Participant, Role
from signaling.client_channel import expand_participants_changed

WINDOW = 0.05


def person(n: int) -> Participant:
    return Participant(f"p{n}", f"id{n}", f"Person {n}", Role.OBSERVER, Grants(), lambda e: None)


class Sent:
    def __init__(self) -> None:
        self.events: list[tuple[dict[str, Any], Participant | None]] = []

    def __call__(self, event: dict[str, Any], skip: Participant | None) -> None:
        self.events.append((event, skip))

    @property
    def types(self) -> list[str]:
        return [str(e["type"]) for e, _ in self.events]


async def test_a_consult_hears_of_each_arrival_and_departure_at_once() -> None:
    sent = Sent()
    announcements = Announcements(sent, batch_from=10, window=WINDOW)
    amina = person(1)
    announcements.joined(amina, active=3)
    announcements.left("p2", "left", active=2)
    assert sent.types == ["participant_joined", "participant_left"]
    assert sent.events[0][1] is amina  # not told of its own arrival
    assert sent.events[0][0]["participant"]["id"] == "p1"
    assert not announcements.pending


async def test_a_large_room_hears_of_a_storm_in_one_message() -> None:
    sent = Sent()
    announcements = Announcements(sent, batch_from=10, window=WINDOW)
    people = [person(n) for n in range(10, 60)]
    for i, p in enumerate(people):
        announcements.joined(p, active=10 + i)
    announcements.left("p3", "left", active=58)
    announcements.joined(person(99), active=59)
    announcements.left("p99", "left", active=58)  # came and went: never announced
    assert sent.events == []
    await asyncio.sleep(WINDOW * 3)
    ((event, skip),) = sent.events
    assert skip is None and event["type"] == "participants_changed"
    assert [p["id"] for p in event["joined"]] == [p.id for p in people]
    assert event["left"] == [{"participant_id": "p3", "reason": "left"}]
    # what a client makes of it: the one-by-one events, joined before left
    singles = expand_participants_changed(event)
    assert [e["type"] for e in singles] == ["participant_joined"] * 50 + ["participant_left"]


async def test_what_is_pending_goes_before_anything_else_and_nothing_after_close() -> None:
    sent = Sent()
    announcements = Announcements(sent, batch_from=2, window=10.0)
    announcements.joined(person(1), active=2)
    announcements.flush()  # the room is about to broadcast something else
    assert sent.types == ["participants_changed"]
    announcements.joined(person(2), active=1)  # small again, but nothing pending: at once
    assert sent.types == ["participants_changed", "participant_joined"]
    announcements.joined(person(3), active=5)
    announcements.close()
    announcements.joined(person(4), active=5)
    announcements.flush()
    assert sent.types == ["participants_changed", "participant_joined"]
