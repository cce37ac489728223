// The call's chat: the side panel's chat section, sending, showing received
// messages (as text, never HTML; times in the UI language) and counting
// unread ones while the panel is closed.

import { formatTime } from "../i18n/catalogue.js";
import { h } from "./dom.js";

/** @typedef {import("../digiclinic-client.js").ConsultSession} ConsultSession */
/** @typedef {import("./call-state.js").CallState} CallState */
/** @typedef {import("./ui.js").WidgetUi} WidgetUi */

export class ChatPanel {
  /**
   * @param {object} parts
   * @param {WidgetUi} parts.ui
   * @param {() => CallState} parts.call
   * @param {() => ConsultSession|null} parts.session
   * @param {() => string} parts.language
   * @param {() => void} parts.changed the controls (unread count) and the side panel need updating
   */
  constructor({ ui, call, session, language, changed }) {
    this.ui = ui;
    this._call = call;
    this._session = session;
    this._language = language;
    this.changed = changed;
    /** the log is kept across re-renders of the call screen (a new one per call: reset()) */
    this.log = h("ol", { class: "dc-chat-log" });
    /** @type {HTMLElement|null} */
    this.section = null;
    /** @type {HTMLInputElement|null} */
    this.input = null;
  }

  /** A new call: an empty log. */
  reset() {
    this.log = h("ol", { class: "dc-chat-log" });
  }

  /** The chat section of the side panel. */
  build() {
    const t = this.ui.t;
    this.log.setAttribute("aria-label", t("chatHeading"));
    const input = /** @type {HTMLInputElement} */ (h("input", {
      type: "text", class: "dc-chat-input", maxlength: "2000", autocomplete: "off",
      placeholder: t("chatPlaceholder"), aria: { label: t("chatInputLabel") },
    }));
    this.input = input;
    const form = h("form", {
      class: "dc-chat-form",
      onsubmit: (e) => { e.preventDefault(); this.send(input); },
    }, input, h("button", { type: "submit", class: "dc-button dc-primary dc-send", dataset: { action: "send" } }, t("send")));
    this.section = h("section", { class: "dc-chat", id: "dc-chat", aria: { labelledby: "dc-chat-title" }, hidden: !this._call().chatOpen },
      h("h3", { id: "dc-chat-title", class: "dc-side-title" }, t("chatHeading")),
      h("p", { class: "dc-muted dc-small" }, t("chatNote")),
      this.log, form);
    return this.section;
  }

  /** @param {HTMLInputElement} input */
  async send(input) {
    const text = input.value.trim();
    const session = this._session();
    if (!text || session?.state !== "active") return;
    try {
      await session.chat(text.slice(0, 2000));
      input.value = "";
    } catch (err) {
      this.ui.error(err);
    }
  }

  /** A message from the server (ours included). @param {{from: string, name: string, role?: string, text: string, sent_at: string}} msg */
  received(msg) {
    const call = this._call();
    const mine = msg.from === this._session()?.participantId;
    const clock = formatTime(new Date(msg.sent_at), this._language());
    const item = h("li", { class: mine ? "dc-msg dc-msg-mine" : "dc-msg" },
      h("div", { class: "dc-msg-head" },
        h("span", { class: "dc-msg-name" }, mine ? this.ui.t("you") : msg.name),
        msg.role && !mine ? h("span", { class: "dc-msg-role" }, this.ui.role(msg.role)) : null,
        h("time", { datetime: msg.sent_at }, clock)),
      h("p", { class: "dc-msg-text" }, msg.text));
    this.log.append(item);
    item.scrollIntoView?.({ block: "nearest" });
    if (!mine) {
      if (!call.chatOpen) {
        call.unread += 1;
        this.changed();
      }
      this.ui.say(this.ui.t("statusChatFrom", { name: msg.name }));
    }
  }

  /** Open or close the panel. @param {boolean} [open] */
  toggle(open = !this._call().chatOpen) {
    const call = this._call();
    call.chatOpen = open;
    if (open) call.unread = 0;
    if (this.section) this.section.hidden = !open;
    this.changed();
    if (open) this.input?.focus();
  }
}
