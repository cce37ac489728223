"""Clinical captures' media in real Chromium (web-client/widget/capture-media.js).

A full-resolution photo from a camera sent small, and a short clip, with
Chromium's fake camera: a 1920x1080 Y4M file (tests/helpers/fake_camera.py)
opened at 640x360 as a widget sends it, and the default fake camera (whose
source runs at the size first asked for: the live track is raised for a
moment, then put back). The photos and clips are decoded here, with Pillow
and PyAV, not only by the browser that made them (docs/capture.md).

And the widget's capture UI (captures.js, capture-viewer.js) between two
widgets: the specialist asks, the health worker takes and sends the photo,
the specialist opens it in the viewer at 1920x1080.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import pytest

from sfu.participant import Role
from tests.browser.conftest import ConsultPage, open_widget_1080p
from tests.conftest import RunningServer
from tests.helpers.fake_camera import HEIGHT, STRIPES, WIDTH

Image = pytest.importorskip("PIL.Image")
av = pytest.importorskip("av")

# a page of the test server's origin without a Content-Security-Policy (served by route())
BLANK = "/client/capture-media-test.html"

OPEN_CAMERA_JS = """async () => {
  const stream = await navigator.mediaDevices.getUserMedia(
    {video: {width: {ideal: 640}, height: {ideal: 360}}, audio: true});
  window.captureTest = {stream, media: await import('/client/widget/capture-media.js')};
  const video = stream.getVideoTracks()[0];
  return {settings: video.getSettings(), caps: video.getCapabilities()};
}"""

# Blob -> base64 in the page (a JSON array of 500 000 numbers would be slow)
BLOB_JS = """
async function toBase64(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let text = '';
  for (let i = 0; i < bytes.length; i += 32768) {
    text += String.fromCharCode(...bytes.subarray(i, i + 32768));
  }
  return btoa(text);
}
"""

PHOTO_JS = (
    "async () => {"
    + BLOB_JS
    + """
  const {stream, media} = window.captureTest;
  const track = stream.getVideoTracks()[0];
  const started = performance.now();
  const photo = await media.takeFullResolutionPhoto(track);
  const ms = performance.now() - started;
  // the browser decodes it too
  const bitmap = await createImageBitmap(photo.blob);
  // the live track: as it was, and still delivering small frames
  const frame = await new ImageCapture(track).grabFrame();
  return {width: photo.width, height: photo.height, mime: photo.mime, via: photo.via,
          type: photo.blob.type, bytes: photo.blob.size, ms, decoded: [bitmap.width, bitmap.height],
          live: track.readyState, after: track.getSettings(),
          liveFrame: [frame.width, frame.height], data: await toBase64(photo.blob)};
}"""
)

CLIP_JS = (
    "async (seconds) => {"
    + BLOB_JS
    + """
  const {stream, media} = window.captureTest;
  const video = stream.getVideoTracks()[0];
  const ticks = [];
  const started = performance.now();
  const clip = await media.recordClip(video, stream.getAudioTracks()[0], seconds,
                                      (elapsed) => ticks.push(Math.round(elapsed)));
  const ms = performance.now() - started;
  // playable here: a <video> of the blob (no CSP on this page), its size and duration
  const player = document.createElement('video');
  player.muted = true;
  const url = URL.createObjectURL(clip.blob);
  player.src = url;
  await new Promise((resolve, reject) => {
    player.onloadedmetadata = resolve;
    player.onerror = () => reject(new Error('the clip does not load: ' + player.error?.message));
  });
  await player.play();
  await new Promise((resolve) => setTimeout(resolve, 600));
  const played = player.currentTime;
  player.pause();
  URL.revokeObjectURL(url);
  return {width: clip.width, height: clip.height, durationMs: clip.durationMs, mime: clip.mime,
          type: clip.blob.type, bytes: clip.blob.size, ms, ticks: ticks.length,
          player: [player.videoWidth, player.videoHeight], duration: player.duration, played,
          live: video.getSettings(), data: await toBase64(clip.blob)};
}"""
)


async def open_blank(browser: Any, server: RunningServer) -> ConsultPage:
    context = await browser.new_context()
    page = ConsultPage(await context.new_page(), "capture")
    url = str(server.server.make_url(BLANK))
    await page.page.route(
        url,
        lambda route: route.fulfill(
            status=200, content_type="text/html", body="<!doctype html><title>capture</title>"
        ),
    )
    await page.page.goto(url)
    return page


def stripe_contrast(image: Any) -> float:
    """Mean luma step between neighbouring columns in the one-pixel stripes (0..255)."""
    x0, y0, x1, y1 = STRIPES
    grey = image.convert("L").crop((x0 + 8, y0 + 8, x1 - 8, y1 - 8))
    pixels = list(grey.getdata())
    width = grey.width
    steps = [
        abs(pixels[row * width + col + 1] - pixels[row * width + col])
        for row in range(0, grey.height, 4)
        for col in range(width - 1)
    ]
    return sum(steps) / len(steps)


async def test_photo_at_full_resolution_while_sending_640(
    server: RunningServer, chromium_1080p: Any
) -> None:
    page = await open_blank(chromium_1080p, server)
    opened = await page.js(OPEN_CAMERA_JS)
    assert opened["settings"]["width"] <= 640, opened
    assert (opened["caps"]["width"]["max"], opened["caps"]["height"]["max"]) == (WIDTH, HEIGHT)

    photo = await page.js(PHOTO_JS)
    data = base64.b64decode(photo.pop("data"))
    print("photo:", photo, f"{len(data)} bytes")
    assert (photo["width"], photo["height"]) == (WIDTH, HEIGHT), photo
    assert photo["mime"] == photo["type"] == "image/jpeg"
    assert photo["via"] == "clone"  # the file-backed camera runs at its full size: the clone has it
    assert photo["decoded"] == [WIDTH, HEIGHT]
    assert photo["bytes"] == len(data) and 50_000 < len(data) < 8 * 1024 * 1024
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (WIDTH, HEIGHT)
        # the one-pixel stripes are there: a full-size picture, not 640x360 scaled up
        contrast = stripe_contrast(image)
        scaled = image.resize((640, 360)).resize((WIDTH, HEIGHT))
        print(f"stripe contrast {contrast:.0f} (scaled down and up: {stripe_contrast(scaled):.0f})")
        assert contrast > 100, contrast
        assert stripe_contrast(scaled) < 40
    # the track being sent is untouched
    assert photo["live"] == "live"
    assert photo["after"]["width"] <= 640 and photo["after"]["height"] <= 360, photo["after"]
    assert photo["liveFrame"][0] <= 640, photo["liveFrame"]


async def test_clip_records_full_size_webm_with_its_duration(
    server: RunningServer, chromium_1080p: Any
) -> None:
    page = await open_blank(chromium_1080p, server)
    await page.js(OPEN_CAMERA_JS)
    started = time.monotonic()
    clip = await page.js(CLIP_JS, 2)
    elapsed = time.monotonic() - started
    data = base64.b64decode(clip.pop("data"))
    print("clip:", clip, f"{len(data)} bytes in {elapsed:.1f} s")
    assert (clip["width"], clip["height"]) == (WIDTH, HEIGHT), clip
    assert clip["mime"] == clip["type"] == "video/webm"
    assert 1900 <= clip["durationMs"] <= 2600, clip
    assert clip["ticks"] >= 5  # the countdown was told
    # about 1 Mbit/s: a 2 s clip is some hundreds of kilobytes, not megabytes
    assert 20_000 < len(data) < 1_500_000, len(data)
    # the browser plays it at its full size, and knows its length (written into the WebM)
    assert clip["player"] == [WIDTH, HEIGHT], clip
    assert 1.8 <= clip["duration"] <= 2.7, clip["duration"]
    assert clip["played"] > 0.2, clip
    assert clip["live"]["width"] <= 640  # the track being sent is untouched
    # and so does FFmpeg (PyAV): VP8 video at 1920x1080, Opus audio, about 2 s
    with av.open(io.BytesIO(data)) as container:
        assert container.duration is not None
        assert 1.8 <= container.duration / 1_000_000 <= 2.7, container.duration
        video = container.streams.video[0]
        assert video.codec_context.name == "vp8"
        assert container.streams.audio[0].codec_context.name == "opus"
        frames = [(f.width, f.height) for f in container.decode(video=0)]
    assert len(frames) >= 5 and set(frames) == {(WIDTH, HEIGHT)}, frames[:5]


async def test_photo_from_a_camera_opened_small(server: RunningServer, chromium: Any) -> None:
    """Chromium's default fake camera runs at the size first asked for (like most webcams).

    The clone cannot raise it while the live track uses it, so the live track itself
    is raised for a moment and put back: the photo has the camera's largest size.
    """
    page = await open_blank(chromium, server)
    opened = await page.js(OPEN_CAMERA_JS)
    caps = opened["caps"]
    largest = (caps["width"]["max"], caps["height"]["max"])
    photo = await page.js(PHOTO_JS)
    data = base64.b64decode(photo.pop("data"))
    print("camera", opened["settings"], "largest", largest, "photo:", photo)
    assert (photo["width"], photo["height"]) == largest, photo
    assert photo["via"] in ("still", "live"), photo["via"]
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == largest
    assert photo["live"] == "live"
    assert photo["after"]["width"] == opened["settings"]["width"], photo["after"]
    assert photo["liveFrame"][0] <= 640, photo["liveFrame"]


FULL_PICTURE_JS = """() => {
  const el = widgetTest.element.shadowRoot.querySelector('.dc-capture-full');
  if (!el) return null;
  // an <img> of the blob, or the <canvas> drawn instead where the page's CSP refuses blob: images
  const natural = el.tagName === 'IMG' ? [el.naturalWidth, el.naturalHeight]
                                       : [el.width, el.height];
  return {tag: el.tagName, natural, shown: el.getBoundingClientRect().width, zoom: el.dataset.zoom};
}"""


async def test_widget_asks_takes_sends_and_views_a_photo(
    server: RunningServer, chromium_1080p: Any
) -> None:
    room = "capture-widgets"
    doctor = await open_widget_1080p(
        chromium_1080p, server, room, "dr-okafor", Role.SPECIALIST, "Dr. Okafor"
    )
    nurse = await open_widget_1080p(
        chromium_1080p, server, room, "nurse-ines", Role.HEALTH_WORKER, "Ines Mukamana"
    )
    if not await doctor.js("Boolean(widgetTest.element.session.captures)"):
        pytest.skip("the client library has no session.captures yet")
    # the specialist asks for a photo, with a note
    await doctor.shadow('button[data-action="capture-request"]').click()
    await doctor.shadow(".dc-capture-note").fill("Left leg, close up")
    await doctor.shadow('button[data-action="capture-request-send"]').click()
    await doctor.wait_for(
        "widgetTest.element.captures.gallery.requests.size === 1", what="waiting for the photo"
    )
    # the health worker's dialog: who asks, the note; Take photo, a preview at full size
    await nurse.wait_for("widgetTest.element.captures.phase === 'choose'", what="request dialog")
    dialog = await nurse.shadow(".dc-capture-dialog").inner_text()
    assert "Dr. Okafor (Specialist) asks for a photo" in dialog, dialog
    assert "Left leg, close up" in dialog, dialog
    started = time.monotonic()
    await nurse.shadow('button[data-action="capture-take-photo"]').click()
    await nurse.wait_for("widgetTest.element.captures.phase === 'preview'", what="preview")
    taken = time.monotonic() - started
    dims = (
        await nurse.shadow(".dc-capture-dims").get_attribute("data-width"),
        await nurse.shadow(".dc-capture-dims").get_attribute("data-height"),
    )
    assert dims == (str(WIDTH), str(HEIGHT)), dims
    # Retake gives the choice again; then Send
    await nurse.shadow('button[data-action="capture-retake"]').click()
    await nurse.shadow('button[data-action="capture-take-photo"]').click()
    await nurse.wait_for("widgetTest.element.captures.phase === 'preview'", what="preview again")
    await nurse.shadow(".dc-capture-note").fill("Since Monday")
    await nurse.shadow('button[data-action="capture-send-confirm"]').click()
    assert await nurse.js("widgetTest.element.captures.dialog.hidden")
    # both see it arrive; the specialist's thumbnail opens the viewer at full resolution
    await doctor.wait_for(
        "widgetTest.element.shadowRoot.querySelector('button[data-action=capture-open]')",
        timeout=60,
        what="the photo received",
    )
    sent = time.monotonic() - started
    items = await doctor.js(
        "[...widgetTest.element.captures.gallery.items.values()].map(i => ({kind: i.kind, "
        "state: i.state, width: i.width, height: i.height, note: i.note, name: i.name, "
        "size: i.blob.size}))"
    )
    print(f"photo taken in {taken:.1f} s, in the specialist's gallery after {sent:.1f} s:", items)
    assert len(items) == 1 and items[0]["state"] == "ready", items
    assert (items[0]["width"], items[0]["height"]) == (WIDTH, HEIGHT)
    assert items[0]["note"] == "Since Monday" and items[0]["name"] == "Ines Mukamana"
    assert await doctor.js("widgetTest.element.captures.gallery.requests.size") == 0
    await nurse.wait_for(
        "[...widgetTest.element.captures.gallery.items.values()].some(i => i.state === 'ready')",
        what="sent",
    )
    await doctor.shadow('button[data-action="capture-open"]').click()
    picture = await doctor.wait_for(  # its size is known before the viewer fits it
        f"({FULL_PICTURE_JS})()?.zoom && ({FULL_PICTURE_JS})()"
    )
    print("viewer:", picture)
    assert picture["natural"] == [WIDTH, HEIGHT] and picture["zoom"] == "fit", picture
    assert picture["shown"] < WIDTH  # fitted to the widget
    await doctor.shadow('button[data-action="capture-zoom-actual"]').click()
    picture = await doctor.js(FULL_PICTURE_JS)
    assert picture["zoom"] == "1" and abs(picture["shown"] - WIDTH) <= 1, picture
    status = await doctor.shadow(".dc-capture-viewer-stored").inner_text()
    assert status in (
        "Saved to the record",
        "Not saved to the record",
        "Saving to the record…",
        "Not saved (no consent yet)",
    ), status
    await doctor.page.keyboard.press("Escape")
    assert await doctor.js("widgetTest.element.captures.viewer.element.hidden")
    for page in (doctor, nurse):
        assert not [e for e in page.console if e.startswith("pageerror")], page.console


CHECK_3_JS = """() => {
  const c = widgetTest.element.captures;
  c._settleUntil = 0;  // past the settling after the joins
  for (let i = 0; i < 3; i += 1) c.checkVideo();
  const offer = widgetTest.element.shadowRoot.querySelector('.dc-capture-offer');
  return {hidden: offer.hidden, offer: offer.dataset.offer ?? null,
          reason: offer.dataset.reason ?? null, text: offer.innerText,
          episode: c.episode?.reason ?? null};
}"""


async def test_offers_a_capture_once_per_video_failure(
    server: RunningServer, chromium_1080p: Any
) -> None:
    """The specialist's widget offers "Ask for a photo", the health worker's "Send a photo".

    The failures are set in the pages' call state as the session's events set them
    (track_paused for bandwidth; publisher_audio and publisher_layers for our uplink).
    """
    room = "capture-offers"
    doctor = await open_widget_1080p(
        chromium_1080p, server, room, "dr-okafor", Role.SPECIALIST, "Dr. Okafor"
    )
    nurse = await open_widget_1080p(
        chromium_1080p, server, room, "nurse-ines", Role.HEALTH_WORKER, "Ines Mukamana"
    )
    if not await doctor.js("Boolean(widgetTest.element.session.captures)"):
        pytest.skip("the client library has no session.captures yet")
    nurse_id = await nurse.participant_id()
    track = await doctor.wait_for(
        f"widgetTest.element.call.people.get({nurse_id!r})?.camera?.trackId", what="camera"
    )
    assert (await doctor.js(CHECK_3_JS))["hidden"]  # video fine: nothing offered
    # the server paused the health worker's camera for the specialist's link
    await doctor.js(f"widgetTest.element.call.pausedByServer.set({track!r}, 'bandwidth')")
    offered = await doctor.js(CHECK_3_JS)
    assert not offered["hidden"] and offered["offer"] == "ask", offered
    assert offered["reason"] == "paused"
    assert "not getting through" in offered["text"] and "Ask for a photo" in offered["text"]
    await doctor.shadow('button[data-action="capture-offer-dismiss"]').click()
    assert (await doctor.js(CHECK_3_JS))["hidden"]  # once per episode
    # the video is back for a while: the episode ends; a new failure offers again
    await doctor.js(f"widgetTest.element.call.pausedByServer.delete({track!r})")
    await doctor.js(
        "widgetTest.element.captures.checkVideo(); "
        "widgetTest.element.captures._healthySince = performance.now() - 11000; "
        "widgetTest.element.captures.checkVideo()"
    )
    assert await doctor.js("widgetTest.element.captures.episode") is None
    await doctor.js(f"widgetTest.element.call.pausedByServer.set({track!r}, 'bandwidth')")
    assert not (await doctor.js(CHECK_3_JS))["hidden"]
    # its button asks for a photo at once
    await doctor.shadow('button[data-action="capture-offer-accept"]').click()
    await nurse.wait_for("widgetTest.element.captures.phase === 'choose'", what="the request")
    await nurse.shadow('button[data-action="capture-cancel"]').click()

    # the health worker's uplink too weak for video: the server stopped the camera, thinned audio
    await nurse.js(
        "Object.assign(widgetTest.element.captures, {_thinAudio: true, _cameraStopped: true})"
    )
    offered = await nurse.js(CHECK_3_JS)
    assert not offered["hidden"] and offered["offer"] == "send", offered
    assert offered["reason"] == "uplink-weak"
    assert "Send a photo instead?" in offered["text"], offered
    await nurse.shadow('button[data-action="capture-offer-accept"]').click()
    await nurse.wait_for("widgetTest.element.captures.phase === 'choose'", what="send dialog")
    assert await nurse.js("widgetTest.element.captures.request") is None  # unasked
