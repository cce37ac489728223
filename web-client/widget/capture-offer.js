// Clinical captures (docs/capture.md): when video fails, the widget offers a
// capture by itself (CaptureOffer): "Send a photo instead?" on the patient's
// side, "Ask for a photo" on the specialist's, in the captures strip above
// the control bar (captures.js puts it there and does what its button asks).
//
// Once per episode: the trouble seen at three checks in a row, 2 s apart, and
// not in the first seconds after someone joins; the episode ends after the
// video has been fine for 10 s, and a new failure offers again. No offer
// while a capture is being taken, asked for or on its way, nor for a minute
// after one came or went. The trouble: on the patient's side, the server
// thins our audio (`publisher-audio`: our own uplink is weak, and then our
// camera is stopped too, `publisher-layers`; or a viewer's link is too thin
// for our video, which it paused) or our camera hardly gets out over a poor
// link; on the specialist's side, the patient side's video is paused for
// bandwidth, its publisher's uplink is weak (`publisher-link`) or its tile
// has been frozen for seconds (frames decoded, as quality.js counts them).
//
// Interface: new CaptureOffer({ui, call, session, inCall, side, busy, accept,
// returnFocus, changed}); .element (the offer, for the strip), .shown,
// .episode; listen(session, signal) follows the session's events; start()
// (in the call: the check every 2 s) and stop(); check() (one check);
// videoTrouble(); captured() (a capture came or went: quiet for a while);
// show(offer, announce), hide(); relabel() after a language change; reset().
// DOM with h(); strings from the catalogue.

import { qualityLevel } from "./quality.js";
import { captureIcon } from "./capture-util.js";
import { h, replace } from "./dom.js";

/** @typedef {import("./call-state.js").CallState} CallState */
/** @typedef {import("./capture-util.js").CaptureUi} CaptureUi */

const CHECK_EVERY_MS = 2000;
/** a tile whose frame count has not moved this long is frozen */
const FROZEN_MS = 6000;
/** video fine this long: the episode is over (a new failure offers again) */
const EPISODE_END_MS = 10000;
/** after a capture came or went, no offer for this long */
const QUIET_AFTER_CAPTURE_MS = 60000;
/** trouble seen at this many checks in a row: an episode (a blip is not) */
const TROUBLE_CHECKS = 3;
/** no offer this soon after joining or a reconnection (layers and estimates settle) */
const SETTLE_MS = 15000;

export class CaptureOffer {
  /**
   * @param {object} parts
   * @param {CaptureUi} parts.ui
   * @param {() => CallState} parts.call
   * @param {() => any} parts.session  the current session (events of an older one are ignored)
   * @param {() => boolean} parts.inCall
   * @param {() => "send"|"ask"|null} parts.side  the offer this side makes: "send" (the patient's
   *   side, may send), "ask" (may ask for captures), or none
   * @param {() => boolean} parts.busy  a capture is being taken, asked for or on its way: no offer
   * @param {(offer: "send"|"ask") => void} parts.accept  the offer's button was pressed (the offer is hidden)
   * @param {() => HTMLElement|null} parts.returnFocus  focused when the offer goes while it has the focus
   * @param {() => void} [parts.changed]  shown or hidden
   */
  constructor({ ui, call, session, inCall, side, busy, accept, returnFocus, changed = () => {} }) {
    this.ui = ui;
    this._call = call;
    this._session = session;
    this._inCall = inCall;
    this._side = side;
    this._busy = busy;
    this._accept = accept;
    this._returnFocus = returnFocus;
    this.changed = changed;
    this.element = h("section", { class: "dc-capture-offer", hidden: true, aria: { labelledby: "dc-capture-offer-text" } });
    /** @type {ReturnType<typeof setInterval>|undefined} */
    this._timer = undefined;
    /** @type {{reason: string, at: number}|null} */
    this.episode = null;
    /** @type {number|null} */
    this._healthySince = null;
    /** @type {Map<string, {total: number, since: number}>} frames decoded per participant, when they last moved */
    this._frames = new Map();
    this._troubleChecks = 0;
    this._settleUntil = 0;
    this._thinAudio = false; // the server thins our audio for a weak link (publisher-audio)
    this._cameraStopped = false; // the server turned every layer of our camera off (publisher-layers)
    this._lastCapture = -Infinity; // a capture came or went: no offer for a while
  }

