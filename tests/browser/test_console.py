"""The specialist's multi-room console (web-client/console/) in real Chromium.

One console page holds three consult rooms (one ConsultSession each). In
every room an aiortc health worker publishes a test pattern and a tone and
reads what it receives. The test checks that only the focused room gets the
specialist's media, that video from rooms on hold is paused on the server,
that switching focus is fast and opens no connection, and that a patient
entering any room's lobby is announced and can be admitted from the console.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from sfu.consumer import Consumer, ConsumerState
from sfu.media import MediaKind, Source
from sfu.participant import Role
from sfu.producer import Producer
from signaling.client import ConsultClient, RemoteTrack
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import RunningServer


async def nurse(server: RunningServer, room: str, n: int) -> ConsultClient:
    """An aiortc health worker in ``room`` publishing a test pattern and a tone."""
    client = server.client(server.token(room, f"nurse-{n}", Role.HEALTH_WORKER, name=f"Nurse {n}"))
    await client.connect()
    await client.join()
    await client.publish([(ToneTrack(), Source.MICROPHONE), (CameraTrack(320, 240), Source.CAMERA)])
    return client


def producer_of(server: RunningServer, room: str, participant_id: str, kind: MediaKind) -> Producer:
    participant = server.room(room).participants[participant_id]
    assert participant.publisher is not None
    return next(p for p in participant.publisher.producers.values() if p.kind is kind)


def consumers_of(server: RunningServer, room: str, participant_id: str) -> list[Consumer]:
    """The console's video consumers (what it receives) in one room."""
    participant = server.room(room).participants[participant_id]
    return [c for c in participant.consumers.values() if c.kind is MediaKind.VIDEO]


async def eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def assert_held(server: RunningServer, room: str, console_id: str) -> None:
    """Room on hold: our tracks muted there, the video we receive paused by us."""
    for kind in (MediaKind.AUDIO, MediaKind.VIDEO):
        assert producer_of(server, room, console_id, kind).muted, (room, kind)
    consumers = consumers_of(server, room, console_id)
    assert consumers, room
    for consumer in consumers:
        assert "subscriber" in consumer.pause_reasons, (room, consumer.pause_reasons)
        assert consumer.state in (ConsumerState.PAUSED, ConsumerState.NEW), (room, consumer.state)


def forwarding_to(server: RunningServer, room: str, participant_id: str) -> list[str]:
    """What the server forwards to one participant, for a failure's message."""
    participant = server.room(room).participants[participant_id]
    # keyframes too: this test fails about 1 run in 4 (at b5279b4 as now) with the nurse
    # decoding 1-2 frames after the switch back while its consumer forwards
    return [
        f"{c!r} {c.state.value} {sorted(c.pause_reasons)} packets in {c.producer.counters.packets}"
        f" out {c.counters.packets}, keyframes in {c.producer.counters.keyframes}, PLIs from the"
        f" subscriber {c.counters.keyframe_requests} and to the publisher"
        f" {c.producer.counters.keyframe_requests}, muted {c.producer.muted}, layers"
        f" {c.layer_selection.current_layer}->{c.layer_selection.target_layer} of"
        f" {[(x.rid, x.active, round(x.rates.fps, 1)) for x in c.producer.layers]}"
        for c in participant.consumers.values()
    ]


def focused_ok(server: RunningServer, room: str, console_id: str) -> bool:
    """Focused room: our tracks not muted, the video we receive forwarded."""
    if any(producer_of(server, room, console_id, k).muted for k in MediaKind):
        return False
    consumers = consumers_of(server, room, console_id)
    return bool(consumers) and all(
        not c.pause_reasons and c.state is ConsumerState.FORWARDING for c in consumers
    )


