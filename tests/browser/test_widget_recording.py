"""Recording in the widget: the question, the indicator everyone sees, withdrawal, stop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from recording.audit import generate_signing_key
from recording.crypto_stream import generate_keypair
from tests.browser.widget_helpers import start_consult
from tests.conftest import RunningServer


@pytest.fixture
async def server(  # overrides the browser conftest's: recording enabled
    loopback_only: bool, tmp_path: Path, server_factory: Callable[..., Any]
) -> RunningServer:
    _, public_pem = generate_keypair()
    audit_key, _ = generate_signing_key()
    (tmp_path / "h.pub").write_bytes(public_pem)
    (tmp_path / "audit.key").write_bytes(audit_key)
    running: RunningServer = await server_factory(
        recording={
            "enabled": True,
            "directory": str(tmp_path / "recordings"),
            "recipients": [{"kid": "h", "public_key_file": str(tmp_path / "h.pub")}],
            "audit_log": str(tmp_path / "recordings" / "audit.log"),
            "audit_signing_key_file": str(tmp_path / "audit.key"),
        }
    )
    return running


async def test_consent_question_indicator_withdrawal_and_stop(
    server: RunningServer,
    open_widget: Any,  # the fixture of tests/browser/conftest.py
    tmp_path: Path,
) -> None:
    doctor, patient, _, patient_id = await start_consult(open_widget, "widget-rec")
    record = doctor.shadow('button[data-action="record"]')
    assert await record.is_visible()  # the specialist has the record grant
    assert not await patient.shadow('button[data-action="record"]').is_visible()
    await record.click()
    for page in (doctor, patient):
        dialog = page.shadow(".dc-rec-dialog")
        await dialog.wait_for(state="visible", timeout=10_000)
        assert "record this consult" in await dialog.inner_text()
    # nothing is written while only one of two has agreed
    await doctor.shadow(".dc-rec-dialog .dc-primary").click()
    indicator_doctor = doctor.shadow(".dc-rec")
    await doctor.wait_for(
        "widgetTest.element.shadowRoot.querySelector('.dc-rec')?.dataset.state === "
        "'awaiting_consent'",
        what="waiting for the patient's consent",
    )
    assert not list((tmp_path / "recordings").glob("*.rec"))
    await patient.shadow(".dc-rec-dialog .dc-primary").click()
    for page in (doctor, patient):
        await page.wait_for(
            "widgetTest.element.shadowRoot.querySelector('.dc-rec')?.dataset.state === 'recording'",
            what="recording indicator",
        )
    assert "Recording" in await indicator_doctor.inner_text()
    await patient.screenshot("widget-patient-recording.png")
    # the patient withdraws from the control bar: writing stops for everyone ("all")
    withdraw = patient.shadow('button[data-action="record"]')
    await withdraw.wait_for(state="visible")
    await withdraw.click()
    await doctor.wait_for(
        "widgetTest.element.shadowRoot.querySelector('.dc-rec')?.dataset.state === 'paused'",
        what="paused after withdrawal",
    )
    room = server.room("widget-rec")
    assert patient_id in {p.id for p in room.participants.values()}
    await record.click()  # the specialist stops
    await doctor.wait_for(
        "widgetTest.element.shadowRoot.querySelector('.dc-rec')?.hidden === true",
        what="indicator gone after stop",
    )
    files = sorted((tmp_path / "recordings").glob("*.rec"))
    assert len(files) == 2 and all(f.with_suffix(".done").exists() for f in files)