  get shown() { return !this.element.hidden; }

  /** A new call: no offer, no episode, nothing known of the links. */
  reset() {
    this.hide();
    this.episode = null;
    this._frames.clear();
    this._troubleChecks = 0;
    this._thinAudio = false;
    this._cameraStopped = false;
  }

  /**
   * Follow a session's events about our links and the captures.
   * @param {any} session
   * @param {AbortSignal} [signal]  stops listening
   */
  listen(session, signal) {
    const on = (/** @type {string} */ type, /** @type {(detail: any) => void} */ fn) => session.addEventListener(type, (e) => {
      if (session === this._session()) fn(/** @type {CustomEvent} */ (e).detail ?? {});
    }, { signal });
    on("publisher-audio", (d) => {
      const mine = [...(session.published?.values() ?? [])].some((p) => p.trackId === d.track_id);
      if (mine || !d.track_id) this._thinAudio = d.max_bitrate_bps != null;
    });
    on("publisher-layers", (d) => { // every layer of our camera off: no one gets our video
      if (d.track_id && d.track_id === this._call().cam?.trackId && Array.isArray(d.layers)) {
        this._cameraStopped = d.layers.length > 0 && d.layers.every((layer) => !layer.active);
      }
    });
    on("reconnecting", () => this._frames.clear());
    // a new subscription's estimates and layers settle first (its video may pause for a moment)
    for (const type of ["reconnected", "participant-joined"]) on(type, () => this._settle());
    for (const type of ["capture-started", "capture-ready"]) on(type, () => this.captured());
  }

  /** No offer for SETTLE_MS from now. */
  _settle() {
    this._settleUntil = performance.now() + SETTLE_MS;
    this._troubleChecks = 0;
  }

  /** In the call: the check every 2 s (after SETTLE_MS). */
  start() {
    clearInterval(this._timer);
    this._settle();
    this._timer = setInterval(() => this.check(), CHECK_EVERY_MS);
  }

  stop() {
    clearInterval(this._timer);
    this._timer = undefined;
  }

  /** A capture came or went: no offer for QUIET_AFTER_CAPTURE_MS. */
  captured() {
    this._lastCapture = performance.now();
  }

  /** Is the patient's video failing, as far as this side can tell? The reason, or null. */
  videoTrouble() {
    const call = this._call();
    const session = this._session();
    if (!session || call.audioOnly || call.people.size === 0) return null;
    const side = this._side();
    if (side === "send") {
      if (call.cameraOff || !call.cam?.track) return null; // no video of ours to fail
      // our uplink is too weak for video: the server stopped our camera and thins our audio
      if (this._thinAudio && this._cameraStopped) return "uplink-weak";
      // our camera hardly gets out over a poor link (as we measure it)
      const fps = call.self.metrics?.fps;
      if (fps != null && fps < 2 && qualityLevel(call.self.metrics ?? {}) === "poor") return "uplink";
      // a viewer's link too thin for our video (paused for it): the server thins our audio
      if (this._thinAudio) return "viewer-link";
      return null;
    }
    if (side !== "ask") return null;
    const now = performance.now();
    /** @type {string|null} */
    let reason = null;
    for (const [id, person] of call.people) {
      // frozen: the frames decoded (quality.js keeps the counters) have not moved for FROZEN_MS
      const total = [...person.loss.values()].reduce((n, v) => n + (v.frames ?? 0), 0);
      const seen = this._frames.get(id);
      const frozen = Boolean(seen && seen.total === total && now - seen.since >= FROZEN_MS);
      if (!seen || seen.total !== total) this._frames.set(id, { total, since: now });
      // the patient's side only, and only a camera that should be moving
      const info = session.participants.get(id) ?? person.info;
      if (reason || info.role === "specialist" || !person.camera || info.audio_only || info.on_hold) continue;
      if (info.producers?.find((p) => p.source === "camera")?.muted) continue;
      const trackId = person.camera.trackId;
      if (call.pausedByUs.has(trackId)) continue;
      if (call.pausedByServer.get(trackId) === "bandwidth") reason = "paused";
      else if (call.weakUplinks.has(id)) reason = "weak-uplink";
      else if (frozen) reason = "frozen";
    }
    for (const id of this._frames.keys()) if (!call.people.has(id)) this._frames.delete(id);
    return reason;
  }

