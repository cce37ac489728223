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
// This module is the element itself: attributes, public API, lifecycle,
// joining and ending, and the call screen's layout. Its parts are mixins:
// session-events.js, controls.js, chat.js, lobby.js, tiles.js, quality.js;
// the recording UI is recording.js and the pre-call check precall.js.

import { ConsultSession } from "../digiclinic-client.js";
import { Chat } from "./chat.js";
import { CAMERA_CONSTRAINTS, Controls } from "./controls.js";
import { h, replace } from "./dom.js";
import { pickLanguage, translator } from "../i18n/catalogue.js";
import { Lobby } from "./lobby.js";
import { PreCallCheck } from "./precall.js";
import { Quality } from "./quality.js";
import { RecordingPanel } from "./recording.js";
import { SessionEvents } from "./session-events.js";
import { Tiles } from "./tiles.js";

export { qualityLevel } from "./quality.js";

const BASE = new URL(".", import.meta.url);

const defaultServer = () => {
  const u = new URL("/ws", BASE);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
};

export class DigiclinicConsult extends SessionEvents(Controls(Chat(Lobby(Tiles(Quality(HTMLElement)))))) {
  static get observedAttributes() { return ["lang"]; }

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._token = null;
    this.screen = "new"; // new, media, precall, connecting, lobby, call, ended
    this.session = null;
    this.iceServers = undefined; // optional RTCIceServer[] for the pre-call check and the call
    this._resetCall();
  }

  // -- attributes and public API ----------------------------------------------

  get token() { return this._token ?? this.getAttribute("token") ?? ""; }
  set token(value) { this._token = value; } // a property keeps the token out of the DOM

  get server() { return this.getAttribute("server") || defaultServer(); }
  get relay() { return this.hasAttribute("relay"); }
  /** The language in use: en, fr or rw (from `lang`, else the browser's). */
  get language() { return pickLanguage(this.getAttribute("lang")); }
  get state() { return this.screen; }

  connectedCallback() {
    // a `token` property set before the element was defined shadows our accessor
    if (Object.hasOwn(this, "token")) {
      const value = this.token;
      delete this.token;
      this.token = value;
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
      this.t = translator(this.language);
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

  mute() { return this._setMicMuted(true); }
  unmute() { return this._setMicMuted(false); }
  setAudioOnly(enabled) { return this._setAudioOnly(Boolean(enabled)); }

  // -- building blocks ----------------------------------------------------------

  _resetCall() {
    this.people = new Map(); // participantId -> view of a remote participant
    this.waiting = [];
    this.micMuted ??= false; // kept from before the call (mute in the pre-call screen or lobby)
    this.pausedByUs = new Set(); // remote video track ids we paused (audio-only mode)
    this.pausedByServer = new Map(); // remote video track id -> reason
    this.weakUplinks = new Set(); // remote participant ids whose own uplink is weak (publisher_link)
    this.pinned = null; // participant id whose camera is pinned (shown large)
    this.serverQuality = null; // the latest `quality` event: {estimate, tracks: Map, at}
    this.recentlyDropped = new Map(); // "name|role" -> time dropped
    this.unread = 0;
    this.chatOpen = false;
    this._chatLog = null; // kept across re-renders of the call screen
    this._camWantedAtJoin = false;
    this.mic = null; // {track, trackId}
    this.cam = null; // {track|null, trackId|null}
    this.share = null; // {stream, trackIds}
    this.cameraOff = false;
    this.audioOnly = false;
    this.self = { quality: null, level: 0 };
  }

  _build() {
    this.t = translator(this.language);
    const shadow = this.shadowRoot;
    const css = h("link", { rel: "stylesheet", href: new URL("consult.css", BASE).href });
    this._status = h("div", { class: "dc-status", role: "status", aria: { live: "polite", atomic: "true" } });
    this._alert = h("div", { class: "dc-banner", role: "alert", hidden: true });
    this._title = h("h2", { class: "dc-title" });
    this._headerInfo = h("span", { class: "dc-header-info" });
    this._recording = new RecordingPanel(this);
    this._body = h("div", { class: "dc-body" });
    this._audioSink = h("div", { class: "dc-audio-sink", hidden: true });
    this._root = h("div", { class: "dc-root", lang: this.language },
      h("header", { class: "dc-header" }, this._title, this._recording.indicator, this._status,
        this._headerInfo),
      this._alert, this._recording.dialog, this._body, this._audioSink);
    shadow.replaceChildren(css, this._root);
    this._title.textContent = this.t("title");
  }

  _rerender() {
    this._title.textContent = this.t("title");
    if (this.screen === "call") this._renderCall();
    else if (this.screen === "precall") this._showPrecall();
    else if (this.screen === "lobby") this._renderLobby();
    else if (this.screen === "ended") this._renderEnded(this._endReason);
  }

  _fire(name, detail = {}) {
    this.dispatchEvent(new CustomEvent(`digiclinic-${name}`, { detail, bubbles: true, composed: true }));
  }

  /** A status message: shown, and read by screen readers (aria-live). */
  _say(text) {
    this._status.textContent = text;
    this._status.classList.add("dc-status-on");
    clearTimeout(this._statusTimer);
    this._statusTimer = setTimeout(() => {
      this._status.classList.remove("dc-status-on");
      this._statusTimer = setTimeout(() => { this._status.textContent = ""; }, 400); // after the fade
    }, 6000);
  }

  _banner(text) {
    this._alert.hidden = !text;
    this._alert.textContent = text ?? "";
  }

  _setScreen(screen) {
    this.screen = screen;
    this._root.dataset.screen = screen;
    this._fire("state", { state: screen });
  }

  // -- start: media, pre-call check -------------------------------------------

  async _boot() {
    this._fire("ready", { lang: this.language });
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

  /** The pre-call results ({rttMs, kbps, ice, verdict, ...}), for portals and tests. */
  get precallResults() { return this._precall?.results ?? null; }

  // -- joining --------------------------------------------------------------------

  async _startCall({ audioOnly = false } = {}) {
    this._precall?.stop();
    if (this.session && !["closed", "denied"].includes(this.session.state)) return;
    // a single-use token joins again only with the resume secret of its previous session
    const resume = this.session?.resume ?? null;
    this._resetCall();
    this._audioContext();
    if (!this.localStream || this.localStream.getTracks().every((t) => t.readyState === "ended")) {
      await this._acquireMedia();
    }
    this._setScreen("connecting");
    replace(this._body, h("p", { class: "dc-center dc-muted" }, this.t("connecting")));
    const session = new ConsultSession({
      url: this.server, token: this.token, iceServers: this.iceServers,
      iceTransportPolicy: this.relay ? "relay" : "all", reconnect: true, resume,
    });
    this.session = session;
    this._listen(session);
    this._recording.attach(session);
    let joined;
    try {
      joined = await session.join();
    } catch (err) {
      this._end("error", err);
      return;
    }
    if (joined.state === "lobby") {
      this._setScreen("lobby");
      this._renderLobby();
      this._fire("lobby", { waiting: true });
      try { await session.admitted(); } catch { return; } // denied or left: `closed` handles it
      this._say(this.t("statusAdmittedIn"));
    }
    const canPublish = Boolean(session.joined.participant.grants?.publish);
    const audio = canPublish ? this.localStream.getAudioTracks()[0] : null;
    const video = canPublish ? this.localStream.getVideoTracks()[0] : null;
    this.mic = audio ? { track: audio, trackId: null } : null;
    this.cam = video ? { track: video, trackId: null } : null;
    if (audio) audio.enabled = !this.micMuted;
    this._enterCall();
    await this._publishLocal(audioOnly);
    this._fire("joined", this._joinedDetail());
    this._recording.joined(); // the record control for clinicians with the record grant
    this._fire("recording-state", {
      recording: this._recording.state === "recording",
      canRecord: Boolean(session.joined.participant.grants?.record),
    });
    if (audioOnly) await this._setAudioOnly(true);
  }

  _joinedDetail() {
    const s = this.session;
    const me = s.joined.participant;
    return { room: s.room, participantId: s.participantId, name: me.name, role: me.role, state: s.state };
  }

  async _publishLocal(audioOnly) {
    const s = this.session;
    const audio = this.mic?.track;
    const video = this.cam?.track;
    if (audioOnly && video) { // do not even start sending the camera
      video.stop();
      this.localStream.removeTrack(video);
      this.cam.track = null;
      this.cameraOff = true;
      this._camWantedAtJoin = true; // leaving audio-only mode turns it on
    }
    const tracks = [audio, audioOnly ? null : video].filter(Boolean);
    if (tracks.length) {
      try {
        await s.publish(new MediaStream(tracks));
      } catch (err) {
        // lost the connection meanwhile: published when the call is restored
        if (err.code === "reconnecting" || s.state === "reconnecting") this._publishAfterReconnect = tracks;
        else this._error(err);
      }
    }
    this._learnPublished();
    await this._reconcile(); // e.g. muted while publishing
  }

  /** Our track ids, from the session (they change after a reconnection). */
  _learnPublished() {
    const published = [...(this.session?.published.values() ?? [])];
    const by = (source) => published.find((entry) => entry.source === source);
    if (this.mic) this.mic.trackId = by("microphone")?.trackId ?? null;
    if (this.cam) this.cam.trackId = by("camera")?.trackId ?? null;
    if (this.share) {
      this.share.trackIds = published.filter((e) => e.source.startsWith("screen_share")).map((e) => e.trackId);
    }
  }

  _enterCall() {
    this._setScreen("call");
    this._syncRoster();
    this._renderCall();
    this._startPolling();
  }

  _error(err) {
    const detail = { code: err.code ?? err.name ?? "error", message: err.message ?? String(err) };
    this._fire("error", detail);
  }

  _fail(err) {
    this._error(err);
    this._end("error", err);
  }

  _end(reason, err = null) {
    if (this.screen === "ended") return;
    this._stopPolling();
    this._precall?.stop();
    this._banner(null);
    for (const person of this.people.values()) {
      for (const key of ["audio", "screenAudio"]) person[key]?.element.remove();
    }
    this._audioSink.replaceChildren();
    this.share?.stream.getTracks().forEach((track) => track.stop());
    this.localStream?.getTracks().forEach((track) => track.stop());
    this.localStream = null;
    this.micMuted = false; // a new capture next time
    this._endReason = reason;
    this._endError = err;
    this._setScreen("ended");
    this._renderHeaderQuality(); // cleared outside the call
    this._status.classList.remove("dc-status-on");
    this._renderEnded(reason);
    if (err) this._fire("error", { code: err.code ?? "error", message: err.message ?? "" });
    this._fire("left", { reason });
  }

  _teardown(reason) {
    if (this.session && !["closed", "denied"].includes(this.session.state)) this.session.leave();
    else this._end(reason);
    this.audioContext?.close().catch(() => {});
    this.audioContext = null;
  }

  // -- rendering ----------------------------------------------------------------------

  _role(role) { return role ? this.t(`role_${role}`) : ""; }

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
    const canRejoin = this.token && reason !== "denied" && !spent && !["token_expired", "token_invalid", "token_used", "unknown_issuer", "no_token"].includes(err?.code);
    replace(this._body, h("section", { class: "dc-ended dc-center" },
      h("h3", { class: "dc-screen-title" }, reason === "error" ? this.t("errorTitle") : this.t("title")),
      h("p", { class: "dc-ended-text", dataset: { reason: err?.code ?? reason } }, text),
      canRejoin ? h("button", {
        type: "button", class: "dc-button dc-primary", dataset: { action: "rejoin" },
        onclick: () => this._startCall().catch((e) => this._fail(e)),
      }, h("span", {}, this.t("rejoin"))) : null));
  }

  _renderCall() {
    if (this.screen !== "call") return;
    const t = this.t;
    this._spotlight = h("div", { class: "dc-spotlight" });
    this._tiles = h("div", { class: "dc-tiles", role: "list", aria: { label: t("participantsLabel") } });
    this._alone = h("p", { class: "dc-alone dc-muted", hidden: true }, t("waitingForOthers"));
    this._onHold = h("p", { class: "dc-on-hold", hidden: true });
    this._selfView = h("div", { class: "dc-self-view", role: "list", hidden: true, aria: { label: t("you") } });
    this._stage = h("div", { class: "dc-stage" }, this._onHold, this._spotlight, this._alone, this._tiles, this._selfView);
    // side panel: waiting room (admitters) and chat
    this._waitingSection = h("section", { class: "dc-waiting", aria: { labelledby: "dc-waiting-title" }, hidden: true });
    this._side = h("aside", { class: "dc-side" }, this._waitingSection, this._buildChat());
    this._controls = h("div", { class: "dc-controls", role: "toolbar", aria: { label: t("controlsLabel") } });
    replace(this._body, h("div", { class: "dc-call" }, this._stage, this._side, this._controls));
    this._buildControls();
    this._renderTiles();
    this._renderWaiting();
    this._renderHeaderQuality();
  }

  _updateSide() {
    if (!this._side) return;
    const open = !this._waitingSection.hidden || !this._chatSection.hidden;
    this._side.hidden = !open;
    this._body.querySelector(".dc-call")?.classList.toggle("dc-with-side", open);
  }
}

if (!customElements.get("digiclinic-consult")) customElements.define("digiclinic-consult", DigiclinicConsult);
