"""Chromium with digiclinic-client.js in a three-node cluster on a real Redis.

The page enters through a node that does not host the room: the library
follows the redirect. Then the room's node is SIGKILLed: the library's
reconnection re-joins through another node, without the user doing anything,
and the call works again (video decoded both ways).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sfu.participant import Role
from tests.browser.conftest import TEST_PAGE, ConsultPage
from tests.browser.test_browser_consult import video_decoding
from tests.functional.cluster_helpers import (
    decodes_video_from,
    needs_redis,
    publish_av,
    running_cluster,
)

pytestmark = needs_redis


async def test_browser_follows_redirect_and_rejoins_after_node_loss(
    tmp_path: Path, chromium: Any
) -> None:
    # the page is served by one node and talks to others: allow that origin
    async with running_cluster(
        tmp_path, "a", "b", "c", server={"allowed_origins": ["*"]}
    ) as cluster:
        others = [p.ws_url for n, p in cluster.nodes.items() if n != "b"]
        doctor = cluster.client(
            "b", "web-room", "doctor", role=Role.SPECIALIST, reconnect=True, fallback_urls=others
        )
        context = await chromium.new_context(viewport={"width": 1000, "height": 640})
        try:
            await doctor.connect()
            await doctor.join()
            await publish_av(doctor)
            host = cluster.node_of_url(doctor.url)
            entry = next(n for n in cluster.nodes if n != host)
            urls = {n: p.ws_url for n, p in cluster.nodes.items()}
            query = {
                "token": cluster.token("web-room", "nurse-chromium", Role.HEALTH_WORKER),
                "server": urls[entry],
                "reconnect": "1",
                "fallback": ",".join(u for n, u in urls.items() if n != entry),
            }
            page = ConsultPage(await context.new_page(), "nurse")
            await page.page.goto(f"{cluster.nodes[entry].url}{TEST_PAGE}?{urlencode(query)}")
            await page.wait_for("digiclinicTest.state === 'published'", what="published")
            node_url = await page.js("() => digiclinicTest.session.nodeUrl")
            assert node_url.startswith(urls[host]), "the page followed the redirect"
            assert doctor.participant_id is not None
            await video_decoding(page, doctor.participant_id)
            nurse_id = await page.participant_id()
            await doctor.wait_for_track(lambda t: t.participant_id == nurse_id, 20)

            proc = cluster.nodes[host].proc
            assert proc is not None
            proc.send_signal(signal.SIGKILL)
            await page.wait_for(
                "digiclinicTest.events.some(e => e.type === 'reconnected')",
                timeout=20,
                what="reconnected",
            )
            await doctor.wait_until(lambda: doctor.reconnections >= 1, 20)
            assert doctor.participant_id is not None
            new_node = await page.js("() => digiclinicTest.session.nodeUrl")
            assert not new_node.startswith(urls[host])
            await video_decoding(page, doctor.participant_id)
            new_id = await page.js("() => digiclinicTest.session.participantId")
            assert new_id != nurse_id  # a new participant of the re-placed room
            sizes = await decodes_video_from(doctor, new_id, frames=10)
            assert sizes and all(w > 0 for w, _ in sizes)
        finally:
            await doctor.leave()
            await context.close()
