"""Chromium pages using web-client/digiclinic-client.js exchange media through the SFU.

The page (web-client/test/consult.html) joins with a token from the query
string, publishes Chromium's fake camera (asked for 640x360) and fake
microphone, and reports the subscriber connection's getStats().
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sfu.media import Source
from sfu.participant import Role
from signaling.demo_media import CameraTrack, ToneTrack, TrackReader
from tests.browser.conftest import ConsultPage
from tests.conftest import RunningServer

OpenConsult = Callable[..., Any]


def inbound(stats: dict[str, Any], participant_id: str, kind: str) -> dict[str, Any] | None:
    return next(
        (s for s in stats["inbound"] if s["participantId"] == participant_id and s["kind"] == kind),
        None,
    )


async def wait_inbound(
    page: ConsultPage, participant_id: str, kind: str, ok: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll the page's getStats until the inbound stream from ``participant_id`` is ``ok``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    last = None
    while loop.time() < deadline:
        last = inbound(await page.stats(), participant_id, kind)
        if last is not None and ok(last):
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"{page.name}: inbound {kind} never good: {last}\n{await page.dump()}")


async def video_decoding(page: ConsultPage, participant_id: str) -> dict[str, Any]:
    """The page decodes ``participant_id``'s video, and keeps decoding it."""
    first = await wait_inbound(page, participant_id, "video", lambda s: s["framesDecoded"] >= 10)
    later = await wait_inbound(
        page, participant_id, "video", lambda s: s["framesDecoded"] >= first["framesDecoded"] + 10
    )
    assert later["frameWidth"] > 0 and later["frameHeight"] > 0, later
    return later


async def wait_rendered(page: ConsultPage, participant_id: str) -> None:
    """A remote <video> of that participant shows frames (for the screenshot)."""
    await page.wait_for(
        f"""() => digiclinicTest.remoteVideos.some(v =>
              digiclinicTest.session.remoteTracks.get(v.dataset.trackId)?.participantId
                === {participant_id!r} && v.videoWidth > 0 && v.currentTime > 0.5)""",
        what=f"a playing <video> of {participant_id}",
    )


