// <digiclinic-consult>: the embeddable consult widget (web component).
//
//   <script type="module" src="https://digiclinic.example/client/widget/digiclinic-consult.js"></script>
//   <digiclinic-consult server="wss://digiclinic.example/ws" token="eyJ..." lang="fr"></digiclinic-consult>
//
// Plain ES modules, no build step, no third-party requests; DOM built with
// createElement/textContent (no innerHTML, no inline styles), styles from
// consult.css on the same server (a <link> in the shadow root): it runs
// under a strict Content-Security-Policy. docs/widget.md is the manual.
//
// This module is the element: attributes, public API, lifecycle, the
// screens (pre-call, lobby, call, ended), joining and ending. It composes
// the parts, each with a small interface and no access to the others' state:
//   ui.js           WidgetUi: translate, status line, banner, events, errors
//   call-state.js   CallState: what the widget knows about the call (element.call)
//   local-media.js  LocalMedia: our microphone, camera, audio-only mode, screen share
//   control-bar.js  ControlBar: the buttons that drive them
//   stage.js        Stage: the tiles, the self-view, the spotlight, the notices
//   quality.js      QualityMonitor: getStats polling, active speaker, quality badges
//   lobby.js        our waiting screen; WaitingList: admitting others
//   chat.js         ChatPanel
//   recording.js    RecordingPanel: consent question, indicator, record control
//   captures.js     CapturePanel: clinical photos and clips (ask, take, send, gallery, viewer)
//   e2ee-status.js  EncryptionStatus: the end-to-end encryption badge and banner
//   session-events.js CallEvents: the session's events, routed to the parts
//   precall.js      PreCallCheck

import { ConsultSession } from "../digiclinic-client.js";
import { pickLanguage, translator } from "../i18n/catalogue.js";
import { CallState } from "./call-state.js";
import { CapturePanel } from "./captures.js";
import { ChatPanel } from "./chat.js";
import { ControlBar } from "./control-bar.js";
import { EncryptionStatus } from "./e2ee-status.js";
import { h, replace } from "./dom.js";
import { CAMERA_CONSTRAINTS, LocalMedia } from "./local-media.js";
import { WaitingList, renderLobbyScreen } from "./lobby.js";
import { PreCallCheck } from "./precall.js";
import { QualityMonitor } from "./quality.js";
import { RecordingPanel } from "./recording.js";
import { CallEvents } from "./session-events.js";
import { Stage } from "./stage.js";
import { WidgetUi } from "./ui.js";

export { qualityLevel } from "./quality.js";

const BASE = new URL(".", import.meta.url);

const defaultServer = () => {
  const u = new URL("/ws", BASE);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
};

/** Join errors after which "Join again" cannot help. */
const FINAL_ERRORS = [
  "token_expired", "token_invalid", "token_used", "unknown_issuer", "no_token", "e2ee_required", "e2ee_mismatch",
];

