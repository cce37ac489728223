"""A photo through the widgets into the medical record, byte for byte (docs/capture.md).

Real Chromium whose fake camera is a 1920x1080 file while the widget sends
its camera smaller; a server that stores captures for the hospital's keys.
The specialist asks, the health worker takes and sends, both consent; the
specialist's page receives the photo at the camera's full size; the hospital
exports it with its private key (``digiclinic-recording export-captures``):
the file is byte-identical to what the health worker's page sent, and the
FHIR Bundle says 1920x1080.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from recording.cli import main as recording_cli
from sfu.participant import Role
from tests.browser.conftest import WidgetPage, open_widget_1080p
from tests.conftest import Keys, RunningServer
from tests.helpers.fake_camera import HEIGHT, WIDTH

PIL = pytest.importorskip("PIL.Image")

# every capture a page holds whole: id, SHA-256, size (its own sent ones included)
HELD_JS = """async () => {
  const out = [];
  for (const [id, {blob, info}] of widgetTest.element.session.captures.received) {
    const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
    out.push({id, size: blob.size, type: blob.type, width: info.width, height: info.height,
              sha: [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('')});
  }
  return out;
}"""


async def consent(page: WidgetPage) -> None:
    button = page.shadow('button[data-action="capture-consent-yes"]')
    await button.wait_for(timeout=20_000)
    await button.click()


async def test_a_full_size_photo_reaches_the_record_byte_for_byte(
    rec_server: RunningServer, keys: Keys, chromium_1080p: Any, tmp_path: Path
) -> None:
    room = "capture-record"
    doctor = await open_widget_1080p(
        chromium_1080p, rec_server, room, "dr-okafor", Role.SPECIALIST, "Dr. Okafor"
    )
    nurse = await open_widget_1080p(
        chromium_1080p, rec_server, room, "nurse-ines", Role.HEALTH_WORKER, "Ines Mukamana"
    )
    sent_size = await nurse.js(
        "Math.max(...[...widgetTest.element.session.published.values()]"
        ".filter(p => p.source === 'camera').map(p => p.track.getSettings().width))"
    )
    assert sent_size < WIDTH  # the camera is sent smaller than it sees

    await doctor.shadow('button[data-action="capture-request"]').click()
    await doctor.shadow('button[data-action="capture-request-send"]').click()
    await nurse.wait_for("widgetTest.element.captures.phase === 'choose'", what="request dialog")
    await nurse.shadow('button[data-action="capture-take-photo"]').click()
    await nurse.wait_for("widgetTest.element.captures.phase === 'preview'", what="preview")
    await nurse.shadow('button[data-action="capture-send-confirm"]').click()
    for page in (doctor, nurse):  # the first capture of the consult asks for consent
        await consent(page)

    await doctor.wait_for(f"({HELD_JS})().then(h => h.length === 1)", timeout=60, what="arrived")
    [sent] = await nurse.wait_for(f"({HELD_JS})().then(h => h.length === 1 && h)", timeout=60)
    [received] = await doctor.js(HELD_JS)
    assert received["sha"] == sent["sha"] and received["size"] == sent["size"]
    assert (received["width"], received["height"]) == (WIDTH, HEIGHT), received

    captures = keys.directory / "captures"
    await nurse.wait_for(
        "[...widgetTest.element.captures.gallery.items.values()].some(i => i.stored)",
        timeout=30,
        what="saved to the record",
    )
    assert list(captures.glob("*.rec")), "nothing stored"

    # the hospital's side: its private key and the server's public signing key, as files
    key_file, signer_file = keys.files(tmp_path)
    out = tmp_path / "export"
    code = recording_cli(
        [
            "export-captures",
            str(captures),
            "--key",
            str(key_file),
            "--signer",
            str(signer_file),
            "--output",
            str(out),
        ]
    )
    assert code == 0
    [photo] = out.glob("*.jpg")
    data = photo.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sent["sha"]  # byte for byte
    assert PIL.open(io.BytesIO(data)).size == (WIDTH, HEIGHT)
    bundle = json.loads((out / "bundle.json").read_text())
    [media] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Media"]
    assert (media["width"], media["height"]) == (WIDTH, HEIGHT)
    assert any(e["resource"]["resourceType"] == "Consent" for e in bundle["entry"])
