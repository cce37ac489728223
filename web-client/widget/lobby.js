// The <digiclinic-consult> widget's lobby: our own waiting screen, and the
// waiting list that participants with the `admit` grant use to admit or deny
// others (re-admitting at once someone who just lost the connection). A mixin
// of the element (digiclinic-consult.js).

import { h, icon, replace } from "./dom.js";

const READMIT_WINDOW_MS = 120000; // a dropped participant back in the lobby this soon is re-admitted

export const Lobby = (Base) => class Lobby extends Base {
  _renderLobby() {
    const video = this.localStream?.getVideoTracks()[0];
    const preview = video ? h("video", {
      class: "dc-lobby-video dc-mirror", autoplay: true, playsInline: true, muted: true,
      aria: { label: this.t("previewLabel") },
    }) : null;
    if (preview) preview.srcObject = new MediaStream([video]);
    replace(this._body, h("section", { class: "dc-lobby dc-center", aria: { labelledby: "dc-lobby-title" } },
      h("div", { class: "dc-spinner", aria: { hidden: "true" } }),
      h("h3", { id: "dc-lobby-title", class: "dc-screen-title" }, this.t("lobbyTitle")),
      h("p", { class: "dc-lobby-text" }, this.t("lobbyText")),
      preview,
      h("button", {
        type: "button", class: "dc-button dc-danger", dataset: { action: "leave" },
        aria: { label: this.t("leaveLabel") }, onclick: () => this.leave(),
      }, icon("leave"), h("span", {}, this.t("leave")))));
  }

  _lobbyChanged(waiting) {
    const before = new Set(this.waiting.map((w) => w.id));
    this.waiting = waiting;
    const now = Date.now();
    for (const [key, at] of this.recentlyDropped) if (now - at > READMIT_WINDOW_MS) this.recentlyDropped.delete(key);
    for (const w of waiting) {
      if (before.has(w.id)) continue;
      // someone who just lost the connection is back in the lobby: let them in again
      if (this.recentlyDropped.has(`${w.name}|${w.role}`) && this.session.state === "active") {
        this.session.admit(w.id).catch((err) => this._error(err));
        continue;
      }
      this._say(this.t("statusWaiting", { name: w.name }));
    }
    this._renderWaiting();
  }

  _renderWaiting() {
    const section = this._waitingSection;
    if (!section) return;
    const canAdmit = Boolean(this.session?.joined?.participant.grants?.admit);
    section.hidden = !canAdmit || this.waiting.length === 0;
    const list = h("ul", { class: "dc-waiting-list" });
    for (const w of this.waiting) {
      list.append(h("li", { class: "dc-waiting-item", dataset: { participant: w.id } },
        h("span", { class: "dc-waiting-name" }, w.name, h("span", { class: "dc-role" }, this._role(w.role))),
        h("span", { class: "dc-waiting-actions" },
          h("button", {
            type: "button", class: "dc-button dc-primary dc-small-button", dataset: { action: "admit" },
            aria: { label: this.t("admitLabel", { name: w.name }) },
            onclick: (e) => { e.currentTarget.disabled = true; this.session.admit(w.id).catch((err) => this._error(err)); },
          }, this.t("admit")),
          h("button", {
            type: "button", class: "dc-button dc-small-button", dataset: { action: "deny" },
            aria: { label: this.t("denyLabel", { name: w.name }) },
            onclick: (e) => { e.currentTarget.disabled = true; this.session.deny(w.id).catch((err) => this._error(err)); },
          }, this.t("deny")))));
    }
    replace(section,
      h("h3", { id: "dc-waiting-title", class: "dc-side-title" }, this.t("waitingTitle"),
        h("span", { class: "dc-count" }, String(this.waiting.length))),
      this.waiting.length ? list : h("p", { class: "dc-muted" }, this.t("waitingEmpty")));
    this._updateSide();
  }
};