async def test_console_focus_hold_switch_and_lobby(
    server: RunningServer, open_console: Callable[..., Any]
) -> None:
    rooms = ["console-room-a", "console-room-b", "console-room-c"]
    nurses = list(await asyncio.gather(*(nurse(server, room, i) for i, room in enumerate(rooms))))
    readers: list[TrackReader] = []
    patient: ConsultClient | None = None
    try:
        tokens = [
            server.token(room, "dr-console", Role.SPECIALIST, name="Dr. Console") for room in rooms
        ]
        page = await open_console(tokens=",".join(tokens), lang="en")
        summary = await page.summary()
        assert [r["state"] for r in summary] == ["active"] * 3, await page.dump()
        assert [r["room"] for r in summary] == rooms
        assert [r["tileState"] for r in summary] == ["in-call", "on-hold", "on-hold"]
        ids = [r["participantId"] for r in summary]

        # every nurse receives the console's tracks (an m-line each), and reads its video
        def video_of(pid: str) -> Callable[[RemoteTrack], bool]:
            return lambda t: t.participant_id == pid and t.kind == "video"

        videos = await asyncio.gather(
            *(
                client.wait_for_track(video_of(pid), timeout=20)
                for client, pid in zip(nurses, ids, strict=True)
            )
        )
        readers += [TrackReader(v.track) for v in videos]

        # (1) room 0 is focused: its nurse decodes the specialist; rooms 1 and 2 get nothing
        got = await readers[0].wait_frames(15, timeout=20)
        assert got.sizes and all(w > 0 and h > 0 for w, h in got.sizes), got.sizes
        await readers[0].wait_frames(got.frames + 10, timeout=10)  # still rising
        assert readers[1].stats.frames == 0 and readers[2].stats.frames == 0
        for i in (1, 2):
            for kind in (MediaKind.AUDIO, MediaKind.VIDEO):
                sent = producer_of(server, rooms[i], ids[i], kind).counters.packets
                assert sent == 0, (rooms[i], kind, sent)
        assert producer_of(server, rooms[0], ids[0], MediaKind.VIDEO).counters.packets > 20

        # (3) what the console receives: forwarded in room 0, paused by us in rooms 1 and 2
        await eventually(lambda: focused_ok(server, rooms[0], ids[0]), "room 0 forwarding")
        for i in (1, 2):
            assert_held(server, rooms[i], ids[i])
        nurse_ids = [c.participant_id for c in nurses]
        assert await page.decoded(0, nurse_ids[0]) > 0
        assert await page.decoded(1, nurse_ids[1]) == 0
        assert await page.decoded(2, nurse_ids[2]) == 0

        # (2) key "3" focuses room 2: fast, and no new connection
        before = await page.counts()
        assert before["now"]["peerConnections"] == 6 and before["now"]["websockets"] == 3, before
        assert before["peerConnections"] == 6 and before["websockets"] == 3, before
        await page.page.keyboard.press("3")
        await page.wait_for("digiclinicConsole.switches.length === 1", what="switch done")
        switch = (await page.js("digiclinicConsole.switches"))[0]
        assert (switch["from"], switch["to"], switch["how"]) == (0, 2, "key"), switch
        assert switch["totalMs"] < 1000, switch
        after = await page.counts()
        assert {k: after[k] for k in ("peerConnections", "websockets", "csp")} == {
            k: before[k] for k in ("peerConnections", "websockets", "csp")
        }, (before, after)
        assert after["now"] == before["now"], (before, after)
        summary = await page.summary()
        assert [r["tileState"] for r in summary] == ["on-hold", "on-hold", "in-call"]
        assert all(s["live"] for s in summary[2]["senders"]), summary[2]
        assert all(s["track"] is None for r in summary[:2] for s in r["senders"]), summary

        # room 2's nurse now decodes the specialist, room 0's stops
        await readers[2].wait_frames(15, timeout=10)
        await asyncio.sleep(0.5)  # frames in flight at the switch
        frames0, packets0 = (
            readers[0].stats.frames,
            producer_of(server, rooms[0], ids[0], MediaKind.VIDEO).counters.packets,
        )
        frames2 = readers[2].stats.frames
        await asyncio.sleep(1.5)
        assert readers[0].stats.frames == frames0, (frames0, readers[0].stats.frames)
        assert producer_of(server, rooms[0], ids[0], MediaKind.VIDEO).counters.packets == packets0
        assert readers[2].stats.frames >= frames2 + 10, (frames2, readers[2].stats.frames)
        assert readers[1].stats.frames == 0

        # (3) again: room 2's video resumes for the console, room 0's is paused
        await eventually(lambda: focused_ok(server, rooms[2], ids[2]), "room 2 forwarding")
        for i in (0, 1):
            assert_held(server, rooms[i], ids[i])
        assert (
            consumers_of(server, rooms[0], ids[0])[0].state is ConsumerState.PAUSED
        )  # it was forwarding before
        decoded2 = await page.decoded(2, nurse_ids[2])
        await page.wait_for(
            f"""async () => (await digiclinicConsole.inbound(2)).some(s => s.kind === 'video'
                  && s.framesDecoded > {decoded2} + 10)""",
            what="console decodes room 2",
        )
        await page.wait_for(
            """[...document.querySelectorAll('.tile.focused video')]
                 .some(v => v.videoWidth > 0 && v.currentTime > 0.5)""",
            what="focused room's video playing",
        )

        # (4) a patient enters room 1's lobby: banner, live region, tile state, then Admit
        patient = server.client(server.token(rooms[1], "patient-amina", Role.PATIENT, name="Amina"))
        await patient.connect()
        joined = await patient.join()
        assert joined["state"] == "lobby"
        await page.wait_for(
            "!document.getElementById('banner').hidden", what="lobby banner", timeout=10
        )
        banner = page.page.locator("#banner")
        assert await banner.get_attribute("aria-live") == "assertive"
        assert "Amina is waiting in console-room-b" in await banner.inner_text()
        notifications = await page.js("digiclinicConsole.notifications")
        assert [(n["room"], n["name"]) for n in notifications] == [(1, "Amina")]
        tile = page.page.locator('.tile[data-room="1"]')
        assert await tile.get_attribute("data-state") == "waiting"
        admit = tile.get_by_role("button", name="Admit Amina to console-room-b")
        assert await admit.is_visible()
        assert await tile.get_by_role("button", name="Deny Amina entry to console-room-b").count()
        await page.page.wait_for_timeout(300)  # let the focused video settle for the picture
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "console.png"
        await page.page.screenshot(path=str(shot), full_page=True)
        print("screenshot:", shot)

        await admit.click()
        await patient.wait_admitted(timeout=10)
        await page.wait_for(
            """document.querySelector('.tile[data-room="1"]').dataset.state === 'on-hold'
                 && document.getElementById('banner').hidden""",
            what="lobby cleared",
        )
        # the admitted patient publishes in a room on hold: the console pauses that video at once
        await patient.publish([(CameraTrack(160, 120), Source.CAMERA)])
        patient_video = f"{patient.participant_id}:"
        await eventually(
            lambda: any(
                c.producer.id.startswith(patient_video) and "subscriber" in c.pause_reasons
                for c in consumers_of(server, rooms[1], ids[1])
            ),
            "patient's video paused for the console",
        )

        # clicking a tile's button switches back; still no new connection
        await page.page.get_by_role(
            "button", name="Switch here: room 1, console-room-a (key 1)"
        ).click()
        await page.wait_for("digiclinicConsole.switches.length === 2", what="second switch")
        back = (await page.js("digiclinicConsole.switches"))[1]
        assert (back["from"], back["to"], back["how"]) == (2, 0, "click"), back
        assert back["totalMs"] < 1000, back
        try:
            await readers[0].wait_frames(frames0 + 10, timeout=10)
        except TimeoutError:
            raise AssertionError(
                f"room 0's nurse got {readers[0].stats.frames - frames0} frames after the switch "
                f"back: {forwarding_to(server, rooms[0], nurse_ids[0] or '')}"
            ) from None
        final = await page.counts()
        assert final["peerConnections"] == 6 and final["websockets"] == 3, final
        assert final["csp"] == [], final["csp"]
        assert await page.js("digiclinicConsole.errors") == [], await page.dump()
        assert not [line for line in page.console if line.startswith("pageerror")], page.console
        print(
            f"switch 0->2 (key): media {switch['mediaMs']} ms, total {switch['totalMs']} ms; "
            f"switch 2->0 (click): media {back['mediaMs']} ms, total {back['totalMs']} ms; "
            f"peer connections {final['peerConnections']}, websockets {final['websockets']}"
        )
    finally:
        for reader in readers:
            await reader.stop()
        for client in [*nurses, *([patient] if patient else [])]:
            with contextlib.suppress(Exception):
                await client.leave()


