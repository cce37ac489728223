// <digiclinic-consult>: the embeddable consult widget (web component).
//
//   <script type="module" src="https://digiclinic.example/client/widget/digiclinic-consult.js"></script>
//   <digiclinic-consult server="wss://digiclinic.example/ws" token="eyJ..." lang="fr"></digiclinic-consult>
//
// Plain ES modules, no build step, no third-party requests; DOM built with
// createElement/textContent (no innerHTML, no inline styles), styles from
// consult.css on the same server (a <link> in the shadow root): it runs
// under a strict Content-Security-Policy. docs/widget.md is the manual.

import { ConsultSession } from "../digiclinic-client.js";
import { h, icon, initials, replace } from "./dom.js";
import { pickLanguage, translator } from "./i18n.js";
import { PreCallCheck } from "./precall.js";
import { RecordingPanel } from "./recording.js";

const BASE = new URL(".", import.meta.url);
const STATS_EVERY_MS = 2000;
const SPEAKER_EVERY_MS = 400;
// Level (0..1, linear, as RTP audioLevel; Chrome derives it from 10 ms peaks) above which
// someone speaks: -26 dBov. Room noise with noise suppression stays well below; speech peaks above.
const SPEAKING_LEVEL = 0.05;
const READMIT_WINDOW_MS = 120000; // a dropped participant back in the lobby this soon is re-admitted
const CAMERA_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } };

/** good / fair / poor from packet loss (0..1), jitter (s) and round-trip time (s). */
export function qualityLevel({ loss = 0, jitter = 0, rtt = 0 }) {
  if (loss > 0.08 || jitter > 0.1 || rtt > 0.8) return "poor";
  if (loss > 0.02 || jitter > 0.03 || rtt > 0.3) return "fair";
  return "good";
}

const defaultServer = () => {
  const u = new URL("/ws", BASE);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
};

