// The specialist's multi-room console: up to 10 consult rooms on one page.
//
// One ConsultSession per room, all joined up front; exactly one room is
// *focused* (camera, microphone, incoming video), every other one is *on
// hold*. See rooms.js for how focus and hold work, and docs/console.md.
//
// This is the page's entry module (index.html loads it). The others:
//   config.js  query-string parsing (tokens, demo rooms, token claims)
//   state.js   page context and shared state (language, server, focus, api)
//   rooms.js   rooms: joining, publishing, focus / hold
//   lobby.js   lobby notifications (banner, chime), admit / deny
//   view.js    the tiles and page notices (DOM), error reports
//   hooks.js   test and debugging helpers
//
// Query string:
//   tokens=<t1>,<t2>,…  or  tokens=["t1","t2",…]   join tokens, one per room
//   server=ws://host/ws     signalling server (default: this page's server)
//   rooms=3 | rooms=a,b,c   demo mode (no tokens): mint development tokens
//                           with /demo/token for rooms <prefix>-1..N or a,b,c
//   prefix=demo-room  identity=specialist  name=…   demo mode token claims
//   lang=en|fr|rw     focus=N (1-based, initially focused room)
//
// Tests read `window.digiclinicConsole`.

import { MAX_ROOMS, parseDemoRooms, parseTokens } from "./config.js";
import { $, api, lang, params, setFocused, t } from "./state.js";
import { Room, focusRoom, openLocalMedia, startRoom } from "./rooms.js";
import { notice, renderAll, report } from "./view.js";
import { setUpBanner } from "./lobby.js";
import { connections, inbound, summary } from "./hooks.js";

export { MAX_ROOMS, jwtClaims, parseDemoRooms, parseTokens } from "./config.js";

Object.assign(api, {
  focus: (index) => focusRoom(index, "api"),
  summary,
  inbound,
  connections,
});
window.digiclinicConsole = api;

// -- keyboard -------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const target = event.target;
  if (target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
  if (!/^[0-9]$/.test(event.key)) return;
  const index = event.key === "0" ? 9 : Number(event.key) - 1;
  if (index < api.rooms.length) {
    event.preventDefault();
    focusRoom(index, "key");
  }
});

// -- start ----------------------------------------------------------------------------------

async function demoTokens(rooms) {
  const identity = params.get("identity") || "specialist";
  const name = params.get("name") || identity;
  return Promise.all(rooms.map(async (room) => {
    const query = new URLSearchParams({ room, identity, name, role: "specialist" });
    const response = await fetch(`/demo/token?${query}`);
    if (!response.ok) throw new Error(`/demo/token: HTTP ${response.status}`);
    return (await response.json()).token;
  }));
}

async function main() {
  document.documentElement.lang = lang;
  document.title = `digiclinic · ${t("consoleTitle")}`;
  $("title").textContent = t("consoleTitle");
  $("hint").textContent = t("keysHint");
  $("rooms").setAttribute("aria-label", t("roomsLabel"));
  setUpBanner();

  let tokens;
  try {
    tokens = parseTokens(params.get("tokens"));
    if (!tokens.length) {
      const demo = parseDemoRooms(params.get("rooms"), params.get("prefix") || "demo-room");
      if (demo.length) tokens = await demoTokens(demo);
    }
  } catch (err) {
    notice(String(err?.message ?? err));
    tokens = [];
  }
  if (tokens.length > MAX_ROOMS) {
    notice(t("tooManyRooms", { max: MAX_ROOMS }));
    tokens = tokens.slice(0, MAX_ROOMS);
  }
  if (!tokens.length) {
    notice(t("noRooms"));
    api.ready = true;
    return;
  }
  document.body.dataset.rooms = String(tokens.length);
  const initial = Number(params.get("focus") ?? 1) - 1;
  setFocused(initial >= 0 && initial < tokens.length ? initial : 0);
  api.rooms = tokens.map((token, index) => new Room(index, token));
  renderAll();
  await openLocalMedia();
  // every room at once: their own WebSocket and connections, all up front
  await Promise.all(api.rooms.map((room) => startRoom(room)));
  api.ready = true;
  document.body.dataset.ready = "true";
}

main().catch((err) => report(null, err));
