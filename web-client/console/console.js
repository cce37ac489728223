// The specialist's multi-room console: up to 10 consult rooms on one page.
//
// One ConsultSession per room (its own WebSocket, publisher and subscriber
// RTCPeerConnections), all joined up front. Exactly one room is *focused*:
// it gets the specialist's camera and microphone and its incoming video
// plays. Every other room is *on hold*:
//   - our senders there carry no track (RTCRtpSender.replaceTrack(null): no
//     renegotiation, nothing is encoded or sent), and the server is told with
//     `mute` so the other participants see the specialist's tracks muted;
//   - the video we receive there is paused on the server (`pause_video`), so
//     it costs no bandwidth; the tile keeps its last frame under an "on hold"
//     veil; its audio keeps flowing but is muted locally.
// Switching focus only does replaceTrack + `mute` + `pause_video` in the two
// rooms concerned: no new connection, no SDP. See docs/console.md.
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

import { ConsultSession } from "../digiclinic-client.js";
import { chooseLanguage, translator } from "./i18n.js";

export const MAX_ROOMS = 10;

// -- configuration -------------------------------------------------------------

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

const params = new URLSearchParams(location.search);
const lang = chooseLanguage(params.get("lang"), navigator.languages ?? [navigator.language]);
const t = translator(lang);
const defaultServer = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws?v=1`;
const serverUrl = params.get("server") || defaultServer;

// -- state -----------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** What tests (and curious developers) can read. */
const api = {
  ready: false, // every room has joined (or failed) and applied its focus/hold state
  lang,
  rooms: [], // Room objects (not serialisable: use summary())
  focused: 0,
  switches: [], // {from, to, mediaMs, totalMs}
  notifications: [], // {room, participantId, name, at}
  errors: [], // {room, code, message}
  local: { audio: null, video: null },
  focus: (index) => focusRoom(index, "api"),
  summary,
  inbound,
  connections,
};
window.digiclinicConsole = api;

let focusedIndex = 0;
let audioContext = null;
let bannerRoom = null; // {room, participantId} the banner is about

// -- rooms ------------------------------------------------------------------------

class Room {
  constructor(index, token) {
    const claims = jwtClaims(token);
    this.index = index;
    this.token = token;
    this.roomId = typeof claims.room === "string" ? claims.room : null;
    this.label = this.roomId ?? t("roomN", { n: index + 1 });
    this.state = "connecting"; // connecting, active, failed, closed
    this.session = null;
    this.lobby = []; // the latest `lobby` list
    this.seenWaiting = new Set(); // lobby ids we already notified about
    this.media = new Map(); // remote trackId -> {kind, element, participantId}
    this.sentMuted = new Map(); // our trackId -> muted state told to the server
    this.sentPaused = new Map(); // remote video trackId -> paused state told to the server
    this.serverPaused = new Map(); // remote video trackId -> paused, from `track_paused`
    this.chain = Promise.resolve(); // applyState() calls never overlap
    this.el = buildTile(this);
  }

  get held() {
    return this.index !== focusedIndex;
  }

  /** Ids of the remote video tracks we receive (or are about to). */
  remoteVideoIds() {
    const ids = new Set();
    for (const participant of this.session?.participants.values() ?? []) {
      for (const track of participant.producers ?? []) if (track.kind === "video") ids.add(track.id);
    }
    for (const [id, info] of this.session?.remoteTracks ?? []) if (info.kind === "video") ids.add(id);
    return ids;
  }

  /** Our publisher transceivers with their track id and kind. */
  ourSenders() {
    const pc = this.session?.publisherPc;
    if (!pc || pc.connectionState === "closed") return [];
    const byMid = new Map([...this.session.published.values()].map((entry) => [entry.mid, entry]));
    return pc.getTransceivers()
      .filter((tr) => byMid.has(tr.mid) && !tr.stopped)
      .map((tr) => ({ sender: tr.sender, kind: tr.receiver.track.kind, trackId: byMid.get(tr.mid).trackId }));
  }
}

/**
 * A raw protocol request, for what ConsultSession has no method for
 * (`pause_video` in older versions) or whose method does more than we want:
 * `ConsultSession.mute()` also sets `track.enabled` on the published track,
 * and the console must only tell the server. `_request` is the library's
 * request helper: it matches the reply by `ref` and rejects on an `error`.
 */
function request(session, type, fields) {
  return session._request(type, fields);
}

function pauseVideo(session, trackId, paused) {
  if (typeof session.pauseVideo === "function") return session.pauseVideo(trackId, paused);
  return request(session, "pause_video", { track_id: trackId, paused });
}

/**
 * Bring one room's media in line with focus: local tracks or none on our
 * senders, `mute` and `pause_video` as needed. Only differences are sent.
 * Resolves to the time (ms) at which the local media change was done.
 */
function applyState(room) {
  const run = room.chain.then(async () => {
    const session = room.session;
    if (!session || session.state !== "active") return performance.now();
    const held = room.held;
    const media = [];
    const signals = [];
    for (const { sender, kind, trackId } of room.ourSenders()) {
      const wanted = held ? null : api.local[kind] ?? null;
      if (sender.track !== wanted) media.push(sender.replaceTrack(wanted));
      if (room.sentMuted.get(trackId) !== held) {
        room.sentMuted.set(trackId, held);
        signals.push(request(session, "mute", { track_id: trackId, muted: held }).catch((err) => {
          room.sentMuted.delete(trackId); // retried by the next applyState
          report(room, err);
        }));
      }
    }
    for (const trackId of room.remoteVideoIds()) {
      if (room.sentPaused.get(trackId) === held) continue;
      room.sentPaused.set(trackId, held);
      signals.push(pauseVideo(session, trackId, held).catch((err) => {
        room.sentPaused.delete(trackId);
        if (err.code !== "not_found") report(room, err); // unpublished meanwhile
      }));
    }
    for (const entry of room.media.values()) if (entry.kind === "audio") entry.element.muted = held;
    await Promise.all(media);
    const mediaDone = performance.now();
    await Promise.all(signals);
    return mediaDone;
  });
  room.chain = run.catch((err) => {
    report(room, err);
    return performance.now();
  });
  return room.chain;
}

async function focusRoom(index, how = "click") {
  const next = api.rooms[index];
  if (!next || index === focusedIndex) return null;
  const started = performance.now();
  const previous = api.rooms[focusedIndex];
  focusedIndex = api.focused = index;
  renderAll();
  const [a, b] = await Promise.all([applyState(previous), applyState(next)]);
  const done = performance.now();
  const result = {
    from: previous.index, to: index, how,
    mediaMs: Math.round((Math.max(a, b) - started) * 10) / 10,
    totalMs: Math.round((done - started) * 10) / 10,
  };
  api.switches.push(result);
  $("announce").textContent = t("switched", { room: next.label, ms: Math.round(result.totalMs) });
  return result;
}

async function startRoom(room) {
  const session = new ConsultSession({ url: serverUrl, token: room.token });
  room.session = session;
  session.addEventListener("lobby", ({ detail }) => onLobby(room, detail.waiting));
  session.addEventListener("track", ({ detail }) => { addMedia(room, detail); applyState(room); });
  session.addEventListener("track-removed", ({ detail }) => removeMedia(room, detail.trackId));
  session.addEventListener("track-published", () => applyState(room));
  session.addEventListener("track-unpublished", ({ detail }) => {
    room.sentPaused.delete(detail.track_id);
    room.serverPaused.delete(detail.track_id);
  });
  for (const type of ["participant-joined", "participant-left", "track-muted"]) {
    session.addEventListener(type, () => render(room));
  }
  session.addEventListener("message", ({ detail }) => {
    if (detail.type === "track_paused") room.serverPaused.set(detail.track_id, detail.paused);
  });
  session.addEventListener("error", ({ detail }) => report(room, detail));
  session.addEventListener("closed", () => {
    if (room.state !== "failed") room.state = "closed";
    render(room);
  });
  try {
    const joined = await session.join();
    room.roomId = joined.room;
    room.label = joined.room;
    room.state = joined.state === "active" ? "active" : "failed"; // a specialist never waits
    render(room);
    if (room.state !== "active") return;
    await publishPlaceholders(room);
    await applyState(room);
  } catch (err) {
    room.state = "failed";
    report(room, err);
  }
  render(room);
}

/**
 * Publish in one room without sending anything yet: the transceivers are
 * created with *ended* clones of the local tracks, which produce no media.
 * applyState() then puts the real track on the focused room's senders and
 * null on the others, so no frame ever leaks to a room on hold.
 */
async function publishPlaceholders(room) {
  const tracks = [api.local.audio, api.local.video].filter(Boolean).map((track) => {
    const clone = track.clone();
    clone.stop();
    return clone;
  });
  if (tracks.length) await room.session.publish(new MediaStream(tracks));
}

async function openLocalMedia() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true },
      video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
    });
    api.local.audio = stream.getAudioTracks()[0] ?? null;
    api.local.video = stream.getVideoTracks()[0] ?? null;
    if (api.local.video) api.local.video.contentHint = "detail"; // clinical detail over smoothness
    $("self-view").srcObject = stream;
    $("self").hidden = !api.local.video;
  } catch (err) {
    notice(t("noMedia"));
    api.errors.push({ room: null, code: "no_media", message: String(err?.message ?? err) });
  }
}

function report(room, err) {
  const entry = { room: room?.index ?? null, code: err?.code ?? "error", message: String(err?.message ?? err) };
  api.errors.push(entry);
  console.warn("digiclinic console", entry);
  if (room) render(room);
}

// -- lobby and notifications ------------------------------------------------------

function onLobby(room, waiting) {
  room.lobby = waiting;
  const fresh = waiting.filter((w) => !room.seenWaiting.has(w.id));
  for (const w of waiting) room.seenWaiting.add(w.id);
  const ids = new Set(waiting.map((w) => w.id));
  for (const id of room.seenWaiting) if (!ids.has(id)) room.seenWaiting.delete(id);
  if (bannerRoom?.room === room && !ids.has(bannerRoom.participantId)) hideBanner();
  for (const person of fresh) notify(room, person);
  render(room);
}

function notify(room, person) {
  const text = t("notify", { name: person.name, room: room.label });
  api.notifications.push({ room: room.index, participantId: person.id, name: person.name, at: Date.now() });
  bannerRoom = { room, participantId: person.id, name: person.name };
  $("banner-text").textContent = text;
  $("banner-admit").textContent = t("admit");
  $("banner-admit").setAttribute("aria-label", t("admitLabel", { name: person.name, room: room.label }));
  $("banner-go").textContent = t("goToRoom");
  $("banner-go").setAttribute("aria-label", t("goToRoomLabel", { room: room.label }));
  $("banner-go").hidden = !room.held;
  $("banner").hidden = false;
  beep();
  // The Notification API only if the user already allowed it: never ask from here.
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    try {
      new Notification(t("notifyTitle"), { body: text, tag: `digiclinic-lobby-${room.index}` });
    } catch { /* e.g. not allowed outside a service worker on some platforms */ }
  }
}

function hideBanner() {
  $("banner").hidden = true;
  bannerRoom = null;
}

/** A short two-tone chime; silently nothing when audio cannot start. */
function beep() {
  try {
    audioContext ??= new AudioContext();
    if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
    const now = audioContext.currentTime;
    const gain = audioContext.createGain();
    gain.connect(audioContext.destination);
    gain.gain.setValueAtTime(0.0001, now);
    gain.gain.exponentialRampToValueAtTime(0.2, now + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.35);
    for (const [freq, at] of [[880, 0], [1175, 0.14]]) {
      const osc = audioContext.createOscillator();
      osc.frequency.value = freq;
      osc.connect(gain);
      osc.start(now + at);
      osc.stop(now + at + 0.2);
    }
  } catch { /* no audio output */ }
}

async function admit(room, participantId) {
  try {
    await room.session.admit(participantId);
  } catch (err) {
    report(room, err);
  }
}

async function deny(room, participantId) {
  try {
    await room.session.deny(participantId);
  } catch (err) {
    report(room, err);
  }
}

function notice(text) {
  const item = document.createElement("li");
  item.textContent = text;
  $("notices").append(item);
}

// -- DOM ---------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function buildTile(room) {
  const tile = el("section", "tile");
  tile.dataset.room = String(room.index);
  const key = String((room.index + 1) % 10);
  const head = el("header", "tile-head");
  const number = el("span", "tile-key", key);
  number.setAttribute("aria-hidden", "true");
  const title = el("h2", "tile-title");
  const titleId = `room-title-${room.index}`;
  title.id = titleId;
  tile.setAttribute("aria-labelledby", titleId);
  const status = el("span", "badge");
  const focus = el("button", "focus");
  focus.type = "button";
  focus.addEventListener("click", () => focusRoom(room.index, "click"));
  head.append(number, title, status, focus);

  const stage = el("div", "stage");
  const videos = el("div", "videos");
  const placeholder = el("p", "placeholder");
  const veil = el("p", "veil");
  stage.append(videos, placeholder, veil);

  const people = el("p", "people");
  const lobby = el("div", "lobby");
  const lobbyTitle = el("h3", "lobby-title", t("waitingList"));
  const lobbyList = el("ul", "lobby-list");
  lobby.append(lobbyTitle, lobbyList);
  const error = el("p", "tile-error");

  tile.append(head, stage, lobby, people, error);
  $("rooms").append(tile);
  return { tile, title, status, focus, stage, videos, placeholder, veil, people, lobby, lobbyList, error };
}

function tileState(room) {
  if (room.state === "connecting") return "connecting";
  if (room.state === "failed" || room.state === "closed") return room.state;
  if (room.lobby.length) return "waiting";
  return room.held ? "on-hold" : "in-call";
}

const STATE_TEXT = {
  connecting: "state.connecting", waiting: "state.waiting", "in-call": "state.inCall",
  "on-hold": "state.onHold", failed: "state.failed", closed: "state.closed",
};

function render(room) {
  const e = room.el;
  const state = tileState(room);
  const n = room.index + 1;
  const key = String(n % 10);
  e.tile.dataset.state = state;
  e.tile.classList.toggle("focused", !room.held);
  e.tile.classList.toggle("held", room.held);
  e.title.textContent = room.label;
  e.status.textContent = t(STATE_TEXT[state]);
  if (state === "waiting") e.status.textContent += ` · ${t(room.held ? "state.onHold" : "state.inCall")}`;
  e.focus.textContent = room.held ? t("focus") : t("focused");
  e.focus.setAttribute("aria-pressed", String(!room.held));
  e.focus.setAttribute("aria-label", room.held
    ? t("focusLabel", { n, room: room.label, key })
    : t("focusedLabel", { n, room: room.label }));
  e.focus.disabled = room.state !== "active" && room.state !== "connecting";

  const others = [...(room.session?.participants.values() ?? [])];
  e.people.textContent = others.length
    ? t("inRoom", { count: others.length, names: others.map((p) => p.name).join(", ") })
    : "";
  const hasVideo = [...room.media.values()].some((m) => m.kind === "video");
  e.placeholder.textContent = room.state === "active" && !hasVideo ? t("emptyRoom") : "";
  e.placeholder.hidden = !e.placeholder.textContent;
  e.veil.textContent = t("onHoldOverlay");
  e.veil.hidden = !room.held || room.state !== "active";

  const errors = api.errors.filter((x) => x.room === room.index);
  const last = errors[errors.length - 1];
  e.error.textContent = room.state === "failed" && last ? t("joinError", { room: room.label, message: last.code }) : "";
  e.error.hidden = !e.error.textContent;

  renderLobby(room);
  if (!room.held) $("self-caption").textContent = t("selfCaption", { room: room.label });
}

function renderLobby(room) {
  const { lobby, lobbyList } = room.el;
  const shown = [...lobbyList.children].map((li) => li.dataset.participant).join(",");
  lobby.hidden = room.lobby.length === 0;
  if (shown === room.lobby.map((w) => w.id).join(",")) return; // keep keyboard focus on the buttons
  lobbyList.replaceChildren(...room.lobby.map((person) => {
    const item = el("li", "waiting");
    item.dataset.participant = person.id;
    const name = el("span", "waiting-name", person.name);
    const yes = el("button", "admit", t("admit"));
    yes.type = "button";
    yes.setAttribute("aria-label", t("admitLabel", { name: person.name, room: room.label }));
    yes.addEventListener("click", () => admit(room, person.id));
    const no = el("button", "deny", t("deny"));
    no.type = "button";
    no.setAttribute("aria-label", t("denyLabel", { name: person.name, room: room.label }));
    no.addEventListener("click", () => deny(room, person.id));
    item.append(name, yes, no);
    return item;
  }));
}

function renderAll() {
  api.rooms.forEach(render);
}

function addMedia(room, { track, trackId, participantId, kind }) {
  removeMedia(room, trackId);
  const stream = new MediaStream([track]);
  let element;
  if (kind === "video") {
    const figure = el("figure", "remote");
    const video = el("video");
    Object.assign(video, { autoplay: true, playsInline: true, muted: true, srcObject: stream });
    video.dataset.trackId = trackId;
    // until a first frame arrives (never, for a room on hold from the start) show no black box
    video.addEventListener("loadeddata", () => { figure.dataset.frame = "1"; }, { once: true });
    const name = room.session.participants.get(participantId)?.name ?? "";
    figure.append(video, el("figcaption", "", name));
    room.el.videos.append(figure);
    element = video;
  } else {
    element = el("audio");
    Object.assign(element, { autoplay: true, muted: room.held, srcObject: stream });
    room.el.stage.append(element);
  }
  room.media.set(trackId, { kind, element, participantId });
  render(room);
}

function removeMedia(room, trackId) {
  const entry = room.media.get(trackId);
  if (!entry) return;
  room.media.delete(trackId);
  entry.element.srcObject = null;
  (entry.element.closest("figure") ?? entry.element).remove();
  render(room);
}

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

// -- test and debugging helpers ------------------------------------------------------------

/** A JSON-able view of every room. */
function summary() {
  return api.rooms.map((room) => ({
    index: room.index,
    room: room.roomId,
    state: room.state,
    tileState: tileState(room),
    held: room.held,
    participantId: room.session?.participantId ?? null,
    lobby: room.lobby,
    senders: room.ourSenders().map(({ sender, kind, trackId }) => ({
      kind, trackId, track: sender.track?.id ?? null, live: sender.track?.readyState === "live",
    })),
    muted: Object.fromEntries(room.sentMuted),
    paused: Object.fromEntries(room.sentPaused),
    serverPaused: Object.fromEntries(room.serverPaused),
    remote: [...room.media].map(([trackId, m]) => ({ trackId, kind: m.kind, participantId: m.participantId })),
  }));
}

/** Frames decoded / packets received per remote track of one room (its subscriber connection). */
async function inbound(index) {
  const room = api.rooms[index];
  const pc = room?.session?.subscriberPc;
  const out = [];
  if (!pc) return out;
  const byMid = new Map([...room.session.remoteTracks.values()].map((info) => [info.mid, info]));
  for (const report of (await pc.getStats()).values()) {
    if (report.type !== "inbound-rtp") continue;
    const info = byMid.get(report.mid);
    out.push({
      kind: report.kind, trackId: info?.trackId ?? null, participantId: info?.participantId ?? null,
      packetsReceived: report.packetsReceived ?? 0, framesDecoded: report.framesDecoded ?? 0,
      frameWidth: report.frameWidth ?? 0, frameHeight: report.frameHeight ?? 0,
    });
  }
  return out;
}

/** The RTCPeerConnections and WebSockets of every room (the ones the console holds). */
function connections() {
  const pcs = api.rooms.flatMap((r) => [r.session?.publisherPc, r.session?.subscriberPc]).filter(Boolean);
  return {
    peerConnections: pcs.length,
    open: pcs.filter((pc) => pc.connectionState !== "closed").length,
    states: pcs.map((pc) => pc.connectionState),
    websockets: api.rooms.filter((r) => r.session?._ws?.readyState === WebSocket.OPEN).length,
  };
}

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
  document.title = `digiclinic · ${t("title")}`;
  $("title").textContent = t("title");
  $("hint").textContent = t("keysHint");
  $("rooms").setAttribute("aria-label", t("roomsLabel"));
  $("banner-dismiss").textContent = t("dismiss");
  $("banner-dismiss").setAttribute("aria-label", t("dismissLabel"));
  $("banner-dismiss").addEventListener("click", hideBanner);
  $("banner-go").addEventListener("click", () => {
    if (bannerRoom) focusRoom(bannerRoom.room.index, "banner");
    $("banner-go").hidden = true;
  });
  $("banner-admit").addEventListener("click", () => {
    if (bannerRoom) admit(bannerRoom.room, bannerRoom.participantId);
    hideBanner();
  });

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
  focusedIndex = api.focused = initial >= 0 && initial < tokens.length ? initial : 0;
  api.rooms = tokens.map((token, index) => new Room(index, token));
  renderAll();
  await openLocalMedia();
  // every room at once: their own WebSocket and connections, all up front
  await Promise.all(api.rooms.map((room) => startRoom(room)));
  api.ready = true;
  document.body.dataset.ready = "true";
}

main().catch((err) => report(null, err));
