// The lobby: our own waiting screen, and the waiting list with which
// participants holding the `admit` grant admit or deny others (someone who
// just lost the connection is re-admitted at once).

import { h, icon, replace } from "./dom.js";

/** @typedef {import("../digiclinic-client.js").ConsultSession} ConsultSession */
/** @typedef {import("./call-state.js").CallState} CallState */
/** @typedef {import("./ui.js").WidgetUi} WidgetUi */

const READMIT_WINDOW_MS = 120000; // a dropped participant back in the lobby this soon is re-admitted

/**
 * Our waiting screen, into `body`.
 * @param {HTMLElement} body
 * @param {{ui: WidgetUi, stream: MediaStream|null, leave: () => void}} parts
 */
export function renderLobbyScreen(body, { ui, stream, leave }) {
  const t = ui.t;
  const video = stream?.getVideoTracks()[0];
  const preview = video ? h("video", {
    class: "dc-lobby-video dc-mirror", autoplay: true, playsInline: true, muted: true,
    aria: { label: t("previewLabel") },
  }) : null;
  if (preview) preview.srcObject = new MediaStream([video]);
  replace(body, h("section", { class: "dc-lobby dc-center", aria: { labelledby: "dc-lobby-title" } },
    h("div", { class: "dc-spinner", aria: { hidden: "true" } }),
    h("h3", { id: "dc-lobby-title", class: "dc-screen-title" }, t("lobbyTitle")),
    h("p", { class: "dc-lobby-text" }, t("lobbyText")),
    preview,
    h("button", {
      type: "button", class: "dc-button dc-danger", dataset: { action: "leave" },
      aria: { label: t("leaveLabel") }, onclick: leave,
    }, icon("leave"), h("span", {}, t("leave")))));
}

/** The side panel's waiting room, for admitters. */
export class WaitingList {
  /**
   * @param {object} parts
   * @param {WidgetUi} parts.ui
   * @param {() => CallState} parts.call
   * @param {() => ConsultSession|null} parts.session
   * @param {() => void} parts.changed the side panel may open or close
   */
  constructor({ ui, call, session, changed }) {
    this.ui = ui;
    this._call = call;
    this._session = session;
    this.changed = changed;
    /** @type {HTMLElement|null} */
    this.section = null;
  }

  build() {
    this.section = h("section", { class: "dc-waiting", aria: { labelledby: "dc-waiting-title" }, hidden: true });
    return this.section;
  }

  /** The server's `lobby` list changed. @param {{id: string, name: string, role: string}[]} waiting */
  update(waiting) {
    const call = this._call();
    const session = this._session();
    const before = new Set(call.waiting.map((w) => w.id));
    call.waiting = waiting;
    const now = Date.now();
    for (const [key, at] of call.recentlyDropped) if (now - at > READMIT_WINDOW_MS) call.recentlyDropped.delete(key);
    for (const w of waiting) {
      if (before.has(w.id)) continue;
      // someone who just lost the connection is back in the lobby: let them in again
      if (call.recentlyDropped.has(`${w.name}|${w.role}`) && session?.state === "active") {
        session.admit(w.id).catch((err) => this.ui.error(err));
        continue;
      }
      this.ui.say(this.ui.t("statusWaiting", { name: w.name }));
    }
    this.render();
  }

  render() {
    const section = this.section;
    if (!section) return;
    const t = this.ui.t;
    const call = this._call();
    const session = this._session();
    const canAdmit = Boolean(session?.joined?.participant.grants?.admit);
    section.hidden = !canAdmit || call.waiting.length === 0;
    const list = h("ul", { class: "dc-waiting-list" });
    for (const w of call.waiting) {
      list.append(h("li", { class: "dc-waiting-item", dataset: { participant: w.id } },
        h("span", { class: "dc-waiting-name" }, w.name, h("span", { class: "dc-role" }, this.ui.role(w.role))),
        h("span", { class: "dc-waiting-actions" },
          h("button", {
            type: "button", class: "dc-button dc-primary dc-small-button", dataset: { action: "admit" },
            aria: { label: t("admitLabel", { name: w.name }) },
            onclick: (e) => { e.currentTarget.disabled = true; session.admit(w.id).catch((err) => this.ui.error(err)); },
          }, t("admit")),
          h("button", {
            type: "button", class: "dc-button dc-small-button", dataset: { action: "deny" },
            aria: { label: t("denyLabel", { name: w.name }) },
            onclick: (e) => { e.currentTarget.disabled = true; session.deny(w.id).catch((err) => this.ui.error(err)); },
          }, t("deny")))));
    }
    replace(section,
      h("h3", { id: "dc-waiting-title", class: "dc-side-title" }, t("waitingTitle"),
        h("span", { class: "dc-count" }, String(call.waiting.length))),
      call.waiting.length ? list : h("p", { class: "dc-muted" }, t("waitingEmpty")));
    this.changed();
  }
}