async def test_chromium_and_aiortc_exchange_video_and_audio(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    room = "browser-consult-1"
    # the aiortc participant: a health worker publishing a 320x240 test pattern and a tone
    client = server.client(server.token(room, "hw-aiortc", Role.HEALTH_WORKER))
    readers: list[TrackReader] = []
    try:
        await client.connect()
        await client.join()
        await client.publish(
            [(ToneTrack(), Source.MICROPHONE), (CameraTrack(320, 240), Source.CAMERA)]
        )

        page = await open_consult(room, "dr-chromium", Role.SPECIALIST, name="Dr. Chromium")
        browser_id = await page.participant_id()
        await page.wait_for(
            "digiclinicTest.state === 'published' || digiclinicTest.state === 'failed'",
            what="published",
        )
        assert await page.js("digiclinicTest.state") == "published", await page.dump()
        published = await page.js("digiclinicTest.published")
        assert sorted(t["source"] for t in published) == ["camera", "microphone"]

        # aiortc decodes the browser's video and receives its audio
        video = await client.wait_for_track(
            lambda t: t.participant_id == browser_id and t.kind == "video", timeout=20
        )
        audio = await client.wait_for_track(
            lambda t: t.participant_id == browser_id and t.kind == "audio", timeout=20
        )
        assert video.source == "camera" and audio.source == "microphone"
        video_reader, audio_reader = TrackReader(video.track), TrackReader(audio.track)
        readers += [video_reader, audio_reader]
        got = await video_reader.wait_frames(20, timeout=30)
        frames_then = got.frames
        assert got.sizes and all(w > 0 and h > 0 for w, h in got.sizes), got.sizes
        await video_reader.wait_frames(frames_then + 10, timeout=20)  # still rising
        heard = await audio_reader.wait_frames(50, timeout=20)
        assert heard.samples >= 50 * 960, heard  # 20 ms Opus frames at 48 kHz

        # the browser decodes aiortc's 320x240 video and receives its audio
        aiortc_id = client.participant_id
        assert aiortc_id is not None
        decoded = await video_decoding(page, aiortc_id)
        assert (decoded["frameWidth"], decoded["frameHeight"]) == (320, 240), decoded
        sound = await wait_inbound(page, aiortc_id, "audio", lambda s: s["packetsReceived"] > 50)
        assert sound["source"] == "microphone"
        await wait_rendered(page, aiortc_id)
        assert await page.js("digiclinicTest.errors") == []

        totals = server.rooms.totals()
        assert (totals.producers, totals.consumers) == (4, 4)
        print(
            f"aiortc decoded the browser's video at {sorted(got.sizes)}; "
            f"browser decoded {decoded['framesDecoded']} frames at "
            f"{decoded['frameWidth']}x{decoded['frameHeight']}, "
            f"{sound['packetsReceived']} audio packets"
        )
        print("screenshot:", await page.screenshot("browser-and-aiortc-specialist.png"))
    finally:
        for reader in readers:
            await reader.stop()
        await client.leave()


async def test_two_chromium_pages_decode_each_other(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    room = "browser-consult-2"
    doctor = await open_consult(room, "dr-a", Role.SPECIALIST, name="Dr. A")
    doctor_id = await doctor.participant_id()
    await doctor.wait_for("digiclinicTest.state === 'published'", what="doctor published")

    # the patient waits in the lobby until the doctor's page admits it
    patient = await open_consult(room, "patient-b", Role.PATIENT, name="Patient B")
    patient_id = await patient.participant_id()
    await patient.wait_for("digiclinicTest.state === 'lobby'", what="patient in the lobby")
    await doctor.wait_for(
        f"""digiclinicTest.events.some(e => e.type === 'lobby'
              && e.detail.waiting.some(w => w.id === {patient_id!r}))""",
        what="lobby event",
    )
    await doctor.js("id => digiclinicTest.session.admit(id)", patient_id)
    await patient.wait_for("digiclinicTest.state === 'published'", what="patient published")

    for page, other in ((doctor, patient_id), (patient, doctor_id)):
        decoded = await video_decoding(page, other)
        await wait_inbound(page, other, "audio", lambda s: s["packetsReceived"] > 50)
        await wait_rendered(page, other)
        assert await page.js("digiclinicTest.errors") == []
        print(f"{page.name} decodes {other}: {decoded}")

    names = await doctor.js("[...digiclinicTest.session.participants.values()].map(p => p.name)")
    assert names == ["Patient B"]
    for page in (doctor, patient):
        print("screenshot:", await page.screenshot(f"two-browsers-{page.name}.png"))

    # mute reaches the other side; so does leaving, which removes the tracks
    camera = await doctor.js("digiclinicTest.published.find(t => t.source === 'camera').trackId")
    await doctor.js("id => digiclinicTest.session.mute(id, true)", camera)
    await patient.wait_for(
        f"""digiclinicTest.events.some(e => e.type === 'track-muted'
              && e.detail.track_id === {camera!r} && e.detail.muted)""",
        what="track-muted",
    )
    assert await patient.js(
        f"""digiclinicTest.session.participants.get({doctor_id!r})
              .producers.find(t => t.id === {camera!r}).muted"""
    )
    await patient.js("digiclinicTest.session.leave()")
    assert await patient.js("digiclinicTest.session.state") == "closed"
    await doctor.wait_for(
        f"""digiclinicTest.events.some(e => e.type === 'participant-left'
              && e.detail.participant_id === {patient_id!r})""",
        what="participant-left",
    )
    await doctor.wait_for(
        "!digiclinicTest.session.remoteTracks.size && !digiclinicTest.remoteVideos.length",
        what="remote tracks removed",
    )


async def test_relay_policy_applies_to_both_connections(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    """relay=1 gives both RTCPeerConnections iceTransportPolicy "relay".

    No TURN server here, so the page offers no candidate at all and media
    cannot flow; signalling still completes.
    """
    room = "browser-relay"
    client = server.client(server.token(room, "hw-aiortc", Role.HEALTH_WORKER))
    try:
        await client.connect()
        await client.join()
        await client.publish([(CameraTrack(160, 120), Source.CAMERA)])
        page = await open_consult(room, "dr-relay", Role.SPECIALIST, relay=True)
        await page.wait_for("digiclinicTest.state === 'published'", what="published")
        await page.wait_for(
            "digiclinicTest.session.subscriberPc?.signalingState === 'stable'",
            what="subscriber answered",
        )
        for pc in ("publisherPc", "subscriberPc"):
            policy = await page.js(
                f"digiclinicTest.session.{pc}.getConfiguration().iceTransportPolicy"
            )
            assert policy == "relay", (pc, policy)
            sdp = await page.js(f"digiclinicTest.session.{pc}.localDescription.sdp")
            assert "a=candidate:" not in sdp, (pc, sdp)
    finally:
        await client.leave()


async def test_refused_join_and_denial_reach_the_page(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    """Server error codes surface as DigiclinicError codes; a denied page is closed."""
    bad = await open_consult("browser-deny", "forger", Role.PATIENT, token="not-a-token")
    await bad.wait_for("digiclinicTest.state === 'failed'", what="refused join")
    assert [e["code"] for e in await bad.js("digiclinicTest.errors")] == ["token_invalid"]

    admitter = server.client(server.token("browser-deny", "hw", Role.HEALTH_WORKER))
    try:
        await admitter.connect()
        await admitter.join()
        page = await open_consult("browser-deny", "patient-x", Role.PATIENT)
        patient_id = await page.participant_id()
        await page.wait_for("digiclinicTest.state === 'lobby'", what="lobby")
        assert await page.js("digiclinicTest.events[0].type") == "lobby-wait"
        await admitter.wait_event("lobby", where=lambda e: bool(e["waiting"]))
        await admitter.deny(patient_id)
        await page.wait_for("digiclinicTest.session.state === 'denied'", what="denied")
        types = [e["type"] for e in await page.js("digiclinicTest.events")]
        assert types[-2:] == ["denied", "closed"], types
        # admitted() rejected: the page never published
        assert [e["code"] for e in await page.js("digiclinicTest.errors")] == ["denied"]
    finally:
        await admitter.leave()


async def test_a_large_rooms_batched_arrivals_reach_the_page_one_by_one(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    """From rooms.announce_batch_from (10) active participants, arrivals come in batches.

    The page's client turns each ``participants_changed`` back into the
    ``participant-joined`` / ``participant-left`` events the widget and the
    console listen to, and keeps its roster right.
    """
    crowd = [
        server.client(server.token("browser-lecture", f"o{i}", Role.OBSERVER, name=f"Observer {i}"))
        for i in range(11)  # with the page: rooms.max_participants (12)
    ]
    try:
        for client in crowd[:9]:
            await client.connect()
            await client.join()
        page = await open_consult("browser-lecture", "dr-lecture", Role.SPECIALIST)
        await page.participant_id()
        late = crowd[9:]
        await asyncio.gather(*(c.connect() for c in late))
        await asyncio.gather(*(c.join() for c in late))
        gone = crowd[0]
        gone_id = gone.participant_id
        await gone.leave()
        # 9 + 2 - 1 others in the roster, learnt from batches
        await page.wait_for(
            "digiclinicTest.session.participants.size === 10", what="a roster of 10 others"
        )
        assert any(m.get("type") == "participants_changed" for m in page.ws_received)
        assert not any(m.get("type") == "participant_joined" for m in page.ws_received)
        events = await page.js("digiclinicTest.events")
        joined = {
            e["detail"]["participant"]["name"] for e in events if e["type"] == "participant-joined"
        }
        assert {"Observer 9", "Observer 10"} <= joined
        left = [e["detail"]["participant_id"] for e in events if e["type"] == "participant-left"]
        assert left == [gone_id]
        names = await page.js(
            "[...digiclinicTest.session.participants.values()].map(p => p.name).sort()"
        )
        assert "Observer 0" not in names and "Observer 10" in names
    finally:
        await asyncio.gather(*(c.leave() for c in crowd[1:]), return_exceptions=True)
