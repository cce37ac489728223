// The specialist's multi-room console: up to 10 consult rooms on one page.
//
// One ConsultSession per room, all joined up front; exactly one room is
// *focused* (camera, microphone, incoming video), every other one is *on
// hold*. See docs/console.md.
//
// This is the page's entry module (index.html loads it): it reads the query
// string, finds the join tokens (or mints demo ones), creates the controller
// with ConsultSession as each room's session, exposes the test API and
// starts. The modules, each importing only those below it:
//   controller.js  ConsoleController: the rooms, focus switching, keys; wires the rest
//   room.js        Room: one room's session, lobby, remote tracks, own actions
//   hold.js        HoldSync: focus / hold applied to a session (replaceTrack, mute, …)
//   tile.js        TileView: one room's tile (DOM), End confirmation
//   lobby.js       LobbyAlerts: banner, chime, system notification
//   page.js        PageView: titles, notices, announcements, self-view
//   local-media.js the camera and microphone (getUserMedia)
//   hooks.js       window.digiclinicConsole (test API, summaries)
//   config.js      query-string parsing, token claims
//   emitter.js, dom.js, types.js   typed EventTarget, DOM helpers, shared JSDoc types
//
// Query string:
//   tokens=<t1>,<t2>,…  or  tokens=["t1","t2",…]   join tokens, one per room
//   server=ws://host/ws     signalling server (default: this page's server)
//   rooms=3 | rooms=a,b,c   demo mode (no tokens): mint development tokens
//                           with /demo/token for rooms <prefix>-1..N or a,b,c
//   prefix=demo-room  identity=specialist  name=…   demo mode token claims
//   lang=en|fr|rw     focus=N (1-based, initially focused room)

import { ConsultSession } from "../digiclinic-client.js";
import { translator } from "../i18n/catalogue.js";
import { MAX_ROOMS, parseTokens, readConfig } from "./config.js";
import { ConsoleController } from "./controller.js";
import { testApi } from "./hooks.js";

export { MAX_ROOMS, jwtClaims, parseDemoRooms, parseTokens } from "./config.js";

/** @typedef {import("./config.js").ConsoleConfig} ConsoleConfig */
/** @typedef {import("./types.js").CreateSession} CreateSession */
/** @typedef {import("./types.js").RoomSession} RoomSession */

/** @type {CreateSession} */
const createSession = (options) => {
  const session = new ConsultSession(options);
  // The library's mixin chain (client/*.js, before its rework) hides from tsc that a
  // session is an EventTarget and has publish(). Every other member the console uses
  // (RoomSession, types.js) is checked here against the library. Once the library is
  // typed throughout, `return session` is enough (and checks those two as well).
  /** @type {Omit<RoomSession, "publish" | keyof EventTarget>} */
  const checked = session;
  return /** @type {RoomSession} */ (/** @type {unknown} */ (checked));
};

/**
 * Development tokens from the server's /demo/token (demo mode; this origin only).
 * @param {ConsoleConfig} config
 * @returns {Promise<string[]>}
 */
async function demoTokens({ demoRooms, identity, name }) {
  return Promise.all(demoRooms.map(async (room) => {
    const query = new URLSearchParams({ room, identity, name, role: "specialist" });
    const response = await fetch(`/demo/token?${query}`);
    if (!response.ok) throw new Error(`/demo/token: HTTP ${response.status}`);
    return (await response.json()).token;
  }));
}

/**
 * The join tokens: `?tokens=`, else demo mode's. Problems are page notices.
 * @param {ConsoleConfig} config
 * @param {(text: string) => void} notice
 * @param {import("../i18n/catalogue.js").Translate} t
 * @returns {Promise<string[]>}
 */
async function joinTokens(config, notice, t) {
  let tokens;
  try {
    tokens = parseTokens(config.tokens);
    if (!tokens.length && config.demoRooms.length) tokens = await demoTokens(config);
  } catch (err) {
    notice(String(err?.message ?? err));
    tokens = [];
  }
  if (tokens.length > MAX_ROOMS) {
    notice(t("tooManyRooms", { max: MAX_ROOMS }));
    tokens = tokens.slice(0, MAX_ROOMS);
  }
  return tokens;
}

const config = readConfig(location.search, location, navigator.languages ?? [navigator.language], location.hash);
// the consult keys stay in memory only: not in the address bar, the history or a bookmark
if (location.hash) history.replaceState(null, "", location.pathname + location.search);
const t = translator(config.lang);
const controller = new ConsoleController({
  t, lang: config.lang, serverUrl: config.serverUrl, createSession,
});
Object.assign(window, { digiclinicConsole: testApi(controller, config.lang) });

async function main() {
  const notice = (/** @type {string} */ text) => controller.page.notice(text);
  const tokens = await joinTokens(config, notice, t);
  if (!tokens.length) {
    notice(t("noRooms"));
    controller.ready = true;
    return;
  }
  controller.open(tokens, config.focus, config.e2eeKeys);
  await controller.start();
}

main().catch((err) => controller.report(null, err));
