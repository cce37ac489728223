// Recording in the widget: the consent question, the indicator everyone
// sees while recording runs, and the record/stop control for clinicians
// with the `record` grant. The server decides; this only asks and shows
// (protocol: recording_start, consent, recording_stop; events
// consent_request, recording_state).

import { h, replace } from "./dom.js";

export class RecordingPanel {
  /** @param {import("./ui.js").WidgetUi} ui */
  constructor(ui) {
    this.ui = ui;
    this.session = null;
    this.state = "off";
    this.recordingId = null;
    this.mine = false; // I have consented to the current recording
    this.canRecord = false;
    this.indicator = h("span", { class: "dc-rec", hidden: true, role: "status" });
    this.dialog = h("div", {
      class: "dc-rec-dialog", role: "dialog", hidden: true,
      aria: { modal: "false", labelledby: "dc-rec-question" },
    });
    this.control = h("button", {
      type: "button", class: "dc-button dc-control", dataset: { action: "record" }, hidden: true,
      onclick: () => this._toggle(),
    });
  }

  attach(session) {
    this.session = session;
    this.canRecord = Boolean(session.joined?.participant?.grants?.record);
    session.addEventListener("consent-request", (e) => this._asked(e.detail));
    session.addEventListener("recording-state", (e) => this._changed(e.detail));
    this.render();
  }

  /** The widget calls this once joined (grants are known then). */
  joined() {
    this.canRecord = Boolean(this.session?.joined?.participant?.grants?.record);
    this.render();
  }

  _asked(detail) {
    this.recordingId = detail.recording_id;
    this._changed(detail);
    if (!this.mine) this._showQuestion();
  }

  _changed(detail) {
    const me = this.session?.participantId;
    this.state = detail.state;
    this.recordingId = detail.recording_id;
    if (Array.isArray(detail.recorded) && detail.recorded.includes(me)) this.mine = true;
    if (detail.state === "stopped" || detail.state === "off") this.mine = false;
    this.ui.fire("recording-state", {
      recording: detail.state === "recording", state: detail.state,
      recordingId: detail.recording_id, canRecord: this.canRecord,
    });
    if (detail.state === "stopped") this.dialog.hidden = true;
    this.render();
  }

  _showQuestion() {
    const t = this.ui.t;
    const answer = (given) => async () => {
      this.dialog.hidden = true;
      try {
        await this.session._request("consent", { given });
        this.mine = given;
        this.ui.say(t(given ? "recordingAgreed" : "recordingDeclined"));
      } catch (err) {
        this.ui.say(String(err?.message || err));
      }
      this.render();
    };
    const agree = h("button", { type: "button", class: "dc-button dc-primary", onclick: answer(true) },
      t("recordingAgree"));
    replace(this.dialog,
      h("p", { id: "dc-rec-question", class: "dc-rec-question" }, t("recordingAsk")),
      h("div", { class: "dc-rec-actions" }, agree,
        h("button", { type: "button", class: "dc-button", onclick: answer(false) }, t("recordingDecline"))));
    this.dialog.hidden = false;
    agree.focus();
  }

  async _toggle() {
    const t = this.ui.t;
    const running = ["recording", "paused", "awaiting_consent"].includes(this.state);
    try {
      if (this.canRecord) {
        await this.session._request(running ? "recording_stop" : "recording_start");
        if (running) this.state = "stopped";
      } else if (this.mine) {
        await this.session._request("consent", { given: false }); // withdraw
        this.mine = false;
        this.ui.say(t("recordingDeclined"));
      }
    } catch (err) {
      this.ui.say(String(err?.message || err));
    }
    this.render();
  }

  render() {
    const t = this.ui.t;
    const label = { recording: "recordingOn", paused: "recordingPaused",
      awaiting_consent: "recordingWaiting" }[this.state];
    this.indicator.hidden = !label;
    this.indicator.dataset.state = this.state;
    if (label) replace(this.indicator, h("span", { class: "dc-rec-dot", aria: { hidden: "true" } }), t(label));
    const running = ["recording", "paused", "awaiting_consent"].includes(this.state);
    let text = null;
    if (this.canRecord) text = t(running ? "recordingStop" : "recordingStart");
    else if (this.mine && running) text = t("recordingWithdraw");
    this.control.hidden = !text;
    if (text) {
      replace(this.control, h("span", { class: "dc-rec-dot", aria: { hidden: "true" } }),
        h("span", { class: "dc-label" }, text));
      this.control.setAttribute("aria-label", text);
      this.control.setAttribute("aria-pressed", String(running));
    }
  }
}
