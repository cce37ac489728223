"""The embeddable consult widget (web-client/widget/) in real Chromium pages: languages.

English, French and Kinyarwanda, chosen by attribute or by the browser's
language; keyboard use of the controls; every string in every language.
"""

from __future__ import annotations

import re
from typing import Any

from sfu.participant import Role
from tests.browser.conftest import OpenWidget
from tests.browser.widget_helpers import WIDGET_DIR
from tests.conftest import RunningServer

CONSOLE_DIR = WIDGET_DIR.parent / "console"


async def test_french_and_kinyarwanda(server: RunningServer, open_widget: OpenWidget) -> None:
    french = await open_widget("widget-lang", "dr-fr", Role.SPECIALIST, skip=False, lang="fr")
    await french.wait_screen("precall")
    text = await french.shadow(".dc-precall").inner_text()
    assert "Vérifiez votre caméra, votre micro et votre connexion" in text, text
    assert await french.shadow('button[data-action="join"]').inner_text() == "Rejoindre"
    await french.shadow('button[data-action="join"]').click()
    await french.wait_screen("call")
    assert await french.shadow('button[data-action="mic"]').get_attribute("aria-label") == (
        "Couper le micro : on ne vous entend plus"
    )

    # Kinyarwanda: the patient's pre-call check, lobby and, once admitted, the controls
    rw = await open_widget(  # on a phone-sized screen
        "widget-lang",
        "patient-rw",
        Role.PATIENT,
        skip=False,
        lang="rw",
        name="Uwase",
        viewport=(390, 844),
    )
    await rw.wait_screen("precall")
    assert await rw.shadow('button[data-action="join"]').inner_text() == "Injira"
    await rw.wait_for("widgetTest.element.precallResults?.verdict", what="verdict")
    await rw.screenshot("widget-phone-precall-kinyarwanda.png")
    assert "Suzuma kamera, mikoro n'ihuza ryawe" in await rw.shadow(".dc-precall").inner_text()
    await rw.shadow('button[data-action="join"]').click()
    await rw.wait_screen("lobby")
    lobby = await rw.shadow(".dc-lobby").inner_text()
    assert "Tegereza gato" in lobby and "Sohoka" in lobby, lobby
    admit = french.shadow('button[aria-label="Admettre Uwase"]')
    await admit.click()
    await rw.wait_screen("call")
    labels = {
        action: (
            # text_content: on a phone the visible label is hidden, icons only
            await rw.shadow(f'button[data-action="{action}"]').text_content(),
            await rw.shadow(f'button[data-action="{action}"]').get_attribute("aria-label"),
        )
        for action in ("mic", "chat", "leave")
    }
    assert labels == {
        "mic": ("Ceceka", "Ceceka: funga mikoro yawe"),
        "chat": ("Ikiganiro", "Erekana ikiganiro"),
        "leave": ("Sohoka", "Sohoka mu isuzuma"),
    }, labels
    # keyboard: Tab moves between the controls with a visible focus ring, Enter presses
    await rw.shadow('button[data-action="mic"]').focus()
    await rw.page.keyboard.press("Tab")
    focused = await rw.js(
        """() => { const el = widgetTest.element.shadowRoot.activeElement;
                   const st = getComputedStyle(el);
                   return [el.dataset.action, st.outlineStyle, st.outlineWidth]; }"""
    )
    assert focused == ["camera", "solid", "3px"], focused
    await rw.page.keyboard.press("Shift+Tab")
    await rw.page.keyboard.press("Enter")
    assert await rw.shadow('button[data-action="mic"]').text_content() == "Fungura mikoro"
    assert await rw.shadow('button[data-action="mic"]').get_attribute("aria-pressed") == "true"
    await rw.screenshot("widget-patient-kinyarwanda.png")

    # no lang attribute: the browser's language (here fr-FR), else English
    browser_fr = await open_widget(
        "widget-lang-2", "dr-nav", Role.SPECIALIST, skip=False, locale="fr-FR"
    )
    await browser_fr.wait_screen("precall")
    assert await browser_fr.shadow('button[data-action="join"]').inner_text() == "Rejoindre"
    for page in (french, rw, browser_fr):
        assert await page.violations() == []


async def test_every_string_exists_in_the_three_languages(
    server: RunningServer, chromium: Any
) -> None:
    """i18n/: same keys in en/fr/rw, none empty, and every key the widget and console use exists."""
    context = await chromium.new_context()
    try:
        page = await context.new_page()
        await page.goto(str(server.server.make_url("/client/widget/embed.html")))
        tables = await page.evaluate(
            """async () => {
                const { STRINGS, pickLanguage, formatTime, translator } =
                    await import('/client/i18n/catalogue.js');
                const warned = [];
                console.warn = (text) => warned.push(text);
                const missing = translator('rw')('noSuchKey');
                const at = new Date(2026, 0, 1, 20, 16);
                return {strings: STRINGS, warned, missing,
                        clocks: ['en', 'fr', 'rw'].map((lang) => formatTime(at, lang)),
                        picks: [pickLanguage('fr-CA', []),
                        pickLanguage('kin', []), pickLanguage('de', ['rw-RW']),
                        pickLanguage(null, ['de-DE']), pickLanguage('RW', [])]};
            }"""
        )
    finally:
        await context.close()
    strings = tables["strings"]
    assert set(strings) == {"en", "fr", "rw"}
    keys = set(strings["en"])
    for lang in ("fr", "rw"):
        assert set(strings[lang]) == keys, (lang, keys ^ set(strings[lang]))
        assert all(text.strip() for text in strings[lang].values()), lang
        # placeholders survive translation
        for key, text in strings["en"].items():
            assert sorted(re.findall(r"\{\w+\}", text)) == sorted(
                re.findall(r"\{\w+\}", strings[lang][key])
            ), (lang, key)
    # a control's accessible name contains its visible text (WCAG 2.5.3, axe's
    # label-content-name-mismatch): "<key>Label" holds "<key>"
    for lang, table in strings.items():
        for key, text in table.items():
            for label_key in (f"{key}Label", f"{key}ToRoomLabel"):
                label = table.get(label_key)
                assert label is None or text.lower() in label.lower(), (lang, key, label)
    assert tables["picks"] == ["fr", "rw", "rw", "en", "rw"]
    # chat times in the UI language, not the browser's (Chromium has no Kinyarwanda locale)
    assert tables["clocks"] == ["08:16 PM", "20:16", "20:16"], tables["clocks"]
    # a missing text is never a silent fallback
    assert tables["missing"] == "noSuchKey" and len(tables["warned"]) == 1, tables
    used: set[str] = set()
    for source in [*WIDGET_DIR.glob("*.js"), *CONSOLE_DIR.glob("*.js")]:
        used |= set(re.findall(r"\bt\(\s*\"([\w.]+)\"", source.read_text()))
    assert used and used <= keys, used - keys