  /** Every 2 s: an episode (and its offer) starts after TROUBLE_CHECKS checks with trouble in a row. */
  check() {
    if (!this._inCall() || this._session()?.state !== "active") return;
    const offer = this._side();
    if (!offer) return;
    const reason = this.videoTrouble();
    const now = performance.now();
    this._troubleChecks = reason ? this._troubleChecks + 1 : 0;
    if (reason) {
      this._healthySince = null;
      if (!this.episode && this._troubleChecks >= TROUBLE_CHECKS && now >= this._settleUntil) {
        this.episode = { reason, at: now };
        // no need while a capture is being taken, asked for, on its way (a thin uplink pauses
        // the camera while it is sent) or just came: photos already go through
        const busy = this._busy() || now - this._lastCapture < QUIET_AFTER_CAPTURE_MS;
        if (!busy) this.show(offer, true);
      }
    } else if (this.episode) {
      this._healthySince ??= now;
      if (now - this._healthySince >= EPISODE_END_MS) {
        this.episode = null;
        this._healthySince = null;
        this.hide();
      }
    }
  }

  /** The language changed: the offer shown is drawn again in it. */
  relabel() {
    if (this.shown && this.episode) this.show(this.element.dataset.offer === "ask" ? "ask" : "send", false);
  }

  /** @param {"send"|"ask"} offer @param {boolean} announce */
  show(offer, announce) {
    const t = this.ui.t;
    const text = t(offer === "send" ? "captureOfferSend" : "captureOfferAsk");
    const accept = h("button", {
      type: "button", class: "dc-button dc-primary dc-small-button", dataset: { action: "capture-offer-accept" },
      onclick: (/** @type {MouseEvent} */ e) => {
        this.hide();
        this._accept(offer);
        e.stopPropagation();
      },
    }, t(offer === "send" ? "captureSend" : "captureAsk"));
    replace(this.element,
      captureIcon(offer === "send" ? "photo" : "ask", "dc-icon dc-capture-offer-icon"),
      h("p", { id: "dc-capture-offer-text", class: "dc-capture-offer-text" }, text),
      h("div", { class: "dc-capture-actions" }, accept,
        h("button", {
          type: "button", class: "dc-button dc-small-button", dataset: { action: "capture-offer-dismiss" },
          onclick: () => this.hide(),
        }, t("captureOfferDismiss"))));
    this.element.dataset.offer = offer;
    this.element.dataset.reason = this.episode?.reason ?? "";
    this.element.hidden = false;
    this.changed();
    if (announce) {
      this.ui.say(text);
      this.ui.fire("capture-offer", { offer, reason: this.episode?.reason ?? null });
    }
  }

  hide() {
    if (this.element.hidden) return;
    const root = /** @type {ShadowRoot|Document} */ (this.element.getRootNode());
    const hadFocus = this.element.contains(root.activeElement);
    this.element.hidden = true;
    replace(this.element);
    this.changed();
    if (hadFocus) this._returnFocus()?.focus();
  }
}
