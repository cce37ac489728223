"""End-to-end encrypted consults between real Chromium pages (docs/e2ee.md).

The pages get the consult key in their URL's fragment (never sent to the
server); their encoded-frame transforms encrypt every audio and video frame.
What a person sees is asserted on getStats and the page: frames decoded at
size, audio received, and the clear message of a page with the wrong key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import pytest

from e2ee.frames import encode_key
from sfu.participant import Role
from tests.browser.conftest import ConsultPage
from tests.browser.test_browser_consult import OpenConsult, inbound, video_decoding, wait_inbound
from tests.conftest import RunningServer

KEY = encode_key(1, os.urandom(32))


async def open_pair(
    open_consult: OpenConsult, room: str, key: str
) -> tuple[ConsultPage, ConsultPage]:
    """A specialist's page (with KEY) and a health worker's (with ``key``) in a required room."""
    doctor = await open_consult(
        room, "dr", Role.SPECIALIST, e2ee="required", fragment={"e2ee": KEY}
    )
    await published(doctor)
    worker = await open_consult(
        room, "hw", Role.HEALTH_WORKER, e2ee="required", fragment={"e2ee": key}
    )
    await published(worker)
    return doctor, worker


async def published(page: ConsultPage) -> None:
    await page.wait_for("digiclinicTest.state === 'published'", what="published")


async def counts(page: ConsultPage) -> dict[str, Any]:
    result: dict[str, Any] = await page.js("() => digiclinicTest.session.e2ee.counts()")
    return result


async def receive_states(page: ConsultPage) -> list[str]:
    events = await page.js("digiclinicTest.events")
    return [e["detail"]["state"] for e in events if e["type"] == "e2ee-receive"]


async def test_two_pages_decode_each_other_in_an_encrypted_room(
    server: RunningServer, open_consult: OpenConsult, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    requested: list[str] = []
    doctor, patient = await open_pair(open_consult, "e2ee-pair", KEY)
    for page in (doctor, patient):
        page.page.on("request", lambda r: requested.append(r.url))
    assert await doctor.js("digiclinicTest.session.joined.e2ee") == "required"
    doctor_id, patient_id = await doctor.participant_id(), await patient.participant_id()
    for page, other in ((doctor, patient_id), (patient, doctor_id)):
        video = await video_decoding(page, other)
        assert (video["frameWidth"], video["frameHeight"]) == (640, 360), video
        audio = await wait_inbound(page, other, "audio", lambda s: s["totalSamplesReceived"] > 48e3)
        assert audio["concealedSamples"] < 0.05 * audio["totalSamplesReceived"], audio
    for page in (doctor, patient):
        seen = await counts(page)
        print(page.name, seen)
        # every frame sent was encrypted, every frame received decrypted, none dropped
        assert seen["encrypted"] > 100 and seen["decrypted"] > 100, seen
        assert seen["dropped"] == 0 and seen["passed"] == 0, seen
        assert await receive_states(page) and set(await receive_states(page)) == {"ok"}
    # the key never reached the server: not in a message, a request (the fragment is
    # never sent), the server's log
    secret = KEY.split(".")[1]
    assert doctor.ws_sent and patient.ws_sent
    assert not any(secret in json.dumps(m) for p in (doctor, patient) for m in p.ws_sent)
    assert not any(secret in url for url in requested)
    assert secret not in caplog.text
    # the other's roster entry says it encrypts
    assert await doctor.js(f"digiclinicTest.session.participants.get({patient_id!r}).e2ee") is True


async def test_a_page_with_a_wrong_key_says_so_and_decodes_nothing(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    doctor, patient = await open_pair(open_consult, "e2ee-wrong", encode_key(1, os.urandom(32)))
    doctor_id = await doctor.participant_id()
    await patient.wait_for(
        "digiclinicTest.events.some(e => e.type === 'e2ee-receive' "
        "&& e.detail.state === 'wrong-key')",
        what="the wrong-key state",
    )
    await asyncio.sleep(3)
    stats = await patient.stats()
    video = inbound(stats, doctor_id, "video")
    audio = inbound(stats, doctor_id, "audio")
    print("wrong key:", video, audio, await counts(patient))
    # packets arrive, but not one frame reaches the decoder: no garbage on screen
    assert video is not None and video["packetsReceived"] > 50, video
    assert video["framesDecoded"] == 0, video
    assert "ok" not in await receive_states(patient)
    # and the doctor, whose key is right, is unaffected: the patient's page sends
    # frames under its own (wrong) key, which the doctor cannot decrypt either
    assert (await counts(doctor))["encrypted"] > 50


async def test_a_page_without_the_key_cannot_join_a_required_room(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    page = await open_consult("e2ee-nokey", "pt", Role.PATIENT, e2ee="required")
    await page.wait_for("digiclinicTest.state === 'failed'", what="refused join")
    assert [e["code"] for e in await page.js("digiclinicTest.errors")] == ["e2ee_required"]


SEND_PHOTO_JS = """async () => {
  const canvas = new OffscreenCanvas(320, 240);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#c33"; ctx.fillRect(0, 0, 320, 240);
  ctx.fillStyle = "#fff"; ctx.fillRect(40, 40, 100, 60);
  const blob = await canvas.convertToBlob({type: "image/jpeg", quality: 0.9});
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const hex = async (b) => [...new Uint8Array(await crypto.subtle.digest("SHA-256", b))]
    .map((x) => x.toString(16).padStart(2, "0")).join("");
  const id = await digiclinicTest.session.captures.send(blob,
    {kind: "photo", width: 320, height: 240, note: "left eye, day 3"});
  return {id, sha256: await hex(bytes), size: bytes.length};
}"""

RECEIVED_JS = """async (id) => {
  const got = digiclinicTest.session.captures.received.get(id);
  if (!got) return null;
  const bytes = new Uint8Array(await got.blob.arrayBuffer());
  const digest = [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))]
    .map((x) => x.toString(16).padStart(2, "0")).join("");
  return {sha256: digest, size: bytes.length, note: got.info.note, e2ee: got.info.e2ee,
          announced: got.info.sha256, mime: got.blob.type};
}"""


async def test_a_capture_is_encrypted_in_the_browser(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    """The server holds and relays only the sealed bytes; the other page opens them."""
    doctor, worker = await open_pair(open_consult, "e2ee-capture", KEY)
    sent = await worker.js(SEND_PHOTO_JS)
    got = await doctor.wait_for(
        f"() => digiclinicTest.session.captures.received.has({sent['id']!r})",
        what="the capture",
    )
    assert got
    received = await doctor.js(RECEIVED_JS, sent["id"])
    print("sent", sent, "received", received)
    # byte-identical to what the page took, with its note, once opened with the key
    assert received["sha256"] == sent["sha256"] and received["size"] == sent["size"]
    assert received["note"] == "left eye, day 3" and received["mime"] == "image/jpeg"
    # what the server was told and relayed is the sealed capture (29 bytes more)
    assert received["e2ee"] == 1 and received["announced"] != sent["sha256"]
    # the sender's own view of it is the photo too
    await worker.wait_for(
        f"() => digiclinicTest.session.captures.received.has({sent['id']!r})", what="own"
    )
    assert (await worker.js(RECEIVED_JS, sent["id"]))["sha256"] == sent["sha256"]


# samples each 100 ms the frames decoded of every inbound video, in the page
WATCH_JS = """(seconds) => new Promise(async (resolve) => {
  const s = digiclinicTest.session;
  const rows = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const stats = await s.subscriberPc.getStats();
    for (const r of stats.values()) {
      if (r.type === "inbound-rtp" && r.kind === "video") {
        rows.push({t: performance.now(), decoded: r.framesDecoded ?? 0, width: r.frameWidth ?? 0});
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  resolve(rows);
})"""


def longest_stall(rows: list[dict[str, Any]]) -> float:
    """The longest time (s) the frames decoded did not move."""
    worst, since, last = 0.0, rows[0]["t"], rows[0]["decoded"]
    for row in rows[1:]:
        if row["decoded"] != last:
            since, last = row["t"], row["decoded"]
        worst = max(worst, (row["t"] - since) / 1000)
    return worst


async def test_a_key_rotation_keeps_video_flowing(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    """The portal hands both pages a new key: no freeze, and the old key is dropped later."""
    doctor, worker = await open_pair(open_consult, "e2ee-rotate", KEY)
    doctor_id, worker_id = await doctor.participant_id(), await worker.participant_id()
    await video_decoding(doctor, worker_id)
    await video_decoding(worker, doctor_id)
    watching = [asyncio.ensure_future(page.js(WATCH_JS, 8)) for page in (doctor, worker)]
    await asyncio.sleep(2)
    new_key = encode_key(2, os.urandom(32))
    # the portal reaches the two pages a few hundred milliseconds apart
    await worker.js("(k) => digiclinicTest.session.setE2eeKey(k)", new_key)
    await asyncio.sleep(0.3)
    await doctor.js("(k) => digiclinicTest.session.setE2eeKey(k)", new_key)
    for page, rows in zip((doctor, worker), await asyncio.gather(*watching), strict=True):
        stall = longest_stall(rows)
        seen = await counts(page)
        print(page.name, f"longest stall {stall:.2f} s over {len(rows)} samples", seen)
        assert stall < 1.0, (page.name, stall)
        assert seen["sendKeyId"] == 2 and seen["dropped"] == 0, seen
    # the previous key decrypts a while longer (frames in flight), then is forgotten
    await asyncio.sleep(10)
    assert (await counts(doctor))["keys"] == [2]


async def test_simulcast_layers_switch_in_an_encrypted_room(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    """The SFU picks layers and key frames from the clear bytes: the page sees each size."""
    query = {"video": "1280x720"}
    doctor = await open_consult(
        "e2ee-layers", "dr", Role.SPECIALIST, e2ee="required", fragment={"e2ee": KEY}, query=query
    )
    worker = await open_consult(
        "e2ee-layers", "hw", Role.HEALTH_WORKER, e2ee="required", fragment={"e2ee": KEY}
    )
    await asyncio.gather(published(doctor), published(worker))
    doctor_id = await doctor.participant_id()
    video = await video_decoding(worker, doctor_id)
    widths = []
    # (not 1280: reaching it waits on the subscriber's estimate ramping up, encrypted or not)
    for width, height in ((320, 180), (640, 360), (320, 180), (640, 360)):
        await worker.js(
            "([id, w, h]) => digiclinicTest.session.setTrackSettings(id, {width: w, height: h})",
            [video["trackId"], width, height],
        )
        seen = await wait_inbound(
            worker, doctor_id, "video", lambda s, w=width: s["frameWidth"] == w
        )
        widths.append(seen["frameWidth"])
        await video_decoding(worker, doctor_id)  # and it goes on decoding at that size
    print("layers seen:", widths, await counts(worker))
    assert widths == [320, 640, 320, 640]
    assert (await counts(worker))["dropped"] == 0


async def test_a_required_room_takes_no_clear_frame_whatever_the_roster_says(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    """A server that marks a participant as not encrypting cannot slip clear frames in."""
    doctor, worker = await open_pair(open_consult, "e2ee-downgrade", KEY)
    doctor_id = await doctor.participant_id()
    await video_decoding(worker, doctor_id)
    # the roster now says (as a lying server would) that the doctor sends in clear
    await worker.js(
        """(id) => {
          const info = {...digiclinicTest.session.participants.get(id), e2ee: false};
          digiclinicTest.session._onMessage(JSON.stringify(
            {type: "participant_joined", participant: info}));
        }""",
        doctor_id,
    )
    assert await worker.js(f"digiclinicTest.session.participants.get({doctor_id!r}).e2ee") is False
    before = await counts(worker)
    await video_decoding(worker, doctor_id)  # still decrypted, and decoded
    after = await counts(worker)
    assert after["passed"] == before["passed"] == 0, after
    assert after["decrypted"] > before["decrypted"] and after["dropped"] == 0, after
