"""Layout and accessibility checks of a page, from the DOM: no guessing from screenshots.

``layout_problems`` runs layout_check.js (texts cut or overflowing, controls
overlapping or off the window). ``accessibility_problems`` runs axe-core
(``node_modules/axe-core``, installed by scripts/test.sh with ``npm ci``) and
returns its serious and critical violations. ``check_widths`` runs both at
each width and keeps a screenshot of every screen as a test artifact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import SCREENSHOTS

ROOT = Path(__file__).resolve().parents[2]
LAYOUT_JS = (Path(__file__).parent / "layout_check.js").read_text()
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
LAYOUT_SHOTS = SCREENSHOTS / "layout"
# a phone, a tablet upright, a small laptop (or a tablet on its side), a desktop
WIDTHS = {400: 844, 768: 1024, 1024: 768, 1440: 900}


def axe_source() -> str:
    if not AXE_JS.exists():
        pytest.fail(
            f"axe-core is missing ({AXE_JS.relative_to(ROOT)}): scripts/test.sh installs it "
            "(npm ci; Debian's nodejs and npm)"
        )
    return AXE_JS.read_text()


async def layout_problems(page: Any) -> list[str]:
    problems: list[str] = await page.evaluate(LAYOUT_JS)
    return problems


async def accessibility_problems(page: Any) -> list[str]:
    """axe-core's serious and critical violations (WCAG 2.1 A and AA rules and best practices)."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(axe_source())
    violations: list[dict[str, Any]] = await page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                          nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' '))}))"""
    )
    return [f"{v['impact']} {v['id']}: {v['help']} ({', '.join(v['nodes'])})" for v in violations]


async def settle(page: Any) -> None:
    """Let a resize or a re-render reach the screen (layout, then two frames)."""
    await page.evaluate(
        "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )
    await asyncio.sleep(0.3)


async def check_widths(
    page: Any,
    screen: str,
    found: dict[str, list[str]],
    *,
    before: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Check ``page`` at every width; problems go to ``found[f"{screen} @ {width}"]``.

    ``before`` runs after each resize (e.g. to reopen a panel that a narrow
    layout closes). Screenshots: artifacts/screenshots/layout/<screen>-<width>.png.
    """
    LAYOUT_SHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    # no fades: axe cannot judge the contrast of a text caught half-way through one
    # (a status line fading in while the call's state changes)
    await page.emulate_media(reduced_motion="reduce")
    try:
        for width, height in WIDTHS.items():
            await page.set_viewport_size({"width": width, "height": height})
            if before is not None:
                await before()
            await settle(page)
            problems = await layout_problems(page) + await accessibility_problems(page)
            await page.screenshot(path=str(LAYOUT_SHOTS / f"{screen}-{width}.png"))
            if problems:
                found[f"{screen} @ {width}px"] = problems
    finally:
        await page.set_viewport_size(original)