export class DigiclinicConsult extends HTMLElement {
  static get observedAttributes() { return ["lang"]; }

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    /** @type {string|null} a token set as a property stays out of the DOM */
    this._token = null;
    /** @type {string|{id: number, key: string}|null} the consult key (a property only: docs/e2ee.md) */
    this._e2eeKey = null;
    /** @type {"new"|"media"|"precall"|"connecting"|"lobby"|"call"|"ended"} */
    this.screen = "new";
    /** @type {ConsultSession|null} */
    this.session = null;
    /** @type {RTCIceServer[]|undefined} optional, for the pre-call check and the call */
    this.iceServers = undefined;
    /** @type {MediaStream|null} our capture */
    this.localStream = null;
    /** @type {string|null} why the camera or microphone could not be opened */
    this.mediaError = null;
    /** @type {AudioContext|null} */
    this.audioContext = null;
    /** @type {PreCallCheck|null} */
    this._precall = null;
    /** @type {CallState} what the widget knows about the call (read-only for portals and tests) */
    this.call = new CallState();
    this.t = translator(this.language);
    this.ui = new WidgetUi(this, this.t);
    const call = () => this.call;
    const session = () => this.session;
    this.media = new LocalMedia({
      ui: this.ui, call, session, stream: () => this.localStream, changed: () => this._refresh(),
    });
    this.recording = new RecordingPanel(this.ui);
    this.encryption = new EncryptionStatus(this.ui);
    this.stage = new Stage({ ui: this.ui, call, session });
    this._headerInfo = h("span", { class: "dc-header-info" });
    this._audioSink = h("div", { class: "dc-audio-sink", hidden: true });
    this.quality = new QualityMonitor({
      ui: this.ui, call, session, stage: this.stage, header: this._headerInfo, inCall: () => this.screen === "call",
    });
    this.stage.quality = this.quality;
    this.chat = new ChatPanel({
      ui: this.ui, call, session, language: () => this.language, changed: () => this._sideChanged(),
    });
    this.waitingList = new WaitingList({ ui: this.ui, call, session, changed: () => this._sideChanged() });
    this.captures = new CapturePanel({
      ui: this.ui, call, session, language: () => this.language, inCall: () => this.screen === "call",
    });
    this.controls = new ControlBar({
      ui: this.ui, call, session, media: this.media, recordControl: this.recording.control,
      captureControls: this.captures.controls, toggleChat: () => this.chat.toggle(), leave: () => this.leave(),
    });
    this.events = new CallEvents({
      ui: this.ui, call, session, screen: () => this.screen, stage: this.stage,
      waiting: this.waitingList, chat: this.chat, quality: this.quality, media: this.media,
      audioSink: this._audioSink,
      refresh: () => this._refresh(), showLobby: () => this._showLobby(),
      joinedDetail: () => this._joinedDetail(), end: (reason) => this._end(reason),
    });
  }

  // -- attributes and public API ----------------------------------------------

  get token() { return this._token ?? this.getAttribute("token") ?? ""; }
  set token(value) { this._token = value; } // a property keeps the token out of the DOM

  /**
   * The consult key of an end-to-end encrypted consult, from the hospital portal
   * ("<key id>.<base64url>" or {id, key}); setting it during the call rotates the key.
   * Write-only: it is never read back, put in the DOM or sent to the server.
   */
  set e2eeKey(value) {
    this._e2eeKey = value;
    if (value && this.session && !["closed", "denied"].includes(this.session.state)) this.session.setE2eeKey(value);
  }

  get server() { return this.getAttribute("server") || defaultServer(); }
  get relay() { return this.hasAttribute("relay"); }
  /** The language in use: en, fr or rw (from `lang`, else the browser's). */
  get language() { return pickLanguage(this.getAttribute("lang")); }
  get state() { return this.screen; }

  /** The pre-call results ({rttMs, kbps, ice, verdict, ...}), for portals and tests. */
  get precallResults() { return this._precall?.results ?? null; }

  connectedCallback() {
    // a `token` property set before the element was defined shadows our accessor
    if (Object.hasOwn(this, "token")) {
      const value = this.token;
      delete this.token;
      this.token = value;
    }
    if (Object.hasOwn(this, "e2eeKey")) { // the same for the consult key
      const key = /** @type {any} */ (this).e2eeKey;
      delete (/** @type {any} */ (this)).e2eeKey;
      this.e2eeKey = key;
    }
    if (this._booted) return;
    this._booted = true;
    this._build();
    this._boot().catch((err) => this._fail(err));
  }

  disconnectedCallback() {
    // moved within the document: reconnected in the same task; removed: leave
    queueMicrotask(() => { if (!this.isConnected) this._teardown("removed"); });
  }

  attributeChangedCallback(name, old, value) {
    if (name === "lang" && old !== value && this._booted) {
      this.t = this.ui.t = translator(this.language);
      this._root.lang = this.language;
      this._rerender();
    }
  }

  /** Join now (skipping the rest of the pre-call check). */
  join({ audioOnly = false } = {}) {
    if (this.screen === "precall") this._precall?._join(audioOnly);
    else if (this.screen === "ended") return this._startCall({ audioOnly });
    return undefined;
  }

  async leave() {
    if (this.session) await this.session.leave();
    else this._end("left");
  }

  mute() { return this.media.setMicMuted(true); }
  unmute() { return this.media.setMicMuted(false); }
  setAudioOnly(enabled) { return this.media.setAudioOnly(Boolean(enabled)); }

  // -- the frame: header, banner, body ------------------------------------------

  _build() {
    this.t = this.ui.t = translator(this.language); // the `lang` attribute is known by now
    const css = h("link", { rel: "stylesheet", href: new URL("consult.css", BASE).href });
    this._title = h("h2", { class: "dc-title" });
    this._body = h("div", { class: "dc-body" });
    this._root = h("div", { class: "dc-root", lang: this.language },
      h("header", { class: "dc-header" }, this._title, this.encryption.badge, this.recording.indicator, this.ui.status,
        this._headerInfo),
      this.ui.alert, this.recording.dialog, this.captures.consent.dialog, this._body, this._audioSink,
      ...this.captures.overlays);
    this.shadowRoot.replaceChildren(css, this._root);
    this._title.textContent = this.t("title");
  }

  _rerender() {
    this._title.textContent = this.t("title");
    if (this.screen === "call") this._renderCall();
    else if (this.screen === "precall") this._showPrecall();
    else if (this.screen === "lobby") this._showLobby();
    else if (this.screen === "ended") this._renderEnded(this._endReason);
  }

  _setScreen(screen) {
    this.screen = screen;
    this._root.dataset.screen = screen;
    this.ui.fire("state", { state: screen });
  }

  // -- start: media, pre-call check -------------------------------------------

  async _boot() {
    this.ui.fire("ready", { lang: this.language });
    if (!this.token) {
      this._end("error", { code: "no_token", message: "no token" });
      return;
    }
    this._setScreen("media");
    replace(this._body, h("p", { class: "dc-center dc-muted" }, this.t("connecting")));
    await this._acquireMedia();
    if (this.hasAttribute("skip-precall")) {
      await this._startCall({ audioOnly: this.hasAttribute("audio-only") });
    } else {
      this._showPrecall();
    }
  }

  async _acquireMedia() {
    const md = navigator.mediaDevices;
    this.mediaError = null;
    const attempts = [{ video: CAMERA_CONSTRAINTS, audio: true }, { audio: true }, { video: CAMERA_CONSTRAINTS }];
    for (const constraints of attempts) {
      try {
        this.localStream = await md.getUserMedia(constraints);
        return;
      } catch (err) {
        this.mediaError ??= err.name;
      }
    }
    this.localStream = new MediaStream(); // no devices: join to watch and listen
  }

  _audioContext() {
    if (!this.audioContext) {
      try { this.audioContext = new AudioContext(); } catch { this.audioContext = null; }
    }
    if (this.audioContext?.state === "suspended") this.audioContext.resume().catch(() => {});
    return this.audioContext;
  }

  _showPrecall() {
    this._setScreen("precall");
    this._precall?.stop();
    this._precall = new PreCallCheck({
      t: this.t, language: this.language, stream: this.localStream, mediaError: this.mediaError,
      serverUrl: this.server, probeUrl: new URL("probe.bin", BASE).href,
      iceServers: this.iceServers ?? [], audioContext: this._audioContext(),
      onJoin: ({ audioOnly }) => this._startCall({ audioOnly }).catch((err) => this._fail(err)),
    });
    this._precall.render(this._body);
  }

  _showLobby() {
    this.encryption.update();
    renderLobbyScreen(this._body, { ui: this.ui, stream: this.localStream, leave: () => this.leave() });
  }

  // -- joining --------------------------------------------------------------------

  async _startCall({ audioOnly = false } = {}) {
    this._precall?.stop();
    if (this.session && !["closed", "denied"].includes(this.session.state)) return;
    // a single-use token joins again only with the resume secret of its previous session
    const resume = this.session?.resume ?? null;
    this.call = new CallState({ micMuted: this.call.micMuted }); // muted before the call: stays muted
    this.chat.reset();
    this.quality.reset();
    this.captures.reset();
    this._audioContext();
    if (!this.localStream || this.localStream.getTracks().every((t) => t.readyState === "ended")) {
      await this._acquireMedia();
    }
    this._setScreen("connecting");
    replace(this._body, h("p", { class: "dc-center dc-muted" }, this.t("connecting")));
    const session = new ConsultSession({
      url: this.server, token: this.token, iceServers: this.iceServers,
      iceTransportPolicy: this.relay ? "relay" : "all", reconnect: true, resume, e2eeKey: this._e2eeKey,
    });
    this.session = session;
    this.events.listen(session);
    this.encryption.attach(session);
    this.recording.attach(session);
    this.captures.attach(session); // after CallEvents: the call state is up to date when it looks
    let joined;
    try {
      joined = await session.join();
    } catch (err) {
      this._end("error", err);
      return;
    }
    if (joined.state === "lobby") {
      this._setScreen("lobby");
      this._showLobby();
      this.ui.fire("lobby", { waiting: true });
      try { await session.admitted(); } catch { return; } // denied or left: `closed` handles it
      this.ui.say(this.t("statusAdmittedIn"));
    }
    const call = this.call;
    const canPublish = Boolean(session.joined.participant.grants?.publish);
    const audio = canPublish ? this.localStream.getAudioTracks()[0] : null;
    const video = canPublish ? this.localStream.getVideoTracks()[0] : null;
    call.mic = audio ? { track: audio, trackId: null } : null;
    call.cam = video ? { track: video, trackId: null } : null;
    if (audio) audio.enabled = !call.micMuted;
    this._setScreen("call");
    this.events.syncRoster();
    this.encryption.update();
    this._renderCall();
    this.quality.start();
    await this.media.publish(audioOnly);
    this.ui.fire("joined", this._joinedDetail());
    this.recording.joined(); // the record control for clinicians with the record grant
    this.captures.joined(); // ask / send controls by grant, and the watch on the video
    this.controls.update();
    this.ui.fire("recording-state", {
      recording: this.recording.state === "recording",
      canRecord: Boolean(session.joined.participant.grants?.record),
    });
    if (audioOnly) await this.media.setAudioOnly(true);
  }

  _joinedDetail() {
    const s = this.session;
    const me = s.joined.participant;
    return { room: s.room, participantId: s.participantId, name: me.name, role: me.role, state: s.state };
  }

  _fail(err) {
    this.ui.error(err);
    this._end("error", err);
  }

  _end(reason, err = null) {
    if (this.screen === "ended") return;
    this.quality.stop();
    this.captures.stop();
    this.encryption.reset();
    this._precall?.stop();
    this.ui.banner(null);
    for (const person of this.call.people.values()) {
      for (const key of ["audio", "screenAudio"]) person[key]?.element.remove();
    }
    this._audioSink.replaceChildren();
    this.media.stop();
    this.localStream = null;
    this.call.micMuted = false; // a new capture next time
    this._endReason = reason;
    this._endError = err;
    this._setScreen("ended");
    this.quality.renderHeader(); // cleared outside the call
    this.ui.stop();
    this._renderEnded(reason);
    if (err) this.ui.fire("error", { code: err.code ?? "error", message: err.message ?? "" });
    this.ui.fire("left", { reason });
  }

  _teardown(reason) {
    if (this.session && !["closed", "denied"].includes(this.session.state)) this.session.leave();
    else this._end(reason);
    this.audioContext?.close().catch(() => {});
    this.audioContext = null;
  }

  // -- rendering ----------------------------------------------------------------------

  _renderEnded(reason) {
    const err = this._endError;
    let text;
    if (reason === "left" || reason === "removed") text = this.t("endedLeft");
    else if (reason === "denied") text = this.t("endedDenied");
    else if (reason === "room_closed") text = this.t("endedClosed");
    else if (reason === "reconnect_failed" || reason === "disconnected") text = this.t("endedFailed");
    else if (err?.code) {
      const key = `err_${err.code}`;
      text = this.t(key) === key ? this.t("err_other", { code: err.code }) : this.t(key);
    } else text = this.t("endedClosed");
    // a single-use token that left is spent (docs/protocol.md#single-use-tokens)
    const spent = reason === "left" && Boolean(this.session?.resume);
    const canRejoin = this.token && reason !== "denied" && !spent && !FINAL_ERRORS.includes(err?.code);
    replace(this._body, h("section", { class: "dc-ended dc-center" },
      h("h3", { class: "dc-screen-title" }, reason === "error" ? this.t("errorTitle") : this.t("title")),
      h("p", { class: "dc-ended-text", dataset: { reason: err?.code ?? reason } }, text),
      canRejoin ? h("button", {
        type: "button", class: "dc-button dc-primary", dataset: { action: "rejoin" },
        onclick: () => this._startCall().catch((e) => this._fail(e)),
      }, h("span", {}, this.t("rejoin"))) : null));
  }

  /** The call screen: stage, side panel (waiting room, chat), control bar. */
  _renderCall() {
    if (this.screen !== "call") return;
    this.stage.label();
    this._side = h("aside", { class: "dc-side" }, this.waitingList.build(), this.chat.build());
    this._callLayout = h("div", { class: "dc-call" }, this.stage.element, this._side, this.captures.strip,
      this.controls.element);
    replace(this._body, this._callLayout);
    this.recording.render();
    this.captures.render();
    this.controls.update();
    this.stage.render();
    this.waitingList.render();
    this.quality.renderHeader();
  }

  /** Our media or the call changed: the controls and the tiles are drawn again. */
  _refresh() {
    if (this.screen !== "call") return;
    this.captures.render();
    this.controls.update();
    this.stage.render();
  }

  /** The waiting room or the chat opened or closed: so does the side panel. */
  _sideChanged() {
    if (this.screen !== "call" || !this._side) return;
    this.controls.update();
    const open = !this.waitingList.section.hidden || !this.chat.section.hidden;
    this._side.hidden = !open;
    this._side.classList.toggle("dc-chat-open", this.call.chatOpen);
    this._callLayout.classList.toggle("dc-with-side", open);
  }
}

if (!customElements.get("digiclinic-consult")) customElements.define("digiclinic-consult", DigiclinicConsult);
