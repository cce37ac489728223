// The console's configuration from its query string: join tokens, demo room
// names, and a token's (unverified) claims for labels before joining.
// Pure functions, no DOM and no state; console.js re-exports them.

export const MAX_ROOMS = 10;

/** Join tokens from `?tokens=`: a comma-separated list or a JSON list of strings. */
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

/** Demo room names from `?rooms=`: a count (<prefix>-1..N) or a comma-separated list. */
export function parseDemoRooms(raw, prefix = "demo-room") {
  const text = (raw ?? "").trim();
  if (!text) return [];
  if (/^\d+$/.test(text)) {
    const count = Math.min(Number(text), MAX_ROOMS);
    return Array.from({ length: count }, (_, i) => `${prefix}-${i + 1}`);
  }
  return text.split(",").map((r) => r.trim()).filter(Boolean);
}

/** The (unverified) claims of a JWT, for labels before joining; {} if unreadable. */
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
