"""Recording an end-to-end encrypted consult between real Chromium pages (docs/recording.md).

The pages encrypt every frame under the consult key (their URL's fragment:
the server never has it); the real server records what it forwards, so the
recording holds frames the server could not read, inside its at-rest
encryption for the hospital. The hospital's ``digiclinic-recording export``
with the consult key gives a WebM that plays (640x360 video, audio); without
the key it says the consult was end-to-end encrypted and writes nothing.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import av
import pytest

from e2ee.frames import encode_key
from recording.cli import main as recording_cli
from recording.crypto_stream import open_recording
from recording.room_recording import RoomRecording
from sfu.participant import Role
from tests.browser.conftest import ConsultPage
from tests.browser.test_browser_consult import OpenConsult, video_decoding
from tests.conftest import Keys, RunningServer

KEY = encode_key(3, os.urandom(32))
RECORD_SECONDS = 6


@pytest.fixture
async def server(rec_server: RunningServer) -> RunningServer:
    """The browser conftest's ``open_consult`` opens its pages on ``server``: the recording one."""
    return rec_server


async def request(page: ConsultPage, kind: str, fields: dict[str, object] | None = None) -> None:
    await page.js("([t, f]) => digiclinicTest.session.request(t, f)", [kind, fields or {}])


def decoded_pictures(webm: bytes) -> int:
    """The pictures PyAV's vp8 decoder gives for ``webm`` (a frame it rejects gives none)."""
    pictures = 0
    with av.open(io.BytesIO(webm)) as container:
        for packet in container.demux(video=0):
            try:
                pictures += len(packet.decode())
            except av.FFmpegError:
                continue
    return pictures


async def test_an_encrypted_consult_is_recorded_and_the_hospital_exports_it_with_the_key(
    server: RunningServer,
    open_consult: OpenConsult,
    keys: Keys,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    room = "e2ee-rec"
    pages = []
    for identity, role in (("dr", Role.SPECIALIST), ("hw", Role.HEALTH_WORKER)):
        page = await open_consult(room, identity, role, e2ee="required", fragment={"e2ee": KEY})
        await page.wait_for("digiclinicTest.state === 'published'", what="published")
        pages.append(page)
    doctor, worker = pages
    doctor_id, worker_id = await doctor.participant_id(), await worker.participant_id()
    for page, other in ((doctor, worker_id), (worker, doctor_id)):
        await video_decoding(page, other)  # they see each other: the key is right
    assert server.room(room).e2ee.value == "required"

    await request(doctor, "recording_start", {"policy": "all"})
    for page in pages:
        await request(page, "consent", {"given": True})
    # the consents are acknowledged: writing has started, video at the first keyframe
    [recording] = [o for o in server.room(room).observers if isinstance(o, RoomRecording)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not all(f.frames_written[0] for f in recording.files.values()):
        assert loop.time() < deadline, {p: f.frames_written for p, f in recording.files.items()}
        await asyncio.sleep(0.25)
    assert len(recording.files) == 2
    await asyncio.sleep(RECORD_SECONDS)
    await request(doctor, "recording_stop")
    files = sorted(keys.directory.glob("*.rec"))
    assert len(files) == 2 and all(f.with_suffix(".done").exists() for f in files), files
    counts = await doctor.js("() => digiclinicTest.session.e2ee.counts()")
    assert counts["encrypted"] > 100 and counts["passed"] == 0, counts  # every frame encrypted

    key_file, signer_file = keys.files(tmp_path)
    figures = []
    for number, rec in enumerate(files):
        result = open_recording(rec, keys.private, keys.audit_public)  # the at-rest layer
        assert result.signed and result.complete, result.problem
        metadata = result.header["metadata"]
        assert metadata["e2ee"] == "v1", metadata  # the consult was end-to-end encrypted
        assert metadata["e2ee_room"] == "required"
        base = ["export", str(rec), "--key", str(key_file), "--signer", str(signer_file)]
        out = tmp_path / f"consult-{number}.webm"

        # without the consult key: the clear message, exit 2, nothing written
        capsys.readouterr()
        assert recording_cli([*base, "--output", str(out)]) == 2
        error = capsys.readouterr().err
        assert "the consult was end-to-end encrypted" in error and "--consult-key" in error
        assert not out.exists()

        # the recorded WebM as it is (at-rest layer decrypted): no frame decodes
        assert decoded_pictures(b"".join(result.chunks)) == 0

        # with the consult key: a WebM that plays
        assert recording_cli([*base, "--output", str(out), "--consult-key", KEY]) == 0
        printed = capsys.readouterr().out
        print(printed)
        assert "decrypted with the consult key" in printed and "PROBLEM" not in printed
        assert KEY.split(".")[1] not in printed  # the key is never shown
        with av.open(io.BytesIO(out.read_bytes())) as container:
            video = list(container.decode(video=0))
        with av.open(io.BytesIO(out.read_bytes())) as container:
            samples = sum(f.samples for f in container.decode(audio=0))
        sizes = {(f.width, f.height) for f in video}
        figures.append(
            f"{rec.name}: {len(video)} video frames {sizes}, {samples / 48000:.2f} s audio"
        )
        assert (video[-1].width, video[-1].height) == (640, 360)
        assert len(video) >= RECORD_SECONDS * 10, len(video)
        assert samples >= (RECORD_SECONDS - 2) * 48000, samples
    with capsys.disabled():
        print("\n" + "\n".join(figures))
