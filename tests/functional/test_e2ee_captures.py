"""Clinical captures in an end-to-end encrypted consult (docs/e2ee.md#clinical-captures).

Real server and Python clients with the consult key: the capture and its note
are sealed by the sender, relayed and stored sealed (inside the server's own
at-rest encryption), opened by the other client, and exported by the hospital
only with the consult key.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from e2ee.frames import encode_key
from recording.captures import read_capture
from recording.cli import main as recording_cli
from sfu.participant import Role
from signaling.client import ConsultClient
from signaling.client_captures import fetch_capture, send_capture
from tests.conftest import Keys, RunningServer

PHOTO = os.urandom(40_000)
KEY = encode_key(5, os.urandom(32))


async def joined(server: RunningServer, identity: str, role: Role) -> ConsultClient:
    client = server.client(server.token("ec1", identity, role, e2ee="required"), e2ee_key=KEY)
    await client.connect()
    await client.join()
    return client


async def test_a_capture_is_sealed_end_to_end_and_exported_with_the_consult_key(
    rec_server: RunningServer, keys: Keys, tmp_path: Path, capsys: object
) -> None:
    doctor = await joined(rec_server, "doctor", Role.SPECIALIST)
    nurse = await joined(rec_server, "nurse", Role.HEALTH_WORKER)
    try:
        upload = await send_capture(
            nurse, PHOTO, kind="photo", mime="image/jpeg", width=800, height=600, note="left eye"
        )
        ready = await doctor.wait_event("capture_ready")
        assert ready["e2ee"] == 5 and ready["note"] != "left eye"  # the server saw it sealed
        sealed = await fetch_capture(doctor, upload.capture_id)
        assert sealed != PHOTO and len(sealed) == len(PHOTO) + 29
        assert doctor.e2ee.open_capture(sealed) == PHOTO
        await doctor.request({"type": "capture_consent", "given": True})
        await nurse.request({"type": "capture_consent", "given": True})
        await nurse.wait_event("capture_stored", timeout=10)
    finally:
        await asyncio.gather(doctor.leave(), nurse.leave())

    [path] = (keys.directory / "captures").glob("*.rec")
    opened = read_capture(path, keys.private, keys.audit_public)
    assert opened.data == sealed  # at rest: still end-to-end encrypted inside
    private, signer = keys.files(tmp_path)
    base = [
        "export-captures", str(keys.directory / "captures"), "--key", str(private),
        "--signer", str(signer),
    ]  # fmt: skip
    # without the consult key: reported, not exported
    assert recording_cli([*base, "--output", str(tmp_path / "without")]) == 1
    assert not list((tmp_path / "without").glob("*.jpg"))
    # with it: the photo as sent, and its note in the FHIR bundle
    assert recording_cli([*base, "--output", str(tmp_path / "with"), "--consult-key", KEY]) == 0
    [photo] = (tmp_path / "with").glob("*.jpg")
    assert photo.read_bytes() == PHOTO
    assert "left eye" in (tmp_path / "with" / "bundle.json").read_text()
    assert KEY.split(".")[1] not in capsys.readouterr().out  # type: ignore[attr-defined]
