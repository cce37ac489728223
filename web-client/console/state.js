// Shared state of the console page: its query string, language and signalling
// server, the focused room, and the object tests read. console.js adds the
// test hooks (focus, summary, inbound, connections) to `api` and exposes it
// as `window.digiclinicConsole`.

import { pickLanguage, translator } from "../i18n/catalogue.js";

export const params = new URLSearchParams(location.search);
export const lang = pickLanguage(params.get("lang"), navigator.languages ?? [navigator.language]);
export const t = translator(lang);
const defaultServer = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws?v=1`;
export const serverUrl = params.get("server") || defaultServer;

export const $ = (id) => document.getElementById(id);

/** What tests (and curious developers) can read. */
export const api = {
  ready: false, // every room has joined (or failed) and applied its focus/hold state
  lang,
  rooms: [], // Room objects (not serialisable: use summary())
  focused: 0,
  switches: [], // {from, to, mediaMs, totalMs}
  notifications: [], // {room, participantId, name, at}
  errors: [], // {room, code, message}
  local: { audio: null, video: null },
};

/** Index of the focused room (the same as `api.focused`); every other room is on hold. */
export let focusedIndex = 0;

export function setFocused(index) {
  focusedIndex = api.focused = index;
}
