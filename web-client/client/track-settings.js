// The `track_settings` of a ConsultSession (../digiclinic-client.js): the size
// at which we show each remote video, and whether it is pinned, told to the
// server (only changes), measured by a RenderSizeReporter (render-size.js)
// for the <video> elements the page asks us to watch.
//
// Owns: what was last sent per remote track, whether the server lacks
// `track_settings` (an older one: then we stop asking), and the
// RenderSizeReporter (created on first use, with its observers and timers).
// Interface: set(trackId, size), watch(trackId, element, options),
// refreshAll(), forget(trackId) (the track is gone), reset() (a new
// connection: its consumers start afresh), close() (the end). It gets the
// function that sends one `track_settings` request from its constructor.

import { RenderSizeReporter } from "./render-size.js";

/** @typedef {import("./protocol.js").ServerMessage} ServerMessage */
/** @typedef {import("./render-size.js").Watcher} Watcher */

/**
 * @typedef {object} TrackSize  in device pixels; 0x0: not visible
 * @property {number} [width]
 * @property {number} [height]
 * @property {boolean} [pinned]  the user pinned the video
 */

/**
 * @callback SendSettings  send one `track_settings` request
 * @param {{track_id: string, width: number, height: number, pinned: boolean}} fields
 * @returns {Promise<ServerMessage>}
 */

export class TrackSettings {
  /** @type {Map<string, string>} remote trackId -> the settings last sent ("WxH[/pinned]") */
  #sent = new Map();
  #unsupported = false;
  /** @type {RenderSizeReporter|null} */
  #reporter = null;
  #send;

  /** @param {SendSettings} send */
  constructor(send) {
    this.#send = send;
  }

  /**
   * Tell the server the size at which we show a remote video; only changes
   * are sent. Resolves to true once acknowledged, false if the server does
   * not know `track_settings`.
   * @param {string} trackId
   * @param {TrackSize} [size]
   * @returns {Promise<boolean>}
   */
  async set(trackId, { width = 0, height = 0, pinned = false } = {}) {
    const fields = {
      track_id: trackId, width: Math.max(0, Math.round(width) || 0),
      height: Math.max(0, Math.round(height) || 0), pinned: Boolean(pinned),
    };
    const key = `${fields.width}x${fields.height}${fields.pinned ? "/pinned" : ""}`;
    if (this.#unsupported) return false;
    if (this.#sent.get(trackId) === key) return true;
    this.#sent.set(trackId, key);
    try {
      await this.#send(fields);
      return true;
    } catch (err) {
      if (err.code === "unknown_type") { // an older server: stop asking
        this.#unsupported = true;
        return false;
      }
      if (this.#sent.get(trackId) === key) this.#sent.delete(trackId);
      throw err;
    }
  }

  /**
   * Report the render size of `element` (the <video> of `trackId`) whenever
   * it changes (render-size.js).
   * @param {string} trackId
   * @param {HTMLVideoElement} element
   * @param {{pinned?: boolean, hidden?: boolean}} [options]
   * @returns {Watcher}
   */
  watch(trackId, element, options = {}) {
    this.#reporter ??= new RenderSizeReporter((id, size) => this.set(id, size));
    return this.#reporter.watch(trackId, element, options);
  }

  /** Measure every watched video again. */
  refreshAll() { this.#reporter?.refreshAll(); }

  /**
   * A remote track is gone: stop watching its video and forget what was sent.
   * @param {string} trackId
   */
  forget(trackId) {
    this.#reporter?.unwatch(trackId);
    this.#sent.delete(trackId);
  }

  /** A new connection (a new participant id): its consumers know nothing yet. */
  reset() {
    this.#sent = new Map();
  }

  /** The session ends: stop watching (a later watch() starts a new reporter). */
  close() {
    this.#reporter?.close();
    this.#reporter = null;
  }
}
