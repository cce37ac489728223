// Clinical captures (docs/capture.md): the capture consent question
// (CaptureConsent). When the server asks us (`capture-consent-request`
// naming us in `awaiting`), a small non-modal dialog asks whether captures
// may be saved to the record; the answer goes with session.captures.consent().
// It also keeps the room's consent state (`capture-consent-state`), which the
// galleries show ("Saved to the record", or why not). The widget has one
// (captures.js), the console one per room's tile (console/tile.js).
//
// Interface: new CaptureConsent({ui, session, changed}); .dialog (to put on
// the page), .state, .mine (we consented), .given; listen(session, signal);
// reset(); answer(given) (also the widget's "Withdraw consent"). DOM with
// h(); strings from the catalogue.

import { h, replace } from "./dom.js";
import { capturesOf, uniqueId } from "./capture-util.js";

/** @typedef {import("./capture-util.js").CaptureUi} CaptureUi */

/**
 * The capture consent question (`capture-consent-request` naming us in
 * `awaiting`), answered with session.captures.consent(), and the room's
 * consent state (`capture-consent-state`).
 */
export class CaptureConsent {
  /**
   * @param {object} parts
   * @param {CaptureUi} parts.ui
   * @param {() => any} parts.session
   * @param {() => void} [parts.changed]  the consent state changed
   */
  constructor({ ui, session, changed = () => {} }) {
    this.ui = ui;
    this._session = session;
    this.changed = changed;
    /** @type {"awaiting_consent"|"recording"|"paused"|"off"} */
    this.state = "off";
    this.mine = false; // we consented
    this._questionId = uniqueId("dc-capture-consent-question");
    this.dialog = h("div", {
      class: "dc-capture-consent", role: "dialog", hidden: true,
      aria: { modal: "false", labelledby: this._questionId },
    });
  }

  /** Consent given for the room: captures are saved. */
  get given() { return this.state === "recording"; }

  reset() {
    this.state = "off";
    this.mine = false;
    this.dialog.hidden = true;
  }

  /** @param {EventTarget} session @param {AbortSignal} [signal] */
  listen(session, signal) {
    const on = (/** @type {string} */ type, /** @type {(detail: any) => void} */ fn) => session.addEventListener(type, (e) => {
      if (session === this._session()) fn(/** @type {CustomEvent} */ (e).detail ?? {});
    }, { signal });
    on("capture-consent-request", (d) => this.asked(d));
    on("capture-consent-state", (d) => this.update(d));
  }

  get me() { return this._session()?.participantId ?? null; }

  /** @param {{policy?: string, awaiting?: string[]}} d */
  asked(d) {
    if (Array.isArray(d.awaiting) && d.awaiting.includes(this.me)) this.showQuestion();
  }

  /** @param {{state?: string, consented?: string[], awaiting?: string[]}} d */
  update(d) {
    if (["awaiting_consent", "recording", "paused", "off"].includes(d.state)) {
      this.state = /** @type {any} */ (d.state);
    }
    if (Array.isArray(d.consented)) this.mine = d.consented.includes(this.me);
    // answered (here or elsewhere), or no longer asked: the question goes
    if (Array.isArray(d.awaiting) && !d.awaiting.includes(this.me)) this.dialog.hidden = true;
    this.changed();
  }

  showQuestion() {
    const t = this.ui.t;
    const agree = h("button", {
      type: "button", class: "dc-button dc-primary", dataset: { action: "capture-consent-yes" },
      onclick: () => this.answer(true),
    }, t("captureConsentYes"));
    replace(this.dialog,
      h("p", { id: this._questionId, class: "dc-capture-consent-question" }, t("captureConsentAsk")),
      h("div", { class: "dc-capture-actions" }, agree,
        h("button", {
          type: "button", class: "dc-button", dataset: { action: "capture-consent-no" }, onclick: () => this.answer(false),
        }, t("captureConsentNo"))));
    this.dialog.hidden = false;
    agree.focus();
  }

  /** @param {boolean} given */
  async answer(given) {
    const t = this.ui.t;
    this.dialog.hidden = true;
    try {
      await capturesOf(this._session())?.consent(given);
      this.mine = given;
      this.ui.say(t(given ? "captureConsentAgreed" : "captureConsentDeclined"));
      this.ui.fire("capture-consent", { given });
    } catch (err) {
      this.ui.say(String(err?.message || err));
    }
    this.changed();
  }
}
