// What every part of the <digiclinic-consult> widget may do to the page, and
// nothing more: translate, say something (a status line that screen readers
// read), show or clear the alert banner, fire a `digiclinic-<name>` event on
// the element, report an error. The element creates one and hands it to its
// parts; the status line's timers are owned here and cleared by stop().

import { h } from "./dom.js";

/** @typedef {import("../i18n/catalogue.js").Translate} Translate */

const STATUS_SHOWN_MS = 6000;
const STATUS_FADE_MS = 400;

export class WidgetUi {
  /**
   * @param {HTMLElement} host the element: events are dispatched on it
   * @param {Translate} t
   */
  constructor(host, t) {
    this.host = host;
    /** @type {Translate} replaced when the language changes */
    this.t = t;
    /** a status message: shown, and read by screen readers (aria-live) */
    this.status = h("div", { class: "dc-status", role: "status", aria: { live: "polite", atomic: "true" } });
    this.alert = h("div", { class: "dc-banner", role: "alert", hidden: true });
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this._statusTimer = undefined;
  }

  /** @param {string} text */
  say(text) {
    this.status.textContent = text;
    this.status.classList.add("dc-status-on");
    clearTimeout(this._statusTimer);
    this._statusTimer = setTimeout(() => {
      this.status.classList.remove("dc-status-on");
      this._statusTimer = setTimeout(() => { this.status.textContent = ""; }, STATUS_FADE_MS);
    }, STATUS_SHOWN_MS);
  }

  /** The alert banner ("Reconnecting…"); null hides it. @param {string|null} text */
  banner(text) {
    this.alert.hidden = !text;
    this.alert.textContent = text ?? "";
  }

  /** A `digiclinic-<name>` event on the element. @param {string} name @param {object} [detail] */
  fire(name, detail = {}) {
    this.host.dispatchEvent(new CustomEvent(`digiclinic-${name}`, { detail, bubbles: true, composed: true }));
  }

  /** An error event (the call goes on). @param {{code?: string, name?: string, message?: string}} err */
  error(err) {
    this.fire("error", { code: err.code ?? err.name ?? "error", message: err.message ?? String(err) });
  }

  /** A role's name in the UI language. @param {string} [role] */
  role(role) {
    return role ? this.t(`role_${role}`) : "";
  }

  stop() {
    clearTimeout(this._statusTimer);
    this.status.classList.remove("dc-status-on");
  }
}
