"""The browser's frame format v1 is byte for byte Python's (tests/unit/test_e2ee_frames.py).

Real Chromium loads web-client/client/e2ee-frames.js from the server (as the
pages do) and WebCrypto encrypts the fixed test vectors with their fixed IV:
the bytes must equal the pinned ones e2ee/frames.py gives. Then each side
decrypts what the other encrypted with random IVs (frames of every kind and
size, shorter than the clear header included), and both refuse the same
tampered frames.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from e2ee.frames import (
    ConsultKey,
    FrameError,
    FrameKind,
    decrypt_frame,
    encode_key,
    encrypt_frame,
)
from tests.browser.conftest import TEST_PAGE
from tests.conftest import RunningServer
from tests.unit.test_e2ee_frames import (
    VECTOR_IV,
    VECTOR_KEY_ID,
    VECTOR_KEY_TEXT,
    VECTOR_RAW,
    VECTORS,
    opus_frame,
    vp8_delta_frame,
    vp8_key_frame,
)

MODULE = "/client/client/e2ee-frames.js"
JS_KIND = {FrameKind.VP8: "video", FrameKind.OPUS: "audio"}

# page.evaluate helpers: hex in, hex out (bytes cross the DevTools protocol as strings)
SETUP = """async (module) => {
  const m = await import(module);
  const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
  const bytes = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
  window.vec = {
    m, hex, bytes,
    async key(text) {
      const k = m.parseConsultKey(text);
      return {id: k.id, raw: hex(k.raw), frame: await m.deriveKey(k.raw, "frame")};
    },
    async encrypt(text, kind, frameHex, ivHex) {
      const k = await this.key(text);
      const iv = ivHex ? bytes(ivHex) : undefined;
      return hex(await m.encryptFrame(k.frame, k.id, kind, bytes(frameHex), iv));
    },
    async decrypt(text, kind, sealedHex) {
      const k = await this.key(text);
      try {
        return {ok: hex(await m.decryptFrame(new Map([[k.id, k.frame]]), kind, bytes(sealedHex)))};
      } catch (err) {
        return {error: err.reason ?? String(err)};
      }
    },
  };
  return true;
}"""


async def open_module(chromium: Any, server: RunningServer) -> Any:
    context = await chromium.new_context()
    page = await context.new_page()
    await page.goto(str(server.server.make_url(TEST_PAGE)))  # no token: the page just fails to join
    assert await page.evaluate(SETUP, MODULE)
    return page


async def test_browser_encrypts_the_vectors_to_pythons_bytes(
    server: RunningServer, chromium: Any
) -> None:
    page = await open_module(chromium, server)
    key = await page.evaluate("(t) => vec.key(t).then(k => [k.id, k.raw])", VECTOR_KEY_TEXT)
    assert key == [VECTOR_KEY_ID, VECTOR_RAW.hex()]
    for name, kind, plain, sealed in VECTORS:
        out = await page.evaluate(
            "([t, kind, f, iv]) => vec.encrypt(t, kind, f, iv)",
            [VECTOR_KEY_TEXT, JS_KIND[kind], plain, VECTOR_IV.hex()],
        )
        assert out == sealed, name
        # and Python gives the same bytes (the pinned ones), from the same inputs
        python = encrypt_frame(
            ConsultKey.from_raw(VECTOR_KEY_ID, VECTOR_RAW), kind, bytes.fromhex(plain), VECTOR_IV
        )
        assert python.hex() == out, name
        back = await page.evaluate(
            "([t, kind, s]) => vec.decrypt(t, kind, s)", [VECTOR_KEY_TEXT, JS_KIND[kind], sealed]
        )
        assert back == {"ok": plain}, name
    print(f"Chromium reproduced the {len(VECTORS)} test vectors byte for byte")


async def test_each_side_decrypts_what_the_other_encrypted(
    server: RunningServer, chromium: Any
) -> None:
    page = await open_module(chromium, server)
    raw = os.urandom(32)
    key_id = 42
    text = encode_key(key_id, raw)
    key = ConsultKey.from_raw(key_id, raw)
    frames = [
        (FrameKind.VP8, vp8_key_frame(1200)),
        (FrameKind.VP8, vp8_delta_frame(700)),
        (FrameKind.VP8, vp8_delta_frame(0)),  # just the frame tag
        (FrameKind.VP8, bytes([0x50, 0x2A])),  # shorter than a key frame's header
        (FrameKind.OPUS, opus_frame(120)),
        (FrameKind.OPUS, b"\x78"),
        (FrameKind.OPUS, b""),
    ]
    for kind, frame in frames:
        # Python -> browser
        sealed = encrypt_frame(key, kind, frame)
        got = await page.evaluate(
            "([t, kind, s]) => vec.decrypt(t, kind, s)", [text, JS_KIND[kind], sealed.hex()]
        )
        assert got == {"ok": frame.hex()}, (kind, len(frame))
        # browser (random IV) -> Python
        from_browser = bytes.fromhex(
            await page.evaluate(
                "([t, kind, f]) => vec.encrypt(t, kind, f)", [text, JS_KIND[kind], frame.hex()]
            )
        )
        assert from_browser != sealed  # another IV
        assert decrypt_frame({key_id: key}, kind, from_browser) == frame, (kind, len(frame))

    # both refuse the same tampered frame: a changed clear header (the width of a key frame)
    altered = bytearray(encrypt_frame(key, FrameKind.VP8, vp8_key_frame(300)))
    altered[7] ^= 0x01
    got = await page.evaluate(
        "([t, kind, s]) => vec.decrypt(t, kind, s)", [text, "video", altered.hex()]
    )
    assert got == {"error": "wrong-key"}
    with pytest.raises(FrameError):
        decrypt_frame({key_id: key}, FrameKind.VP8, bytes(altered))
    # a frame under a key id the browser does not hold, and one too short to be encrypted
    other = encrypt_frame(ConsultKey.from_raw(9, raw), FrameKind.OPUS, opus_frame())
    got = await page.evaluate("([t, s]) => vec.decrypt(t, 'audio', s)", [text, other.hex()])
    assert got == {"error": "no-key"}
    got = await page.evaluate("([t]) => vec.decrypt(t, 'audio', '0011')", [text])
    assert got == {"error": "short"}
    print(f"{len(frames)} frames crossed both ways")
