// Clinical captures (docs/capture.md): the "Ask for a photo" form
// (CaptureRequestForm), for those with the `capture` grant: a photo or a
// clip, and an optional note ("the wound on the left leg, close up"); Ask
// sends `capture_request` (session.captures.request()). The widget has one in
// its captures strip (captures.js), the console one per room's tile
// (console/tile.js).
//
// Interface: new CaptureRequestForm({ui, session, asked, changed});
// .element (to put on the page), .open; toggle(opener), show(opener),
// close(restoreFocus); ask(kind, note) asks at once (the video failure
// offer's one-click button). DOM with h(); strings from the catalogue.

import { h, replace } from "./dom.js";
import { DEFAULT_CLIP_SECONDS, NOTE_MAX, capturesOf, uniqueId } from "./capture-util.js";

/** @typedef {import("./capture-util.js").CaptureUi} CaptureUi */

/**
 * Asking the patient's side for a capture: a photo or a clip, and an optional
 * note ("the wound on the left leg, close up"). A small form that opens
 * under (or above) the control that opened it; Ask sends `capture_request`.
 */
export class CaptureRequestForm {
  /**
   * @param {object} parts
   * @param {CaptureUi} parts.ui
   * @param {() => any} parts.session
   * @param {(requestId: string, kind: "photo"|"clip") => void} [parts.asked]  the server took the request
   * @param {() => void} [parts.changed]  opened or closed
   */
  constructor({ ui, session, asked = () => {}, changed = () => {} }) {
    this.ui = ui;
    this._session = session;
    this.asked = asked;
    this.changed = changed;
    this._id = uniqueId("dc-capture-ask");
    this.element = h("form", {
      class: "dc-capture-ask", hidden: true, aria: { labelledby: `${this._id}-title` },
      onsubmit: (/** @type {SubmitEvent} */ e) => { e.preventDefault(); this.submit(); },
      onkeydown: (/** @type {KeyboardEvent} */ e) => {
        if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); this.close(); }
      },
    });
    /** @type {HTMLElement|null} */
    this._opener = null;
    this._busy = false;
  }

  get open() { return !this.element.hidden; }

  /** @param {HTMLElement|null} [opener] */
  toggle(opener = null) {
    if (this.open) this.close();
    else this.show(opener);
  }

  /** @param {HTMLElement|null} [opener] */
  show(opener = null) {
    const t = this.ui.t;
    const seconds = capturesOf(this._session())?.maxClipSeconds ?? DEFAULT_CLIP_SECONDS;
    this._opener = opener;
    const choice = (/** @type {"photo"|"clip"} */ kind, /** @type {string} */ text) => h("label", { class: "dc-capture-choice" },
      h("input", { type: "radio", name: `${this._id}-kind`, value: kind, checked: kind === "photo" }), h("span", {}, text));
    const submit = h("button", {
      type: "submit", class: "dc-button dc-primary dc-small-button", dataset: { action: "capture-request-send" },
    }, t("captureAskSubmit"));
    replace(this.element,
      h("fieldset", { class: "dc-capture-kinds" },
        h("legend", { id: `${this._id}-title`, class: "dc-capture-ask-title" }, t("captureAskTitle")),
        choice("photo", t("captureKindPhoto")), choice("clip", t("captureKindClip", { seconds }))),
      h("div", { class: "dc-capture-note-field" },
        h("label", { class: "dc-capture-note-label", for: `${this._id}-note` }, t("captureNoteLabel")),
        h("input", {
          id: `${this._id}-note`, class: "dc-capture-note dc-chat-input", type: "text", maxlength: String(NOTE_MAX),
          autocomplete: "off", placeholder: t("captureAskNotePlaceholder"),
        })),
      h("div", { class: "dc-capture-actions" }, submit,
        h("button", {
          type: "button", class: "dc-button dc-small-button", dataset: { action: "capture-request-cancel" },
          onclick: () => this.close(),
        }, t("captureCancel"))));
    this.element.hidden = false;
    this._opener?.setAttribute("aria-expanded", "true");
    this.changed();
    submit.focus();
  }

  close(restoreFocus = true) {
    if (!this.open) return;
    this.element.hidden = true;
    this._opener?.setAttribute("aria-expanded", "false");
    this.changed();
    if (restoreFocus && this._opener?.isConnected) this._opener.focus();
  }

  async submit() {
    if (this._busy) return;
    const form = /** @type {HTMLFormElement} */ (this.element);
    const kind = /** @type {HTMLInputElement|null} */ (form.querySelector("input[type=radio]:checked"))?.value === "clip" ? "clip" : "photo";
    const note = /** @type {HTMLInputElement|null} */ (form.querySelector(".dc-capture-note"))?.value.trim().slice(0, NOTE_MAX) ?? "";
    await this.ask(kind, note);
  }

  /**
   * Ask now (the form, or an offer's one-click button).
   * @param {"photo"|"clip"} kind
   * @param {string} [note]
   */
  async ask(kind, note = "") {
    const t = this.ui.t;
    const captures = capturesOf(this._session());
    if (!captures) return;
    this._busy = true;
    try {
      const requestId = await captures.request(kind, note || undefined);
      this.close();
      this.ui.say(t(kind === "clip" ? "captureAskedClip" : "captureAskedPhoto"));
      this.ui.fire("capture-request", { requestId, kind, note });
      this.asked(typeof requestId === "string" ? requestId : String(requestId?.request_id ?? ""), kind);
    } catch (err) {
      this.ui.say(t("captureAskFailed", { reason: err?.code ?? err?.message ?? String(err) }));
      this.ui.fire("error", { code: err?.code ?? "error", message: err?.message ?? String(err) });
    } finally {
      this._busy = false;
    }
  }
}
