// End-to-end encryption in the widget (docs/e2ee.md): the header's badge, and
// the banner when this page cannot decrypt what the others send.
//
//   "End-to-end encrypted"      the room's mode is on, we encrypt, and so does
//                                everyone in the call
//   "Not end-to-end encrypted"  an optional room where someone (or we) has no key
//   the banner                   a remote stream does not decrypt for NOT_DECRYPTING_MS
//                                (a wrong key, or a key this page was never given):
//                                nothing is shown of it, never garbage
//
// Interface: attach(session) (before join), update() (the roster changed), reset().

import { h } from "./dom.js";

/** @typedef {import("./ui.js").WidgetUi} WidgetUi */

/** how long a stream may fail to decrypt (a rotation in flight) before the banner says so */
export const NOT_DECRYPTING_MS = 2500;

export class EncryptionStatus {
  /** @type {any} the ConsultSession */
  #session = null;
  /** @type {Map<string, {state: string, since: number}>} participantId/kind -> its stream's state */
  #streams = new Map();
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  #timer = undefined;
  #bannerShown = false;

  /** @param {WidgetUi} ui */
  constructor(ui) {
    this.ui = ui;
    this.badge = h("span", { class: "dc-e2ee", hidden: true, role: "status" });
  }

  /** @param {any} session */
  attach(session) {
    this.reset();
    this.#session = session;
    session.addEventListener("e2ee-receive", (/** @type {CustomEvent} */ { detail }) => this.#received(detail));
    for (const type of ["participant-joined", "participant-left", "admitted", "reconnected"]) {
      session.addEventListener(type, () => this.update());
    }
  }

  /** @param {{participantId: string, kind: string, state: string}} detail */
  #received({ participantId, kind, state }) {
    this.#streams.set(`${participantId}/${kind}`, { state, since: performance.now() });
    this.#check();
  }

  #check() {
    clearTimeout(this.#timer);
    const now = performance.now();
    const present = this.#session?.participants ?? new Map();
    let failing = false;
    let next = Infinity;
    for (const [at, { state, since }] of this.#streams) {
      if (state === "ok" || !present.has(at.split("/")[0])) continue;
      if (now - since >= NOT_DECRYPTING_MS) failing = true;
      else next = Math.min(next, since + NOT_DECRYPTING_MS - now);
    }
    if (next < Infinity) this.#timer = setTimeout(() => this.#check(), next + 10);
    if (failing !== this.#bannerShown) {
      this.#bannerShown = failing;
      this.ui.banner(failing ? this.ui.t("e2eeCannotDecrypt") : null);
      this.ui.fire("e2ee", { ...this.state(), decrypting: !failing });
    }
  }

  /** What the badge shows: {mode, encrypted, missing (names of those without the key)}. */
  state() {
    const session = this.#session;
    const mode = session?.e2ee?.mode ?? "off";
    const missing = [...(session?.participants?.values() ?? [])].filter((p) => !p.e2ee).map((p) => p.name);
    const encrypted = mode !== "off" && Boolean(session?.e2ee?.encrypting) && missing.length === 0;
    return { mode, encrypted, missing };
  }

  update() {
    const { mode, encrypted, missing } = this.state();
    this.badge.hidden = mode === "off";
    if (mode === "off") return;
    this.badge.dataset.state = encrypted ? "on" : "partial";
    this.badge.textContent = encrypted ? this.ui.t("e2eeOn") : this.ui.t("e2eeOff");
    this.badge.title = encrypted
      ? this.ui.t("e2eeOnDetail")
      : this.ui.t("e2eeMissing", { names: missing.join(", ") || this.ui.t("you") });
    this.#check();
  }

  reset() {
    clearTimeout(this.#timer);
    this.#streams.clear();
    if (this.#bannerShown) this.ui.banner(null);
    this.#bannerShown = false;
    this.badge.hidden = true;
  }
}
