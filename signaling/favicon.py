"""``/favicon.ico``: a small icon for every page (demo, widget, console).

Browsers ask for ``/favicon.ico`` on every page that names no icon; without
it each page logged a 404. The icon (a white cross on a teal rounded square,
32x32) is drawn here and encoded as a PNG inside an ICO container, so it
ships with the Python package and needs no file of ``server.web_client_dir``
(the production image serves no demo directory). Cached for a day, with an
``ETag`` for revalidation.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

from aiohttp import web

SIZE = 32
CONTENT_TYPE = "image/vnd.microsoft.icon"
CACHE_CONTROL = "public, max-age=86400"

_TEAL = (15, 118, 110, 255)
_WHITE = (255, 255, 255, 255)
_CLEAR = (0, 0, 0, 0)


def _pixel(x: int, y: int) -> tuple[int, int, int, int]:
    radius = 7
    # distance into a rounded corner (0 outside the corner squares)
    dx = max(radius - x, x - (SIZE - 1 - radius), 0)
    dy = max(radius - y, y - (SIZE - 1 - radius), 0)
    if dx * dx + dy * dy > radius * radius:
        return _CLEAR
    arm, half = range(6, SIZE - 6), range(12, SIZE - 12)
    if (x in half and y in arm) or (y in half and x in arm):
        return _WHITE
    return _TEAL


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def icon_png() -> bytes:
    """The icon as an RGBA PNG."""
    rows = b"".join(
        b"\x00" + bytes(c for x in range(SIZE) for c in _pixel(x, y)) for y in range(SIZE)
    )
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )


def icon_ico() -> bytes:
    """The icon as an ICO file holding one PNG image."""
    png = icon_png()
    directory = struct.pack("<HHH", 0, 1, 1)  # reserved, type 1 (icon), one image
    entry = struct.pack("<BBBBHHII", SIZE, SIZE, 0, 0, 1, 32, len(png), 6 + 16)
    return directory + entry + png


FAVICON = icon_ico()
ETAG = f'"{hashlib.sha256(FAVICON).hexdigest()[:16]}"'


async def favicon(request: web.Request) -> web.Response:
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "ETag": ETAG,
        "X-Content-Type-Options": "nosniff",
    }
    if ETAG in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=FAVICON, content_type=CONTENT_TYPE, headers=headers)
