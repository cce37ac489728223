"""Issue 7: ``publisher_layers`` switches unused simulcast layers off in Chromium.

The client library's test page publishes its 1280x720 fake camera as three
layers in a room where nobody watches: after a few seconds the server says
only the lowest layer is needed (``publisher_layers``), and the page sets
``encodings[i].active`` through ``RTCRtpSender.setParameters`` — never
touching the camera track, and Chromium stops encoding them. When an aiortc
subscriber shows the video at 640x360, the server says ``h`` is needed again
and the page re-enables it. (``h`` rather than ``f``: the server switches a
layer on once the subscriber's estimated bandwidth affords it, and probing a
loopback link up to ``f``'s 1.5 Mbit/s takes from 15 s to over 30 s on a busy
machine; test_simulcast_switch.py covers ``f``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sfu.participant import Role
from tests.browser.conftest import ConsultPage
from tests.browser.widget_helpers import camera_publisher, require_server_simulcast, track_settings
from tests.conftest import RunningServer

OpenConsult = Callable[..., Any]

SENDER_JS = """async (trackId) => {
  const s = digiclinicTest.session;
  const mid = s.published.get(trackId).mid;
  const sender = s.publisherPc.getTransceivers().find(t => t.mid === mid).sender;
  const local = digiclinicTest.localStream.getVideoTracks()[0];
  const frames = {};
  for (const r of (await sender.getStats()).values()) {
    if (r.type === "outbound-rtp" && r.rid) frames[r.rid] = r.framesEncoded ?? 0;
  }
  return {
    encodings: sender.getParameters().encodings.map(e => ({rid: e.rid, active: e.active})),
    sameTrack: sender.track === local, live: local.readyState === "live", enabled: local.enabled,
    frames,
  };
}"""


def layers_received(page: ConsultPage, track_id: str) -> list[dict[str, bool]]:
    """The `layers` of each publisher_layers event the server sent for that track."""
    return [
        {layer["rid"]: layer["active"] for layer in m["layers"]}
        for m in page.ws_received
        if m.get("type") == "publisher_layers" and m.get("track_id") == track_id
    ]


async def sender_state(page: ConsultPage, track_id: str) -> dict[str, Any]:
    result: dict[str, Any] = await page.js(SENDER_JS, track_id)
    return result


async def test_publisher_layers_turn_unneeded_layers_off_and_on(
    server: RunningServer, open_consult: OpenConsult
) -> None:
    room = "simulcast-layers"
    page, browser_id, camera = await camera_publisher(open_consult, room)
    await require_server_simulcast(page, camera["mid"])
    track_id = camera["trackId"]

    # nobody watches: only the lowest layer is needed
    await page.wait_for(
        f"""digiclinicTest.events.some(e => e.type === 'layers-applied'
              && e.detail.trackId === {track_id!r} && e.detail.layers.f === false)""",
        timeout=20,
        what="publisher_layers applied with f inactive",
    )
    assert layers_received(page, track_id)[-1] == {"q": True, "h": False, "f": False}
    state = await sender_state(page, track_id)
    assert state["encodings"][2] == {"rid": "f", "active": False}, state
    assert state["encodings"][0] == {"rid": "q", "active": True}, state
    # the camera itself is untouched: same track on the sender, live and enabled
    assert state["sameTrack"] and state["live"] and state["enabled"], state
    # and h and f are no longer encoded while q still is
    await asyncio.sleep(1.5)
    later = await sender_state(page, track_id)
    for rid in ("h", "f"):
        assert later["frames"].get(rid, 0) <= state["frames"].get(rid, 0) + 1, (state, later)
    assert later["frames"]["q"] > state["frames"]["q"], (state, later)

    # an aiortc subscriber shows it at 640x360: h is needed again
    client = server.client(server.token(room, "viewer", Role.HEALTH_WORKER))
    try:
        await client.connect()
        await client.join()
        video = await client.wait_for_track(
            lambda t: t.participant_id == browser_id and t.kind == "video", timeout=20
        )
        await track_settings(client, video.track_id, 640, 360)
        await page.wait_for(
            f"""(() => {{
                const e = digiclinicTest.session.sendEncodings({track_id!r});
                return e[1].active && e[1].rid === 'h';
            }})()""",
            timeout=25,
            what="h active again",
        )
        assert layers_received(page, track_id)[-1]["h"] is True
        await page.wait_for(
            f"""(async () => {{
                const s = digiclinicTest.session;
                const sender = s.publisherPc.getTransceivers()
                  .find(t => t.mid === s.published.get({track_id!r}).mid).sender;
                for (const r of (await sender.getStats()).values()) {{
                  if (r.type === "outbound-rtp" && r.rid === "h") {{
                    return (r.framesEncoded ?? 0) > {later["frames"].get("h", 0) + 5};
                  }}
                }}
                return false;
            }})()""",
            timeout=20,
            what="Chromium encodes h again",
        )
        resumed = await sender_state(page, track_id)
        assert [e["active"] for e in resumed["encodings"]] == list(
            layers_received(page, track_id)[-1].values()
        ), resumed
        assert resumed["sameTrack"] and resumed["live"] and resumed["enabled"], resumed
        assert await page.js("digiclinicTest.errors") == []
        print(f"publisher_layers received: {layers_received(page, track_id)}; sender {resumed}")
    finally:
        await client.leave()
