"""Two Chromium pages forced to relay-only reach each other through a real coturn.

Everything runs in the test's loopback-only network namespace: coturn, the
server and Chromium. The server hands each admitted page TURN credentials in
`joined`; the page uses them because it is given no ICE servers of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sfu.participant import Role
from tests.browser.test_browser_consult import video_decoding
from tests.conftest import RunningServer
from tests.helpers.coturn import TURNSERVER, Coturn

SECRET = "browser-turn-test-secret-0123456789"

pytestmark = pytest.mark.skipif(
    not Path(TURNSERVER).exists(), reason="coturn is not installed (scripts/test.sh installs it)"
)


@pytest.fixture
async def coturn(loopback_only: bool, tmp_path: Path) -> AsyncIterator[Coturn]:
    server = Coturn(tmp_path, [SECRET])  # started inside the namespace
    await server.start()
    yield server
    server.stop()


@pytest.fixture
async def server(  # overrides the browser conftest's: this one hands out TURN credentials
    loopback_only: bool, coturn: Coturn, server_factory: Callable[..., Any]
) -> RunningServer:
    running: RunningServer = await server_factory(turn={"secrets": [SECRET], "urls": [coturn.url]})
    return running


async def test_relay_only_browsers_join_through_coturn(
    server: RunningServer, coturn: Coturn, open_consult: Callable[..., Any]
) -> None:
    room = "browser-turn"
    doctor = await open_consult(room, "dr-turn", Role.SPECIALIST, relay=True)
    nurse = await open_consult(room, "hw-turn", Role.HEALTH_WORKER, relay=True)
    ids = {}
    for page in (doctor, nurse):
        ids[page.name] = await page.participant_id()
        await page.wait_for("digiclinicTest.state === 'published'", what="published")
        turn = await page.js("digiclinicTest.joined.ice_servers")
        assert turn and turn[0]["urls"] == [coturn.url]

    for page, other in ((doctor, nurse), (nurse, doctor)):
        decoded = await video_decoding(page, ids[other.name])
        assert decoded["frameWidth"] > 0
        # every candidate the page offered, on both connections, is a relay candidate
        for pc in ("publisherPc", "subscriberPc"):
            sdp = await page.js(f"digiclinicTest.session.{pc}.localDescription.sdp")
            candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
            assert candidates and all(" typ relay" in c for c in candidates), candidates
        pair_types = await page.js(
            """async () => {
                const stats = await digiclinicTest.session.subscriberPc.getStats();
                const byId = new Map([...stats.values()].map(s => [s.id, s]));
                return [...stats.values()]
                  .filter(s => s.type === "candidate-pair" && s.nominated
                               && s.state === "succeeded")
                  .map(s => byId.get(s.localCandidateId)?.candidateType);
            }"""
        )
        assert pair_types and set(pair_types) == {"relay"}, pair_types
        assert await page.js("digiclinicTest.errors") == []

    log = coturn.log_text()
    for participant_id in ids.values():
        assert f":{participant_id}>" in log  # coturn allocated for each page's credential
    await doctor.screenshot("browser-relay-through-coturn.png")
