// The one string catalogue of the widget and the console: English, French
// and Kinyarwanda (en.js, fr.js, rw.js hold the strings), the choice of
// language, `{name}` placeholders, and times formatted for the UI language.
//
// Every key exists in every language (tests/browser/test_widget_i18n.py
// checks it). Should one still be missing at run time, the English text is
// shown and the gap is reported once on the console, never silently.
// docs/glossary.md lists the clinical terms in the three languages.

import en from "./en.js";
import fr from "./fr.js";
import rw from "./rw.js";

/** @typedef {"en" | "fr" | "rw"} Language */
/** @typedef {(key: string, values?: Record<string, unknown>) => string} Translate */

/** @type {Language[]} */
export const LANGUAGES = ["en", "fr", "rw"];

/** @type {Record<Language, Record<string, string>>} */
export const STRINGS = { en, fr, rw };

const ALIASES = /** @type {Record<string, Language>} */ ({ kin: "rw", fra: "fr", fre: "fr", eng: "en" });

/**
 * The UI language: `requested` (an attribute or `?lang=`) if we have it, else
 * the browser's languages, else English. "fr-CA" -> "fr", "rw-RW" and "kin" -> "rw".
 * @param {string | null | undefined} requested
 * @param {readonly string[]} [preferred] the browser's languages
 * @returns {Language}
 */
export function pickLanguage(requested, preferred = globalThis.navigator?.languages ?? []) {
  for (const candidate of [requested, ...preferred, globalThis.navigator?.language]) {
    if (!candidate) continue;
    const base = String(candidate).toLowerCase().split(/[-_]/)[0];
    const lang = ALIASES[base] ?? base;
    if (isLanguage(lang)) return lang;
  }
  return "en";
}

/** @param {string} value @returns {value is Language} */
function isLanguage(value) {
  return /** @type {string[]} */ (LANGUAGES).includes(value);
}

const reported = new Set();

/**
 * `t(key, {name})`: the string in `lang`, placeholders filled.
 * @param {string} lang
 * @returns {Translate}
 */
export function translator(lang) {
  const table = isLanguage(lang) ? STRINGS[lang] : en;
  return (key, values = {}) => {
    let text = table[key];
    if (text === undefined) {
      text = en[key] ?? key;
      if (!reported.has(`${lang}:${key}`)) {
        reported.add(`${lang}:${key}`);
        console.warn(`digiclinic: no ${lang} text for "${key}"; showing English`);
      }
    }
    return text.replace(/\{(\w+)\}/g, (match, name) => (name in values ? String(values[name]) : match));
  };
}

// Rwanda and the French-speaking countries write times on the 24-hour clock.
// Chromium's ICU has no Kinyarwanda data and would fall back to the browser's
// own locale (08:16 PM); the clock is therefore set explicitly.
const CLOCK = /** @type {Record<Language, Intl.DateTimeFormatOptions>} */ ({
  en: { hour: "2-digit", minute: "2-digit" },
  fr: { hour: "2-digit", minute: "2-digit", hourCycle: "h23" },
  rw: { hour: "2-digit", minute: "2-digit", hourCycle: "h23" },
});

/**
 * A time of day ("20:16", "08:16 PM") in the UI language; "" for an invalid date.
 * @param {Date} date
 * @param {string} lang
 */
export function formatTime(date, lang) {
  if (Number.isNaN(date.getTime())) return "";
  const language = isLanguage(lang) ? lang : "en";
  return new Intl.DateTimeFormat([language, "en"], CLOCK[language]).format(date);
}
