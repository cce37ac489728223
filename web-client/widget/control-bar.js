// The call's control bar: microphone, camera, screen share, audio only, chat,
// the capture controls (ask for / send a photo: in the bar only when shown),
// the recording control and leave. Buttons only: what they do is LocalMedia's
// (and the chat's, the capture and recording panels', the element's leave());
// update() draws their state from the call state.

import { h, icon, replace } from "./dom.js";

/** @typedef {import("../digiclinic-client.js").ConsultSession} ConsultSession */
/** @typedef {import("./call-state.js").CallState} CallState */
/** @typedef {import("./ui.js").WidgetUi} WidgetUi */
/** @typedef {import("./local-media.js").LocalMedia} LocalMedia */

export class ControlBar {
  /**
   * @param {object} parts
   * @param {WidgetUi} parts.ui
   * @param {() => CallState} parts.call
   * @param {() => ConsultSession|null} parts.session
   * @param {LocalMedia} parts.media
   * @param {HTMLElement} parts.recordControl the recording panel's button
   * @param {HTMLElement[]} [parts.captureControls] the capture panel's buttons (drawn by it)
   * @param {() => void} parts.toggleChat
   * @param {() => void} parts.leave
   */
  constructor({ ui, call, session, media, recordControl, captureControls = [], toggleChat, leave }) {
    this.ui = ui;
    this._call = call;
    this._session = session;
    const button = (action, onclick) => h("button", {
      type: "button", class: "dc-button dc-control", dataset: { action }, onclick,
    });
    this.buttons = {
      mic: button("mic", () => media.setMicMuted(!this._call().micMuted)),
      camera: button("camera", () => media.setCamera(this._call().cameraOff)),
      share: button("share", () => media.toggleShare()),
      audioOnly: button("audio-only", () => media.setAudioOnly(!this._call().audioOnly)),
      chat: button("chat", toggleChat),
      leave: button("leave", leave),
    };
    this.recordControl = recordControl;
    /** shown by the capture panel (by grant); only those shown are in the bar */
    this.captureControls = captureControls;
    this.buttons.leave.classList.add("dc-danger");
    this.buttons.chat.setAttribute("aria-controls", "dc-chat");
    this.element = h("div", { class: "dc-controls", role: "toolbar" },
      ...Object.values(this.buttons).slice(0, -1), ...captureControls, recordControl, this.buttons.leave);
  }

  update() {
    for (const control of this.captureControls) { // in the bar only when shown, in their order
      if (control.hidden) control.remove();
      else if (control.parentNode !== this.element) this.element.insertBefore(control, this.recordControl);
    }
    const b = this.buttons;
    const t = this.ui.t;
    const call = this._call();
    const session = this._session();
    const active = session?.state === "active";
    this.element.setAttribute("aria-label", t("controlsLabel"));
    const set = (btn, iconName, text, label, pressed = null, disabled = false) => {
      replace(btn, icon(iconName), h("span", { class: "dc-label" }, text));
      btn.setAttribute("aria-label", label);
      if (pressed === null) btn.removeAttribute("aria-pressed");
      else btn.setAttribute("aria-pressed", String(pressed));
      btn.disabled = disabled;
    };
    set(b.mic, call.micMuted ? "micOff" : "mic", t(call.micMuted ? "unmute" : "mute"),
      t(call.micMuted ? "unmuteLabel" : "muteLabel"), call.micMuted, !call.mic || !active);
    set(b.camera, call.cameraOff ? "cameraOff" : "camera", t(call.cameraOff ? "cameraOn" : "cameraOff"),
      t(call.cameraOff ? "cameraOnLabel" : "cameraOffLabel"), call.cameraOff, !call.cam || !active || call.audioOnly);
    const canShare = Boolean(navigator.mediaDevices?.getDisplayMedia) && session?.joined?.participant.grants?.publish;
    set(b.share, "screen", t(call.share ? "stopShare" : "share"), t(call.share ? "stopShareLabel" : "shareLabel"),
      Boolean(call.share), !canShare || !active);
    set(b.audioOnly, call.audioOnly ? "video" : "audio", t(call.audioOnly ? "videoBack" : "audioOnly"),
      t(call.audioOnly ? "videoBackLabel" : "audioOnlyLabel"), call.audioOnly, !active);
    set(b.chat, "chat", t("chat"), t(call.chatOpen ? "chatHide" : "chatLabel"));
    b.chat.setAttribute("aria-expanded", String(call.chatOpen));
    if (call.unread && !call.chatOpen) {
      b.chat.append(h("span", { class: "dc-badge" }, String(call.unread)));
      b.chat.setAttribute("aria-label", `${t("chatLabel")} (${t("chatUnread", { count: call.unread })})`);
    }
    set(b.leave, "leave", t("leave"), t("leaveLabel"));
  }
}