export class DigiclinicConsult extends HTMLElement {
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
      t: this.t, stream: this.localStream, mediaError: this.mediaError,
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
    this._resetCall();
    this._audioContext();
    if (!this.localStream || this.localStream.getTracks().every((t) => t.readyState === "ended")) {
      await this._acquireMedia();
    }
    this._setScreen("connecting");
    replace(this._body, h("p", { class: "dc-center dc-muted" }, this.t("connecting")));
    const session = new ConsultSession({
      url: this.server, token: this.token, iceServers: this.iceServers,
      iceTransportPolicy: this.relay ? "relay" : "all", reconnect: true,
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
    clearInterval(this._statsTimer);
    clearInterval(this._speakerTimer);
    this._statsTimer = setInterval(() => this._pollStats().catch(() => {}), STATS_EVERY_MS);
    this._speakerTimer = setInterval(() => this._pollSpeakers().catch(() => {}), SPEAKER_EVERY_MS);
  }

  // -- session events -------------------------------------------------------------

  _listen(session) {
    const on = (type, fn) => session.addEventListener(type, (e) => {
      if (session === this.session) fn(e.detail);
    });
    on("lobby-wait", () => {
      if (this.screen === "call") this._banner(`${this.t("statusReconnecting")} ${this.t("lobbyTitle")}`);
    });
    on("participant-joined", ({ participant }) => this._personJoined(participant));
    on("participant-left", ({ participant_id: id, reason }) => this._personLeft(id, reason));
    on("track", (detail) => this._remoteTrack(detail));
    on("track-removed", (detail) => this._remoteTrackGone(detail));
    on("track-muted", ({ participant_id: id }) => { if (id !== session.participantId) this._updateTile(id); });
    on("track-published", ({ participant_id: id }) => this._updateTile(id));
    on("track-paused", ({ track_id: trackId, paused, reason }) => this._trackPaused(trackId, paused, reason));
    on("chat", (msg) => this._chatMessage(msg));
    on("lobby", ({ waiting }) => this._lobbyChanged(waiting));
    on("reconnecting", (detail) => this._reconnecting(detail));
    on("reconnected", () => this._reconnected());
    on("error", (detail) => this._error(detail));
    // a refused join is reported by _startCall, with the server's error code
    on("closed", ({ reason }) => { if (reason !== "join_failed") this._end(reason); });
  }

  _personJoined(info) {
    const key = `${info.name}|${info.role}`;
    const back = this.recentlyDropped.has(key);
    this.recentlyDropped.delete(key);
    this._person(info);
    this._renderTiles();
    this._say(this.t(back ? "statusBack" : "statusJoined", { name: info.name }));
    this._fire("participant-joined", { participantId: info.id, name: info.name, role: info.role });
  }

  _personLeft(id, reason) {
    const person = this.people.get(id);
    if (!person) return;
    this.people.delete(id);
    for (const key of ["audio", "screenAudio"]) person[key]?.element.remove();
    if (reason === "disconnected") this.recentlyDropped.set(`${person.info.name}|${person.info.role}`, Date.now());
    this._renderTiles();
    this._say(this.t(reason === "disconnected" ? "statusDropped" : "statusLeft", { name: person.info.name }));
    this._fire("participant-left", {
      participantId: id, name: person.info.name, role: person.info.role, reason,
    });
  }

  /** The view of a remote participant (created on first use). */
  _person(info) {
    let person = this.people.get(info.id);
    if (!person) {
      person = { info, camera: null, audio: null, screen: null, quality: null, level: 0, loss: new Map() };
      this.people.set(info.id, person);
    } else {
      person.info = info;
    }
    return person;
  }

  _syncRoster() {
    for (const info of this.session.participants.values()) this._person(info);
  }

  _remoteTrack({ track, trackId, participantId, kind, source, transceiver }) {
    const info = this.session.participants.get(participantId) ?? { id: participantId, name: "", role: "" };
    const person = this._person(info);
    const stream = new MediaStream([track]);
    const receiver = this.session.subscriberPc?.getReceivers().find((r) => r.track === track) ?? transceiver?.receiver;
    if (kind === "audio") {
      const element = h("audio", { autoplay: true, dataset: { trackId } });
      element.srcObject = stream;
      this._audioSink.append(element);
      const entry = { track, trackId, element, receiver };
      if (source === "screen_share_audio") person.screenAudio = entry;
      else person.audio = entry;
      return;
    }
    const entry = { track, trackId, stream, source };
    if (source === "screen_share") {
      person.screen = entry;
      this._say(this.t("statusSharing", { name: person.info.name }));
    } else {
      person.camera = entry;
    }
    if (this.audioOnly) this._pause(trackId, true);
    this._renderTiles();
  }

  _remoteTrackGone({ trackId, participantId }) {
    const person = this.people.get(participantId);
    if (!person) return;
    for (const key of ["audio", "screenAudio", "camera", "screen"]) {
      if (person[key]?.trackId !== trackId) continue;
      person[key].element?.remove();
      person[key] = null;
    }
    this.pausedByUs.delete(trackId);
    this.pausedByServer.delete(trackId);
    this._renderTiles();
  }

  _trackPaused(trackId, paused, reason) {
    if (reason !== "subscriber") {
      if (paused) {
        this.pausedByServer.set(trackId, reason);
        this._say(this.t("videoPausedBandwidth"));
      } else {
        this.pausedByServer.delete(trackId);
      }
    }
    this._renderTiles();
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

  _reconnecting({ attempt }) {
    if (this.screen !== "call") {
      if (this.screen === "lobby") this._banner(this.t("statusReconnecting"));
      return;
    }
    for (const person of this.people.values()) {
      this.recentlyDropped.set(`${person.info.name}|${person.info.role}`, Date.now());
      for (const key of ["audio", "screenAudio"]) person[key]?.element.remove();
    }
    this.people = new Map();
    this.waiting = [];
    this.pausedByUs.clear();
    this.pausedByServer.clear();
    this._banner(this.t("statusReconnecting"));
    if (attempt === 1) this._say(this.t("statusReconnecting"));
    this._updateControls();
    this._renderTiles();
    this._renderWaiting();
    this._fire("reconnecting", { attempt });
  }

  async _reconnected() {
    this._banner(null);
    if (this.screen === "lobby") { // we were still waiting: nothing to restore
      this._renderLobby();
      return;
    }
    this._learnPublished();
    this._syncRoster();
    this._updateControls();
    this._renderTiles();
    this._renderWaiting();
    this._say(this.t("statusReconnected"));
    this._fire("reconnected", this._joinedDetail());
    await this._reconcile();
  }

  /** After a reconnection: what changed locally while we were away reaches the server. */
  async _reconcile() {
    const s = this.session;
    if (s?.state !== "active") return;
    if (this._publishAfterReconnect) {
      const tracks = this._publishAfterReconnect.filter((track) => track.readyState === "live");
      this._publishAfterReconnect = null;
      if (tracks.length && !s.published.size) await s.publish(new MediaStream(tracks)).catch((err) => this._error(err));
      this._learnPublished();
    }
    const entry = (trackId) => (trackId ? s.published.get(trackId) : null);
    const mic = entry(this.mic?.trackId);
    if (mic && mic.muted !== this.micMuted) await s.mute(mic.trackId, this.micMuted).catch((err) => this._error(err));
    const cam = entry(this.cam?.trackId);
    if (cam && cam.muted !== this.cameraOff) await s.mute(cam.trackId, this.cameraOff).catch((err) => this._error(err));
    this._updateControls();
    this._renderTiles();
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
    clearInterval(this._statsTimer);
    clearInterval(this._speakerTimer);
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

  // -- local controls -------------------------------------------------------------

  async _setMicMuted(muted) {
    // before the call (pre-call screen, lobby) this mutes the capture; publishing follows it
    const track = this.mic?.track ?? this.localStream?.getAudioTracks()[0];
    if (!track) return;
    this.micMuted = muted;
    track.enabled = !muted;
    this._updateControls();
    this._updateTile("self");
    this._say(this.t(muted ? "statusMuted" : "statusUnmuted"));
    this._fire("mute-state", { muted });
    if (this.mic?.trackId && this.session?.state === "active") {
      await this.session.mute(this.mic.trackId, muted).catch((err) => this._error(err));
    }
  }

  async _setCamera(on) {
    if (!this.cam || this.session?.state !== "active") return;
    const s = this.session;
    if (!on) {
      this.cameraOff = true;
      const track = this.cam.track;
      this.cam.track = null;
      this._updateControls();
      this._renderTiles();
      if (this.cam.trackId) {
        await s.mute(this.cam.trackId, true).catch((err) => this._error(err));
        await s.replaceTrack(this.cam.trackId, null).catch((err) => this._error(err));
      }
      track?.stop(); // the camera light goes off
      if (track) this.localStream.removeTrack(track);
      return;
    }
    let track;
    try {
      [track] = (await navigator.mediaDevices.getUserMedia({ video: CAMERA_CONSTRAINTS })).getVideoTracks();
    } catch (err) {
      this._say(this.t("statusMediaFailed", { reason: err.name }));
      return;
    }
    this.localStream.addTrack(track);
    this.cam.track = track;
    this.cameraOff = false;
    if (this.cam.trackId) {
      await s.replaceTrack(this.cam.trackId, track).catch((err) => this._error(err));
      await s.mute(this.cam.trackId, false).catch((err) => this._error(err));
    } else {
      await s.publish(new MediaStream([track])).catch((err) => this._error(err));
      this._learnPublished();
    }
    this._updateControls();
    this._renderTiles();
  }

  async _setAudioOnly(enabled) {
    if (this.session?.state !== "active" || enabled === this.audioOnly) return;
    this.audioOnly = enabled;
    this._updateControls();
    if (enabled) {
      this._cameraBeforeAudioOnly = !this.cameraOff || this._camWantedAtJoin;
      this._camWantedAtJoin = false;
      if (!this.cameraOff) await this._setCamera(false);
      for (const person of this.people.values()) {
        for (const entry of [person.camera, person.screen]) if (entry) await this._pause(entry.trackId, true);
      }
      this._say(this.t("statusAudioOnly"));
    } else {
      for (const trackId of [...this.pausedByUs]) await this._pause(trackId, false);
      if (this._cameraBeforeAudioOnly) await this._setCamera(true);
      this._say(this.t("statusVideoBack"));
    }
    this._renderTiles();
    this._fire("audio-only", { enabled });
  }

  async _pause(trackId, paused) {
    if (paused) this.pausedByUs.add(trackId);
    else this.pausedByUs.delete(trackId);
    try {
      await this.session.pauseVideo(trackId, paused);
    } catch (err) {
      if (err.code !== "not_found") this._error(err);
    }
  }

  async _toggleShare() {
    const s = this.session;
    if (s?.state !== "active") return;
    if (this.share) {
      const { stream, trackIds } = this.share;
      this.share = null;
      stream.getTracks().forEach((track) => track.stop());
      for (const trackId of trackIds) await s.unpublish(trackId).catch(() => {});
      this._updateControls();
      this._renderTiles();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    } catch (err) {
      if (err.name !== "NotAllowedError") this._say(this.t("statusShareFailed", { reason: err.name }));
      return;
    }
    this.share = { stream, trackIds: [] };
    const [video] = stream.getVideoTracks();
    video.contentHint = "detail";
    video.addEventListener("ended", () => { if (this.share?.stream === stream) this._toggleShare(); });
    this._updateControls();
    this._renderTiles();
    try {
      const published = await s.publish(stream, { screen: true });
      if (this.share?.stream === stream) this.share.trackIds = published.map((e) => e.trackId);
      this._say(this.t("statusYouShare"));
    } catch (err) {
      this._say(this.t("statusShareFailed", { reason: err.code ?? err.name }));
      stream.getTracks().forEach((track) => track.stop());
      if (this.share?.stream === stream) this.share = null;
      this._updateControls();
      this._renderTiles();
    }
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
    const time = new Date(msg.sent_at);
    const clock = Number.isNaN(time.getTime()) ? "" : time.toLocaleTimeString(this.language, { hour: "2-digit", minute: "2-digit" });
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

  // -- statistics: active speaker and connection quality ---------------------------

  /**
   * Active speaker: the audio energy each audio track carried since the last
   * poll (getStats `totalAudioEnergy` / `totalSamplesDuration`: the RMS of the
   * audio level over the interval, so short words are not missed between
   * polls); remote tracks from the subscriber connection, ours from the
   * publisher's `media-source`.
   */
  async _pollSpeakers() {
    const s = this.session;
    if (this.screen !== "call" || s?.state !== "active" || this._speakerBusy) return;
    this._speakerBusy = true;
    try {
      this._energy ??= new Map();
      const levels = new Map();
      const measure = (key, who, report) => {
        const energy = report.totalAudioEnergy;
        const duration = report.totalSamplesDuration;
        if (energy == null || duration == null) return;
        const prev = this._energy.get(key);
        this._energy.set(key, { energy, duration });
        if (!prev || duration <= prev.duration) return;
        const rms = Math.sqrt(Math.max(0, energy - prev.energy) / (duration - prev.duration));
        levels.set(who, Math.max(levels.get(who) ?? 0, rms));
      };
      const byMid = new Map([...s.remoteTracks.values()].map((info) => [info.mid, info]));
      for (const report of (await s.subscriberPc?.getStats())?.values() ?? []) {
        if (report.type !== "inbound-rtp" || report.kind !== "audio") continue;
        const info = byMid.get(report.mid);
        if (info && info.source === "microphone") measure(`in:${report.id}`, info.participantId, report);
      }
      const mic = this.mic?.track;
      for (const report of (await s.publisherPc?.getStats())?.values() ?? []) {
        if (report.type === "media-source" && report.kind === "audio" && report.trackIdentifier === mic?.id) {
          measure("self", "self", report);
        }
      }
      if (this.micMuted) levels.set("self", 0);
      let loudest = null;
      let max = SPEAKING_LEVEL;
      for (const [id, level] of levels) if (level > max) { max = level; loudest = id; }
      this.levels = levels;
      const now = performance.now();
      if (loudest) this._speaker = { id: loudest, until: now + 1500 };
      const active = this._speaker && this._speaker.until > now ? this._speaker.id : null;
      if (active !== this._activeSpeaker) {
        this._activeSpeaker = active;
        for (const tile of this._tiles?.querySelectorAll(".dc-tile") ?? []) {
          tile.classList.toggle("dc-speaking", tile.dataset.participant === active);
        }
      }
    } finally {
      this._speakerBusy = false;
    }
  }

  async _pollStats() {
    const s = this.session;
    if (this.screen !== "call" || s?.state !== "active") return;
    const byMid = new Map([...s.remoteTracks.values()].map((info) => [info.mid, info]));
    const sub = await s.subscriberPc?.getStats();
    let rtt = 0;
    const perPerson = new Map();
    for (const report of sub?.values() ?? []) {
      if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") {
        rtt = report.currentRoundTripTime ?? rtt;
      }
    }
    for (const report of sub?.values() ?? []) {
      if (report.type !== "inbound-rtp") continue;
      const info = byMid.get(report.mid);
      const person = info && this.people.get(info.participantId);
      if (!person) continue;
      const prev = person.loss.get(report.ssrc) ?? { lost: 0, received: 0 };
      const lost = Math.max(0, (report.packetsLost ?? 0) - prev.lost);
      const received = Math.max(0, (report.packetsReceived ?? 0) - prev.received);
      person.loss.set(report.ssrc, { lost: report.packetsLost ?? 0, received: report.packetsReceived ?? 0 });
      const agg = perPerson.get(person) ?? { lost: 0, received: 0, jitter: 0 };
      agg.lost += lost;
      agg.received += received;
      agg.jitter = Math.max(agg.jitter, report.jitter ?? 0);
      perPerson.set(person, agg);
    }
    for (const [person, agg] of perPerson) {
      if (agg.received + agg.lost === 0) continue; // muted or paused: nothing to judge
      const loss = agg.lost / (agg.lost + agg.received);
      person.quality = qualityLevel({ loss, jitter: agg.jitter, rtt });
      person.metrics = { loss, jitter: agg.jitter, rtt };
    }
    // our own uplink, as the server reports it back (RTCP receiver reports)
    const pub = await s.publisherPc?.getStats();
    let selfLoss = 0;
    let selfJitter = 0;
    let selfRtt = 0;
    let seen = false;
    for (const report of pub?.values() ?? []) {
      if (report.type === "remote-inbound-rtp") {
        seen = true;
        selfLoss = Math.max(selfLoss, report.fractionLost ?? 0);
        selfJitter = Math.max(selfJitter, report.jitter ?? 0);
        selfRtt = Math.max(selfRtt, report.roundTripTime ?? 0);
      } else if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") {
        selfRtt = Math.max(selfRtt, report.currentRoundTripTime ?? 0);
        seen = true;
      }
    }
    if (seen) {
      this.self.quality = qualityLevel({ loss: selfLoss, jitter: selfJitter, rtt: selfRtt });
      this.self.metrics = { loss: selfLoss, jitter: selfJitter, rtt: selfRtt };
    }
    for (const tile of this._tiles?.querySelectorAll(".dc-tile") ?? []) this._renderQuality(tile);
    this._renderHeaderQuality();
  }

  // -- rendering ----------------------------------------------------------------------

  _role(role) { return role ? this.t(`role_${role}`) : ""; }

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
    const canRejoin = this.token && reason !== "denied" && !["token_expired", "token_invalid", "unknown_issuer", "no_token"].includes(err?.code);
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
    this._stage = h("div", { class: "dc-stage" }, this._spotlight, this._alone, this._tiles);
    // side panel: waiting room (admitters) and chat
    this._waitingSection = h("section", { class: "dc-waiting", aria: { labelledby: "dc-waiting-title" }, hidden: true });
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
    this._side = h("aside", { class: "dc-side" }, this._waitingSection, this._chatSection);
    this._controls = h("div", { class: "dc-controls", role: "toolbar", aria: { label: t("controlsLabel") } });
    replace(this._body, h("div", { class: "dc-call" }, this._stage, this._side, this._controls));
    this._buildControls();
    this._renderTiles();
    this._renderWaiting();
    this._renderHeaderQuality();
  }

  _buildControls() {
    const button = (action, onclick) => h("button", {
      type: "button", class: "dc-button dc-control", dataset: { action }, onclick,
    });
    this._buttons = {
      mic: button("mic", () => this._setMicMuted(!this.micMuted)),
      camera: button("camera", () => this._setCamera(this.cameraOff)),
      share: button("share", () => this._toggleShare()),
      audioOnly: button("audio-only", () => this._setAudioOnly(!this.audioOnly)),
      chat: button("chat", () => this._toggleChat()),
      leave: button("leave", () => this.leave()),
    };
    this._buttons.leave.classList.add("dc-danger");
    this._buttons.chat.setAttribute("aria-controls", "dc-chat");
    replace(this._controls, ...Object.values(this._buttons).slice(0, -1), this._recording.control,
      this._buttons.leave);
    this._recording.render();
    this._updateControls();
  }

  _updateControls() {
    const b = this._buttons;
    if (!b || this.screen !== "call") return;
    const t = this.t;
    const active = this.session?.state === "active";
    const set = (btn, iconName, text, label, pressed = null, disabled = false) => {
      replace(btn, icon(iconName), h("span", { class: "dc-label" }, text));
      btn.setAttribute("aria-label", label);
      if (pressed === null) btn.removeAttribute("aria-pressed");
      else btn.setAttribute("aria-pressed", String(pressed));
      btn.disabled = disabled;
    };
    set(b.mic, this.micMuted ? "micOff" : "mic", t(this.micMuted ? "unmute" : "mute"),
      t(this.micMuted ? "unmuteLabel" : "muteLabel"), this.micMuted, !this.mic || !active);
    set(b.camera, this.cameraOff ? "cameraOff" : "camera", t(this.cameraOff ? "cameraOn" : "cameraOff"),
      t(this.cameraOff ? "cameraOnLabel" : "cameraOffLabel"), this.cameraOff, !this.cam || !active || this.audioOnly);
    const canShare = Boolean(navigator.mediaDevices?.getDisplayMedia) && this.session?.joined?.participant.grants?.publish;
    set(b.share, "screen", t(this.share ? "stopShare" : "share"), t(this.share ? "stopShareLabel" : "shareLabel"),
      Boolean(this.share), !canShare || !active);
    set(b.audioOnly, this.audioOnly ? "video" : "audio", t(this.audioOnly ? "videoBack" : "audioOnly"),
      t(this.audioOnly ? "videoBackLabel" : "audioOnlyLabel"), this.audioOnly, !active);
    set(b.chat, "chat", t("chat"), t(this.chatOpen ? "chatHide" : "chatLabel"));
    b.chat.setAttribute("aria-expanded", String(this.chatOpen));
    if (this.unread && !this.chatOpen) {
      b.chat.append(h("span", { class: "dc-badge" }, String(this.unread)));
      b.chat.setAttribute("aria-label", `${t("chatLabel")} (${t("chatUnread", { count: this.unread })})`);
    }
    set(b.leave, "leave", t("leave"), t("leaveLabel"));
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

  _updateSide() {
    if (!this._side) return;
    const open = !this._waitingSection.hidden || !this._chatSection.hidden;
    this._side.hidden = !open;
    this._body.querySelector(".dc-call")?.classList.toggle("dc-with-side", open);
  }

  _renderHeaderQuality() {
    const q = this.self.quality;
    const text = this.t(q ? `quality${q[0].toUpperCase()}${q.slice(1)}` : "qualityUnknown");
    replace(this._headerInfo, this.screen === "call" ? this._qualityBadge(q, text) : null);
  }

  _qualityBadge(level, text) {
    return h("span", { class: "dc-quality", dataset: { level: level ?? "unknown" }, role: "img", aria: { label: text }, title: text },
      h("span", { class: "dc-bar" }), h("span", { class: "dc-bar" }), h("span", { class: "dc-bar" }));
  }

  _renderQuality(tile) {
    const id = tile.dataset.participant;
    const q = id === "self" ? this.self.quality : this.people.get(id)?.quality;
    const slot = tile.querySelector(".dc-quality-slot");
    if (!slot || slot.dataset.level === (q ?? "unknown")) return;
    slot.dataset.level = q ?? "unknown";
    const text = this.t(q ? `quality${q[0].toUpperCase()}${q.slice(1)}` : "qualityUnknown");
    replace(slot, this._qualityBadge(q, text));
  }

  /** (Re)build every tile and the spotlight; cheap enough for a consult's few people. */
  _renderTiles() {
    if (this.screen !== "call" || !this._tiles) return;
    const t = this.t;
    const me = this.session?.joined?.participant;
    const reconnecting = this.session?.state === "reconnecting";
    const tiles = [];
    const selfVideo = !this.cameraOff && this.cam?.track ? this.cam.track : null;
    tiles.push(this._tile({
      id: "self", name: t("youName", { name: me?.name ?? "" }), initialsOf: me?.name, role: me?.role,
      video: selfVideo, mirror: true,
      micOff: this.micMuted, note: this.cameraOff ? (this.audioOnly ? t("videoPausedAudioOnly") : t("cameraIsOff")) : null,
    }));
    const screens = [];
    if (this.share) {
      screens.push({ id: "self-screen", name: t("screenOf", { name: t("you") }), video: this.share.stream.getVideoTracks()[0] });
    }
    for (const [id, person] of this.people) {
      const { info } = person;
      const producers = this.session.participants.get(id)?.producers ?? info.producers ?? [];
      const camMuted = producers.find((p) => p.source === "camera")?.muted;
      const micMuted = producers.find((p) => p.source === "microphone")?.muted;
      const cameraId = person.camera?.trackId;
      let note = null;
      if (cameraId && this.pausedByServer.has(cameraId)) note = t("videoPausedBandwidth");
      else if (cameraId && this.pausedByUs.has(cameraId)) note = t("videoPausedAudioOnly");
      else if (camMuted || !person.camera) note = producers.some((p) => p.source === "camera") ? t("cameraIsOff") : null;
      const video = person.camera && !note ? person.camera.track : null;
      tiles.push(this._tile({ id, name: info.name, role: info.role, video, micOff: micMuted, note }));
      if (person.screen) {
        const sid = person.screen.trackId;
        const paused = this.pausedByUs.has(sid) || this.pausedByServer.has(sid);
        screens.unshift({
          id: `${id}-screen`, name: t("screenOf", { name: info.name }), video: paused ? null : person.screen.track,
          note: paused ? (this.pausedByServer.has(sid) ? t("videoPausedBandwidth") : t("videoPausedAudioOnly")) : null,
        });
      }
    }
    replace(this._tiles, tiles);
    this._alone.hidden = this.people.size > 0 || reconnecting;
    const spotlight = screens[0];
    replace(this._spotlight, spotlight ? this._tile({ ...spotlight, screen: true }) : null);
    this._stage.classList.toggle("dc-has-screen", Boolean(spotlight));
    this._tiles.dataset.count = String(tiles.length);
    for (const tile of this._tiles.querySelectorAll(".dc-tile")) {
      tile.classList.toggle("dc-speaking", tile.dataset.participant === this._activeSpeaker);
    }
  }

  _updateTile() { this._renderTiles(); }

  _tile({ id, name, initialsOf = name, role, video, mirror = false, micOff = false, note = null, screen = false }) {
    const figure = h("figure", {
      class: screen ? "dc-tile dc-screen" : "dc-tile", role: screen ? null : "listitem",
      dataset: { participant: screen ? id.replace(/-screen$/, "") : id, kind: screen ? "screen" : "camera" },
    });
    if (video) {
      // keep the <video> of a track across re-renders (no flicker, playback continues)
      this._videos ??= new WeakMap();
      let el = this._videos.get(video);
      if (!el) {
        el = h("video", { class: "dc-video", autoplay: true, playsInline: true, muted: true });
        el.srcObject = new MediaStream([video]);
        this._videos.set(video, el);
      }
      el.dataset.trackKind = screen ? "screen" : "camera";
      el.classList.toggle("dc-mirror", mirror);
      figure.append(el);
      el.play?.().catch(() => {});
    } else {
      figure.append(h("div", { class: "dc-avatar", aria: { hidden: "true" } }, initials(initialsOf)));
    }
    if (note) figure.append(h("p", { class: "dc-note" }, note));
    const caption = h("figcaption", { class: "dc-caption" },
      micOff ? h("span", { class: "dc-mic-off", role: "img", aria: { label: this.t("micIsOff") } }, icon("micOff")) : null,
      h("span", { class: "dc-name" }, name),
      role && !screen ? h("span", { class: "dc-role" }, this._role(role)) : null);
    figure.append(caption);
    if (!screen) {
      const slot = h("span", { class: "dc-quality-slot" });
      figure.append(slot);
      this._renderQuality(figure);
    }
    return figure;
  }
}

if (!customElements.get("digiclinic-consult")) customElements.define("digiclinic-consult", DigiclinicConsult);
