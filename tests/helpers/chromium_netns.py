"""Headless Chromium inside a network namespace the caller created (tests/helpers/netns_link.py).

Chromium offers an ICE host candidate for every interface it sees. Run in
the root namespace it would make the server send STUN to this machine's own
non-loopback addresses; run inside a namespace holding only ``lo`` and one
veth end, it sees nothing else. Playwright drives it over a pipe, which
crosses namespaces: the executable Playwright starts is a tiny wrapper that
runs ``ip netns exec <ns> /usr/bin/chromium "$@"``.

A page served over plain http from a non-loopback address is not a secure
context, so ``--unsafely-treat-insecure-origin-as-secure`` names the test
server's origin (getUserMedia needs a secure context).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
MEDIA_ARGS = (
    "--use-fake-device-for-media-stream",  # a synthetic camera (1280x720, 20 fps) and beeping mic
    "--use-fake-ui-for-media-stream",  # grant getUserMedia without asking
    "--autoplay-policy=no-user-gesture-required",  # remote <audio> plays unattended
)


def chromium_executable() -> str | None:
    """Debian's Chromium, or None when it is not installed."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    return shutil.which("chromium")


@contextlib.asynccontextmanager
async def chromium_in_namespace(
    playwright: Any,
    namespace: str,
    secure_origins: list[str],
    executable: str | None = None,
    loopback: bool = False,
) -> AsyncIterator[Any]:
    """A Playwright Browser whose Chromium process runs inside ``namespace``."""
    real = executable or chromium_executable()
    if real is None:
        raise FileNotFoundError("Chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="dc-chromium-") as tmp:
        wrapper = Path(tmp) / "chromium-in-netns"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {namespace} {real} "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        args = [*MEDIA_ARGS]
        if loopback:  # a namespace with nothing but lo: 127.0.0.1 is its only candidate
            args.append("--allow-loopback-in-peer-connection")
        if secure_origins:
            args.append("--unsafely-treat-insecure-origin-as-secure=" + ",".join(secure_origins))
        browser = await playwright.chromium.launch(
            executable_path=str(wrapper), headless=True, args=args, env={**os.environ}
        )
        try:
            yield browser
        finally:
            with contextlib.suppress(Exception):
                await browser.close()


def skip_unless_browser_rig() -> None:
    """Skip the calling test unless namespaces, Chromium and Playwright are all here."""
    import importlib.util  # noqa: PLC0415

    import pytest  # noqa: PLC0415 - a test helper, imported by tests only

    from tests.helpers.netns_link import netns_available  # noqa: PLC0415

    ok, why = netns_available()
    if not ok:
        pytest.skip(why)
    if chromium_executable() is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("Playwright for Python is not installed")
