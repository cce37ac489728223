// The <digiclinic-consult> widget's chat: the side panel's chat section,
// sending, showing received messages and the unread count. A mixin of the
// element (digiclinic-consult.js).

import { formatTime } from "../i18n/catalogue.js";
import { h } from "./dom.js";

export const Chat = (Base) => class Chat extends Base {
  /** The chat section of the call screen's side panel (the log is kept across re-renders). */
  _buildChat() {
    const t = this.t;
    this._chatLog ??= h("ol", { class: "dc-chat-log" });
    this._chatLog.setAttribute("aria-label", t("chatHeading"));
    this._chatInput = h("input", {
      type: "text", class: "dc-chat-input", maxlength: "2000", autocomplete: "off",
      placeholder: t("chatPlaceholder"), aria: { label: t("chatInputLabel") },
    });
    const form = h("form", {
      class: "dc-chat-form",
      onsubmit: (e) => { e.preventDefault(); this._sendChat(this._chatInput); },
    }, this._chatInput, h("button", { type: "submit", class: "dc-button dc-primary dc-send", dataset: { action: "send" } }, t("send")));
    this._chatSection = h("section", { class: "dc-chat", id: "dc-chat", aria: { labelledby: "dc-chat-title" }, hidden: !this.chatOpen },
      h("h3", { id: "dc-chat-title", class: "dc-side-title" }, t("chatHeading")),
      h("p", { class: "dc-muted dc-small" }, t("chatNote")),
      this._chatLog, form);
    return this._chatSection;
  }

  async _sendChat(input) {
    const text = input.value.trim();
    if (!text || this.session?.state !== "active") return;
    try {
      await this.session.chat(text.slice(0, 2000));
      input.value = "";
    } catch (err) {
      this._error(err);
    }
  }

  _chatMessage(msg) {
    const mine = msg.from === this.session.participantId;
    const clock = formatTime(new Date(msg.sent_at), this.language);
    const item = h("li", { class: mine ? "dc-msg dc-msg-mine" : "dc-msg" },
      h("div", { class: "dc-msg-head" },
        h("span", { class: "dc-msg-name" }, mine ? this.t("you") : msg.name),
        msg.role && !mine ? h("span", { class: "dc-msg-role" }, this._role(msg.role)) : null,
        h("time", { datetime: msg.sent_at }, clock)),
      h("p", { class: "dc-msg-text" }, msg.text));
    this._chatLog?.append(item);
    item.scrollIntoView?.({ block: "nearest" });
    if (!mine) {
      if (!this.chatOpen) {
        this.unread += 1;
        this._updateControls();
      }
      this._say(this.t("statusChatFrom", { name: msg.name }));
    }
  }

  _toggleChat(open = !this.chatOpen) {
    this.chatOpen = open;
    if (open) this.unread = 0;
    this._side?.classList.toggle("dc-chat-open", open);
    if (this._chatSection) this._chatSection.hidden = !open;
    this._updateControls();
    this._updateSide();
    if (open) this._chatInput?.focus();
  }
};
