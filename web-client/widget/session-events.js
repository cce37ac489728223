// The <digiclinic-consult> widget's reactions to its ConsultSession's events:
// people joining and leaving, remote tracks arriving and ending, paused
// video, and a lost connection being restored. A mixin of the element
// (digiclinic-consult.js); the state it updates lives on the element.

import { h } from "./dom.js";

export const SessionEvents = (Base) => class SessionEvents extends Base {
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
    on("quality", (msg) => this._serverQuality(msg));
    on("publisher-link", ({ participant_id: id, weak }) => this._publisherLink(id, weak));
    on("participant-audio-only", () => this._renderTiles());
    on("participant-on-hold", ({ participant_id: id, enabled }) => this._personOnHold(id, enabled));
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

  /** A specialist put the consultation on hold (busy in another room) or came back. */
  _personOnHold(id, enabled) {
    const name = this.people.get(id)?.info.name;
    this._renderTiles();
    if (name) this._say(this.t(enabled ? "onHoldBanner" : "statusBack", { name }));
  }

  _personLeft(id, reason) {
    const person = this.people.get(id);
    if (!person) return;
    this.people.delete(id);
    for (const key of ["audio", "screenAudio"]) person[key]?.element.remove();
    this.weakUplinks.delete(id);
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

  /**
   * The server paused (or resumed) a video we receive. Our own `pause_video`
   * (reason `subscriber`) is shown by audio-only mode; `bandwidth` means our
   * link cannot carry even the lowest layer: the tile says so until resumed.
   */
  _trackPaused(trackId, paused, reason) {
    if (reason !== "subscriber") {
      const name = this._ownerOf(trackId)?.info.name ?? "";
      if (paused) {
        const known = this.pausedByServer.get(trackId) === reason;
        this.pausedByServer.set(trackId, reason);
        if (!known) {
          this._say(reason === "bandwidth" ? this.t("statusVideoPausedWeak", { name }) : this.t("videoPausedBandwidth"));
        }
      } else if (this.pausedByServer.delete(trackId)) {
        this._say(this.t("statusVideoResumed", { name }));
      }
    }
    this._renderTiles();
  }

  /**
   * The server says a remote participant's own uplink is weak (its camera
   * arrives at a few frames a second, or not at all): its tile is dimmed
   * with "Amina's connection is weak" instead of a stale frame shown as live.
   */
  _publisherLink(id, weak) {
    const name = this.people.get(id)?.info.name ?? "";
    if (weak && !this.weakUplinks.has(id)) {
      this.weakUplinks.add(id);
      this._say(this.t("peerConnectionWeak", { name }));
    } else if (!weak && this.weakUplinks.delete(id)) {
      this._say(this.t("statusPeerConnectionBack", { name }));
    }
    this._renderTiles();
  }

  /** The participant view whose camera or screen is `trackId`. */
  _ownerOf(trackId) {
    for (const person of this.people.values()) {
      if (person.camera?.trackId === trackId || person.screen?.trackId === trackId) return person;
    }
    return null;
  }

  _reconnecting({ attempt, reason }) {
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
    this.weakUplinks.clear();
    this._banner(this.t("statusReconnecting"));
    if (attempt === 1) this._say(this.t("statusReconnecting"));
    this._updateControls();
    this._renderTiles();
    this._renderWaiting();
    this._fire("reconnecting", { attempt, reason });
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
    if (this.audioOnly) await s.setAudioOnly(true).catch((err) => this._error(err));
    const mic = entry(this.mic?.trackId);
    if (mic && mic.muted !== this.micMuted) await s.mute(mic.trackId, this.micMuted).catch((err) => this._error(err));
    const cam = entry(this.cam?.trackId);
    if (cam && cam.muted !== this.cameraOff) await s.mute(cam.trackId, this.cameraOff).catch((err) => this._error(err));
    this._updateControls();
    this._renderTiles();
  }
};
