// The page around the tiles (class PageView): language and titles, the
// keys hint, the notices list, the polite announcements (focus switches),
// the self-view and its caption, and the body's data-rooms / data-ready.
// Everything it touches is in index.html; the tiles are tile.js's.

import { byId } from "./dom.js";

/** @typedef {import("../i18n/catalogue.js").Translate} Translate */

export class PageView {
  /**
   * Put the page's fixed texts in place.
   * @param {Translate} t
   * @param {string} lang  the UI language (html lang)
   */
  constructor(t, lang) {
    this.t = t;
    this.rooms = byId("rooms", HTMLElement);
    document.documentElement.lang = lang;
    document.title = `digiclinic · ${t("consoleTitle")}`;
    byId("title", HTMLElement).textContent = t("consoleTitle");
    byId("hint", HTMLElement).textContent = t("keysHint");
    this.rooms.setAttribute("aria-label", t("roomsLabel"));
  }

  /** @param {string} text  a page-level notice (no rooms, too many, no camera…) */
  notice(text) {
    const item = document.createElement("li");
    item.textContent = text;
    byId("notices", HTMLElement).append(item);
  }

  /** @param {string} text  read out politely by screen readers (#announce) */
  announce(text) {
    byId("announce", HTMLElement).textContent = text;
  }

  /**
   * Show our own camera (the figure stays hidden without one).
   * @param {MediaStream} stream
   */
  showSelf(stream) {
    byId("self-view", HTMLVideoElement).srcObject = stream;
    byId("self", HTMLElement).hidden = stream.getVideoTracks().length === 0;
  }

  /** @param {string} roomLabel  the focused room, which our camera goes to */
  selfCaption(roomLabel) {
    byId("self-caption", HTMLElement).textContent = this.t("selfCaption", { room: roomLabel });
  }

  /** @param {number} count  rooms on the page (body[data-rooms], for the layout) */
  setRoomCount(count) {
    document.body.dataset.rooms = String(count);
  }

  /** Every room has joined (or failed): body[data-ready]. */
  markReady() {
    document.body.dataset.ready = "true";
  }
}
