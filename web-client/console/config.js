// The console's configuration from its query string: the language, the
// signalling server, the join tokens or demo rooms, the initially focused
// room, and a token's (unverified) claims for labels before joining.
// Pure functions, no DOM and no state; console.js re-exports some of them.

import { pickLanguage } from "../i18n/catalogue.js";

/** @typedef {import("../i18n/catalogue.js").Language} Language */

/**
 * What the page was asked for (docs/console.md, "Opening it").
 * @typedef {object} ConsoleConfig
 * @property {Language} lang  the UI language
 * @property {string} serverUrl  the signalling WebSocket
 * @property {string | null} tokens  `?tokens=` as given (parseTokens() reads it)
 * @property {string[]} demoRooms  demo mode's room ids (only used without tokens)
 * @property {string} identity  demo mode: the token's `sub`
 * @property {string} name  demo mode: the token's display name
 * @property {number} focus  the room focused at start, 0-based (may be out of range)
 * @property {string[]} e2eeKeys  the consult keys of end-to-end encrypted rooms, one per token
 *   in the same order ("" for a room without), from the fragment: `#e2ee=<key>,<key>,...`
 */

export const MAX_ROOMS = 10;

/**
 * The page's configuration from its query string and location.
 * @param {string} search  `location.search`
 * @param {{protocol: string, host: string}} where  the page's location
 * @param {readonly string[]} languages  the browser's languages
 * @param {string} [hash]  `location.hash` (consult keys: never sent to a server)
 * @returns {ConsoleConfig}
 */
export function readConfig(search, where, languages, hash = "") {
  const params = new URLSearchParams(search);
  const fragment = new URLSearchParams(hash.replace(/^#/, ""));
  const defaultServer = `${where.protocol === "https:" ? "wss:" : "ws:"}//${where.host}/ws?v=1`;
  const identity = params.get("identity") || "specialist";
  return {
    lang: pickLanguage(params.get("lang"), languages),
    serverUrl: params.get("server") || defaultServer,
    tokens: params.get("tokens"),
    demoRooms: parseDemoRooms(params.get("rooms"), params.get("prefix") || "demo-room"),
    identity,
    name: params.get("name") || identity,
    focus: Number(params.get("focus") ?? 1) - 1,
    e2eeKeys: (fragment.get("e2ee") ?? "").split(",").map((k) => k.trim()),
  };
}

/**
 * Join tokens from `?tokens=`: a comma-separated list or a JSON list of strings.
 * @param {string | null | undefined} raw
 * @returns {string[]}
 * @throws {SyntaxError | TypeError} on a malformed JSON list
 */
export function parseTokens(raw) {
  const text = (raw ?? "").trim();
  if (!text) return [];
  if (text.startsWith("[")) {
    const list = JSON.parse(text);
    if (!Array.isArray(list) || !list.every((t) => typeof t === "string")) {
      throw new TypeError("tokens: a JSON list of strings");
    }
    return list.map((t) => t.trim()).filter(Boolean);
  }
  return text.split(",").map((t) => t.trim()).filter(Boolean);
}

/**
 * Demo room names from `?rooms=`: a count (<prefix>-1..N) or a comma-separated list.
 * @param {string | null | undefined} raw
 * @param {string} [prefix]
 * @returns {string[]}
 */
export function parseDemoRooms(raw, prefix = "demo-room") {
  const text = (raw ?? "").trim();
  if (!text) return [];
  if (/^\d+$/.test(text)) {
    const count = Math.min(Number(text), MAX_ROOMS);
    return Array.from({ length: count }, (_, i) => `${prefix}-${i + 1}`);
  }
  return text.split(",").map((r) => r.trim()).filter(Boolean);
}

/**
 * The (unverified) claims of a JWT, for labels before joining; {} if unreadable.
 * @param {string} token
 * @returns {Record<string, unknown>}
 */
export function jwtClaims(token) {
  try {
    const part = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    const json = atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "="));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) ?? {};
  } catch {
    return {};
  }
}
