// The console's controller (class ConsoleController): owns the list of rooms,
// which one is focused (exactly one; every other is on hold), focus
// switching and its timing, the page's error list and the local tracks.
// It creates each Room with its TileView, the LobbyAlerts and the PageView,
// wires them together (a room's lobby -> alerts, errors -> `errors`, the
// focused room -> the self-view caption) and owns the keyboard shortcuts:
// keys 1-9 focus rooms 1-9, 0 focuses room 10.

import { CaptureViewer } from "../widget/capture-viewer.js";
import { openLocalMedia } from "./local-media.js";
import { LobbyAlerts } from "./lobby.js";
import { PageView } from "./page.js";
import { Room, errorEntry } from "./room.js";
import { TileView } from "./tile.js";

/** @typedef {import("./types.js").CreateSession} CreateSession */
/** @typedef {import("./types.js").ErrorEntry} ErrorEntry */
/** @typedef {import("./types.js").LocalTracks} LocalTracks */
/** @typedef {import("../i18n/catalogue.js").Translate} Translate */

/**
 * One focus switch, as `digiclinicConsole.switches` lists it.
 * @typedef {object} SwitchRecord
 * @property {number} from  the room that went on hold
 * @property {number} to  the room focused
 * @property {string} how  "key", "click", "banner" or "api"
 * @property {number} mediaMs  until the replaceTrack promises resolved (the media moved)
 * @property {number} totalMs  until the server also acknowledged every mute and pause_video
 */

/**
 * @typedef {object} ControllerOptions
 * @property {Translate} t
 * @property {string} lang  the UI language
 * @property {string} serverUrl  the signalling WebSocket
 * @property {CreateSession} createSession  a ConsultSession per room
 */

/**
 * The room a key focuses (0-based), or null for any other key.
 * @param {KeyboardEvent} event
 * @returns {number | null}
 */
export function roomForKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return null;
  const target = event.target;
  if (target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return null;
  if (!/^[0-9]$/.test(event.key)) return null;
  return event.key === "0" ? 9 : Number(event.key) - 1;
}

export class ConsoleController {
  /** @param {ControllerOptions} options */
  constructor({ t, lang, serverUrl, createSession }) {
    this.t = t;
    this.serverUrl = serverUrl;
    this.createSession = createSession;
    this.page = new PageView(t, lang);
    this.lang = lang;
    /** what the rooms' capture parts may do to the page: announce, translate */
    this.captureUi = {
      t, say: (/** @type {string} */ text) => this.page.announce(text), fire: () => {},
      role: (/** @type {string} [role] */ role) => (role ? t(`role_${role}`) : ""),
    };
    /** one full-resolution capture viewer for the page (a modal dialog over it) */
    this.viewer = new CaptureViewer({ ui: this.captureUi, language: () => lang });
    document.body.append(this.viewer.element);
    this.alerts = new LobbyAlerts({ t, onGo: (room) => this.focus(room.index, "banner") });
    /** @type {Room[]} */
    this.rooms = [];
    /** @type {TileView[]} */
    this.tiles = [];
    this.focused = 0; // index of the focused room
    /** @type {SwitchRecord[]} */
    this.switches = [];
    /** @type {ErrorEntry[]} */
    this.errors = [];
    /** @type {LocalTracks} the same object every room reads */
    this.local = { audio: null, video: null };
    this.ready = false; // every room has joined (or failed) and applied its focus / hold state
    this.listening = new AbortController();
    document.addEventListener("keydown", (event) => {
      if (this.viewer.open) return; // the viewer is modal: its keys are its own
      const index = roomForKey(event);
      if (index !== null && index < this.rooms.length) {
        event.preventDefault();
        this.focus(index, "key");
      }
    }, { signal: this.listening.signal });
  }

  /**
   * Create the rooms and their tiles, one per token (not joined yet: start()).
   * @param {string[]} tokens
   * @param {number} focus  the room focused at start, 0-based; out of range: the first
   * @param {string[]} [e2eeKeys]  each room's consult key ("" or missing: none), in token order
   */
  open(tokens, focus, e2eeKeys = []) {
    const { t } = this;
    this.page.setRoomCount(tokens.length);
    this.focused = focus >= 0 && focus < tokens.length ? focus : 0;
    this.rooms = tokens.map((token, index) => new Room({
      index, token, label: t("roomN", { n: index + 1 }), held: index !== this.focused,
      serverUrl: this.serverUrl, local: this.local, createSession: this.createSession,
      e2eeKey: e2eeKeys[index] || null,
    }));
    this.tiles = this.rooms.map((room) => {
      const tile = new TileView(room, {
        t, container: this.page.rooms, onFocus: (index) => this.focus(index, "click"),
        viewer: this.viewer, captureUi: this.captureUi, lang: this.lang,
      });
      room.on("change", () => {
        if (!room.held) this.page.selfCaption(room.label);
        this.alerts.focusChanged();
      });
      room.on("lobby", (fresh) => this.alerts.update(room, fresh));
      room.on("error", (entry) => this.record(entry));
      return tile;
    });
    for (const tile of this.tiles) tile.render();
    this.page.selfCaption(this.rooms[this.focused].label);
  }

  /** Open the camera and microphone, then join every room at once. */
  async start() {
    try {
      const { stream, audio, video } = await openLocalMedia();
      Object.assign(this.local, { audio, video });
      this.page.showSelf(stream);
    } catch (err) {
      this.page.notice(this.t("noMedia"));
      this.errors.push({ room: null, code: "no_media", message: String(err?.message ?? err) });
    }
    // every room at once: their own WebSocket and connections, all up front
    await Promise.all(this.rooms.map((room) => room.start()));
    this.markReady();
  }

  markReady() {
    this.ready = true;
    this.page.markReady();
  }

  /**
   * Focus room `index`; the focused one goes on hold. Only these two rooms
   * change: replaceTrack, `on_hold`, `mute`, `pause_video`; no new connection.
   * @param {number} index
   * @param {string} [how]  what asked for it (recorded in `switches`)
   * @returns {Promise<SwitchRecord | null>} null if there is no such room or it is focused already
   */
  async focus(index, how = "click") {
    const next = this.rooms[index];
    if (!next || index === this.focused) return null;
    const started = performance.now();
    const previous = this.rooms[this.focused];
    this.focused = index;
    const [a, b] = await Promise.all([previous.setHeld(true), next.setHeld(false)]);
    const done = performance.now();
    /** @type {SwitchRecord} */
    const result = {
      from: previous.index, to: index, how,
      mediaMs: Math.round((Math.max(a, b) - started) * 10) / 10,
      totalMs: Math.round((done - started) * 10) / 10,
    };
    this.switches.push(result);
    this.page.announce(this.t("switched", { room: next.label, ms: Math.round(result.totalMs) }));
    return result;
  }

  /**
   * A page-level failure (room null) or a room's, for `errors` and the browser console.
   * @param {Room | null} room
   * @param {unknown} err
   */
  report(room, err) {
    if (room) room.report(err); // through the room's `error` event, to record()
    else this.record(errorEntry(null, err));
  }

  /** @param {ErrorEntry} entry */
  record(entry) {
    this.errors.push(entry);
    console.warn("digiclinic console", entry);
  }

  /** Stop listening to the keyboard, close every tile and room, and the lobby alerts. */
  close() {
    this.listening.abort();
    for (const tile of this.tiles) tile.close();
    for (const room of this.rooms) room.close();
    this.alerts.close();
  }
}
