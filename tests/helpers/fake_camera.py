"""A fake camera for Chromium: a Y4M file for ``--use-file-for-fake-video-capture``.

Chromium's file-backed fake camera (``--use-fake-device-for-media-stream``
plus ``--use-file-for-fake-video-capture=PATH``) captures at the file's own
size and loops its frames; a track opened smaller (the widget's camera is
sent at 640x360 or 1280x720) is scaled down from it. That makes it a camera
whose native resolution is known, for the full-resolution capture tests
(docs/capture.md).

The picture is not flat: colour gradients, a circle and a square that move
from frame to frame, a frame counter of bars, and a patch of one-pixel
black and white stripes (``STRIPES``) that only a full-size picture keeps:
scaled down and up again, it turns grey.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WIDTH = 1920
HEIGHT = 1080
FPS = 10

# x0, y0, x1, y1 of the one-pixel stripes (vertical lines: the luma alternates per column)
STRIPES = (1500, 100, 1800, 300)


def _frame(index: int, frames: int, width: int, height: int) -> tuple[np.ndarray, ...]:
    """One frame as I420 planes (Y full size; U and V half size in each direction)."""
    ys, xs = np.mgrid[0:height, 0:width]
    phase = index / max(frames, 1)
    # luma: a diagonal gradient that drifts, so every frame differs everywhere
    luma = ((xs + ys + int(phase * 400)) % 512).astype(np.int32)
    luma = np.where(luma > 255, 511 - luma, luma)
    # a bright disc moving left to right, a dark square moving top to bottom
    cx = int(width * (0.15 + 0.6 * phase))
    cy = height // 2
    radius = height // 8
    luma[(xs - cx) ** 2 + (ys - cy) ** 2 < radius**2] = 235
    sy = int(height * (0.1 + 0.6 * phase))
    luma[sy : sy + height // 6, width // 10 : width // 10 + height // 6] = 16
    # the frame counter: one white bar per frame, on black
    luma[height - 60 : height - 20, 20 : 20 + 30 * frames] = 16
    for bar in range(index + 1):
        luma[height - 56 : height - 24, 24 + 30 * bar : 44 + 30 * bar] = 235
    # one-pixel stripes: detail a downscaled picture cannot hold
    x0, y0, x1, y1 = STRIPES
    luma[y0:y1, x0:x1] = np.where((xs[y0:y1, x0:x1] % 2) == 0, 16, 235)
    y_plane = luma.clip(16, 235).astype(np.uint8)
    # chroma: horizontal and vertical colour gradients, shifting with the frame
    cys, cxs = np.mgrid[0 : height // 2, 0 : width // 2]
    u_plane = (64 + (cxs * 128) // (width // 2) + int(phase * 32)).clip(16, 240).astype(np.uint8)
    v_plane = (64 + (cys * 128) // (height // 2) - int(phase * 32)).clip(16, 240).astype(np.uint8)
    return y_plane, u_plane, v_plane


def write_y4m(
    path: Path, width: int = WIDTH, height: int = HEIGHT, frames: int = 10, fps: int = FPS
) -> Path:
    """Write a looping test pattern as a Y4M (YUV4MPEG2, 4:2:0) file; returns ``path``."""
    if width % 2 or height % 2:
        raise ValueError("4:2:0 needs an even width and height")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for index in range(frames):
            out.write(b"FRAME\n")
            for plane in _frame(index, frames, width, height):
                out.write(plane.tobytes())
    return path


if __name__ == "__main__":  # python -m tests.helpers.fake_camera out.y4m
    import sys

    print(write_y4m(Path(sys.argv[1] if len(sys.argv) > 1 else "fake-camera-1080p.y4m")))
