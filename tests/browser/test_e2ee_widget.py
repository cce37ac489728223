"""The widget in an end-to-end encrypted consult (docs/e2ee.md), in real Chromium.

The portal hands the consult key to the widget (here through the example
page's URL fragment, which never reaches the server). Asserted on what a
person sees: the header's badge, the video playing, the banner of a page
with the wrong key, the ended screen of a page without a key.
"""

from __future__ import annotations

import os
from typing import Any

from e2ee.frames import encode_key
from sfu.participant import Role
from tests.browser.conftest import OpenWidget, WidgetPage
from tests.browser.widget_helpers import inbound_of, wait_decoding, wait_video_element
from tests.conftest import RunningServer

KEY = encode_key(3, os.urandom(32))


def badge_is(state: str) -> str:
    """JS: the header's end-to-end encryption badge is in ``state`` ("on", "partial")."""
    found = "widgetTest.element.shadowRoot.querySelector('.dc-e2ee')"
    return f"() => {found}?.dataset.state === {state!r}"


async def badge(page: WidgetPage) -> str:
    text: str = await page.js(
        "() => { const b = widgetTest.element.shadowRoot.querySelector('.dc-e2ee');"
        " return b && !b.hidden ? b.textContent : ''; }"
    )
    return text


async def banner(page: WidgetPage) -> str:
    text: str = await page.js(
        "() => { const b = widgetTest.element.shadowRoot.querySelector('.dc-banner');"
        " return b && !b.hidden ? b.textContent : ''; }"
    )
    return text


async def test_encrypted_consult_in_the_widget(
    server: RunningServer, open_widget: OpenWidget
) -> None:
    room = "e2ee-widget"
    doctor = await open_widget(
        room, "dr", Role.SPECIALIST, name="Dr. Okafor", e2ee="required", fragment={"e2ee": KEY}
    )
    await doctor.wait_screen("call")
    nurse = await open_widget(
        room,
        "hw",
        Role.HEALTH_WORKER,
        name="Nurse Ines",
        lang="fr",
        e2ee="required",
        fragment={"e2ee": KEY},
    )
    await nurse.wait_screen("call")
    doctor_id, nurse_id = await doctor.participant_id(), await nurse.participant_id()
    await wait_decoding(doctor, nurse_id)
    await wait_decoding(nurse, doctor_id)
    await wait_decoding(nurse, doctor_id, source="microphone", kind="audio")
    assert await wait_video_element(doctor, nurse_id) >= 320  # a simulcast layer, playing
    await doctor.wait_for(
        badge_is("on"),
        what="the badge",
    )
    assert await badge(doctor) == "End-to-end encrypted"
    await nurse.wait_for(
        badge_is("on"),
        what="the badge",
    )
    assert await badge(nurse) == "Chiffrée de bout en bout"
    assert await banner(nurse) == ""
    await nurse.screenshot("e2ee-widget-fr.png")

    # a third page, with the wrong key: it says so, and shows nothing of the others
    wrong = await open_widget(
        room,
        "hw2",
        Role.HEALTH_WORKER,
        name="Nurse Jean",
        e2ee="required",
        fragment={"e2ee": encode_key(3, os.urandom(32))},
    )
    await wrong.wait_screen("call")
    await wrong.wait_for(
        "() => !widgetTest.element.shadowRoot.querySelector('.dc-banner').hidden",
        what="the banner",
        timeout=20,
    )
    assert "does not have the right key" in await banner(wrong)
    video = await inbound_of(wrong, doctor_id)
    assert video["packetsReceived"] > 20 and video["framesDecoded"] == 0, video
    await wrong.screenshot("e2ee-widget-wrong-key.png")
    # the two others go on decoding each other
    await wait_decoding(
        doctor, nurse_id, since=(await inbound_of(doctor, nurse_id))["framesDecoded"]
    )


async def test_a_widget_without_the_key_says_why_it_cannot_join(
    server: RunningServer, open_widget: OpenWidget
) -> None:
    page = await open_widget("e2ee-widget-nokey", "pt", Role.PATIENT, lang="rw", e2ee="required")
    await page.wait_screen("ended")
    text = await page.shadow(".dc-body").inner_text()
    assert "ntiyahawe urufunguzo" in text, text


async def test_the_console_holds_a_key_per_room(
    server: RunningServer, open_widget: OpenWidget, open_console: Any
) -> None:
    """Two rooms, one end-to-end encrypted (its key in the fragment), one not."""
    nurse = await open_widget(
        "e2ee-console-1",
        "hw",
        Role.HEALTH_WORKER,
        name="Nurse Ines",
        e2ee="required",
        fragment={"e2ee": KEY},
    )
    await nurse.wait_screen("call")
    nurse_id = await nurse.participant_id()
    tokens = [
        server.token("e2ee-console-1", "dr", Role.SPECIALIST, e2ee="required"),
        server.token("e2ee-console-2", "dr", Role.SPECIALIST),
    ]
    console = await open_console(tokens=",".join(tokens), lang="en", fragment={"e2ee": f"{KEY},"})
    # the key does not stay in the address bar
    assert "e2ee" not in await console.js("location.href")
    await console.wait_for(
        f"async () => (await digiclinicConsole.inbound(0)).some(s => s.kind === 'video'"
        f" && s.participantId === {nurse_id!r} && s.framesDecoded > 10)",
        what="the nurse's video decoded in room 1",
        timeout=30,
    )
    summary = await console.summary()
    assert summary[0]["e2ee"] == {"mode": "required", "encrypted": True, "failing": False}
    assert summary[1]["e2ee"]["mode"] == "off"
    badges = await console.js(
        "[...document.querySelectorAll('.tile')].map(t => {"
        " const b = t.querySelector('.e2ee-badge'); return b.hidden ? '' : b.textContent; })"
    )
    assert badges == ["End-to-end encrypted", ""], badges
    await console.screenshot("e2ee-console.png")


async def test_an_optional_room_says_who_has_no_key(
    server: RunningServer, open_widget: OpenWidget
) -> None:
    """A page without the key joins an optional room: everyone is told, nothing garbled."""
    room = "e2ee-optional"
    doctor = await open_widget(
        room, "dr", Role.SPECIALIST, name="Dr. Okafor", e2ee="optional", fragment={"e2ee": KEY}
    )
    await doctor.wait_screen("call")
    plain = await open_widget(room, "hw", Role.HEALTH_WORKER, name="Nurse Ines", e2ee="optional")
    await plain.wait_screen("call")
    plain_id, doctor_id = await plain.participant_id(), await doctor.participant_id()
    # the page with the key sees the one without (its frames pass in clear) ...
    await wait_decoding(doctor, plain_id)
    await doctor.wait_for(
        badge_is("partial"),
        what="the partial badge",
    )
    assert await badge(doctor) == "Not end-to-end encrypted"
    title = await doctor.js("widgetTest.element.shadowRoot.querySelector('.dc-e2ee').title")
    assert "Nurse Ines" in title, title
    # ... and the one without the key cannot decrypt the doctor's: it says so, shows nothing
    await plain.wait_for(
        "() => !widgetTest.element.shadowRoot.querySelector('.dc-banner').hidden",
        what="the banner",
        timeout=20,
    )
    assert "does not have the right key" in await banner(plain)
    assert (await inbound_of(plain, doctor_id))["framesDecoded"] == 0