async def test_console_demo_mode_ten_rooms_in_french(
    server: RunningServer, open_console: Callable[..., Any]
) -> None:
    """Demo mode mints ten development tokens; key 0 focuses room 10; French UI."""
    page = await open_console(rooms="10", prefix="demo-console", lang="fr")
    summary = await page.summary()
    rooms = [f"demo-console-{n}" for n in range(1, 11)]
    assert [(r["room"], r["state"]) for r in summary] == [(room, "active") for room in rooms], (
        await page.dump()
    )
    for room, r in zip(rooms, summary, strict=True):
        participant = server.room(room).participants[r["participantId"]]
        assert participant.role is Role.SPECIALIST
        assert producer_of(server, room, r["participantId"], MediaKind.VIDEO).muted == (
            room != rooms[0]
        )
    assert await page.js("document.documentElement.lang") == "fr"
    assert await page.page.locator("h1").inner_text() == "Console du spécialiste"
    badges = await page.page.locator(".tile .badge").all_inner_texts()
    assert badges == ["En consultation"] + ["Mise en attente"] * 9, badges
    # alone in the rooms: publishers only (the server offers a subscriber connection
    # when there is something to receive), one WebSocket per room
    counts = await page.counts()
    assert counts["websockets"] == 10 and counts["peerConnections"] == 10, counts
    assert counts["csp"] == [], counts

    await page.page.keyboard.press("0")
    await page.wait_for("digiclinicConsole.switches.length === 1", what="switch")
    switch = (await page.js("digiclinicConsole.switches"))[0]
    assert (switch["from"], switch["to"]) == (0, 9) and switch["totalMs"] < 1000, switch
    focused = page.page.locator(".tile.focused")
    assert await focused.get_attribute("data-room") == "9"
    assert await focused.locator(".badge").inner_text() == "En consultation"
    assert not producer_of(server, rooms[9], summary[9]["participantId"], MediaKind.VIDEO).muted
    assert producer_of(server, rooms[0], summary[0]["participantId"], MediaKind.VIDEO).muted
    assert (await page.counts())["peerConnections"] == 10
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.page.screenshot(path=str(SCREENSHOTS / "console-10-rooms-fr.png"), full_page=True)
    print(f"10 rooms: switch 1->10 total {switch['totalMs']} ms")
