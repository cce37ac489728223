// The call's reactions to its ConsultSession's events: people joining and
// leaving, remote tracks arriving and ending, paused video, a participant's
// weak uplink, the lobby, the chat, and a lost connection being restored.
// It wires the session to the widget's parts (stage, waiting list, chat,
// quality, local media); the state it changes is the call state's.

import { h } from "./dom.js";

/** @typedef {import("../digiclinic-client.js").ConsultSession} ConsultSession */
/** @typedef {import("./call-state.js").CallState} CallState */
/** @typedef {import("./ui.js").WidgetUi} WidgetUi */

export class CallEvents {
  /**
   * @param {object} parts
   * @param {WidgetUi} parts.ui
   * @param {() => CallState} parts.call
   * @param {() => ConsultSession|null} parts.session the current session (events of an older one are ignored)
   * @param {() => string} parts.screen the element's screen (lobby, call, …)
   * @param {import("./stage.js").Stage} parts.stage
   * @param {import("./lobby.js").WaitingList} parts.waiting
   * @param {import("./chat.js").ChatPanel} parts.chat
   * @param {import("./quality.js").QualityMonitor} parts.quality
   * @param {import("./local-media.js").LocalMedia} parts.media
   * @param {HTMLElement} parts.audioSink where the remote <audio> elements go
   * @param {() => void} parts.refresh draw the controls and the tiles again
   * @param {() => void} parts.showLobby draw our waiting screen again
   * @param {() => object} parts.joinedDetail the `joined` / `reconnected` event's detail
   * @param {(reason: string) => void} parts.end the call is over
   */
  constructor(parts) {
    this.parts = parts;
    this.ui = parts.ui;
  }

  get call() { return this.parts.call(); }

  /** Follow `session`'s events for as long as it is the current one. @param {ConsultSession} session */
  listen(session) {
    const { ui, stage, chat, quality, waiting } = this.parts;
    const on = (type, fn) => session.addEventListener(type, (e) => {
      if (session === this.parts.session()) fn(e.detail);
    });
    on("lobby-wait", () => {
      if (this.parts.screen() === "call") ui.banner(`${ui.t("statusReconnecting")} ${ui.t("lobbyTitle")}`);
    });
    on("participant-joined", ({ participant }) => this.personJoined(participant));
    on("participant-left", ({ participant_id: id, reason }) => this.personLeft(id, reason));
    on("track", (detail) => this.remoteTrack(detail));
    on("track-removed", (detail) => this.remoteTrackGone(detail));
    on("track-muted", ({ participant_id: id }) => { if (id !== session.participantId) stage.render(); });
    on("track-published", () => stage.render());
    on("track-paused", ({ track_id: trackId, paused, reason }) => this.trackPaused(trackId, paused, reason));
    on("quality", (msg) => quality.serverReport(msg));
    on("publisher-link", ({ participant_id: id, weak }) => this.publisherLink(id, weak));
    on("participant-audio-only", () => stage.render());
    on("participant-on-hold", ({ participant_id: id, enabled }) => this.personOnHold(id, enabled));
    on("chat", (msg) => chat.received(msg));
    on("lobby", ({ waiting: list }) => waiting.update(list));
    on("reconnecting", (detail) => this.reconnecting(detail));
    on("reconnected", () => this.reconnected());
    on("error", (detail) => ui.error(detail));
    // a refused join is reported by the element's join, with the server's error code
    on("closed", ({ reason }) => { if (reason !== "join_failed") this.parts.end(reason); });
  }

  personJoined(info) {
    const call = this.call;
    const key = `${info.name}|${info.role}`;
    const back = call.recentlyDropped.has(key);
    call.recentlyDropped.delete(key);
    call.person(info);
    this.parts.stage.render();
    this.ui.say(this.ui.t(back ? "statusBack" : "statusJoined", { name: info.name }));
    this.ui.fire("participant-joined", { participantId: info.id, name: info.name, role: info.role });
  }

  /** A specialist put the consultation on hold (busy in another room) or came back. */
  personOnHold(id, enabled) {
    const name = this.call.people.get(id)?.info.name;
    this.parts.stage.render();
    if (name) this.ui.say(this.ui.t(enabled ? "onHoldBanner" : "statusBack", { name }));
  }

  personLeft(id, reason) {
    const call = this.call;
    const person = call.people.get(id);
    if (!person) return;
    call.people.delete(id);
    for (const key of ["audio", "screenAudio"]) person[key]?.element.remove();
    call.weakUplinks.delete(id);
    if (reason === "disconnected") call.dropped(person);
    this.parts.stage.render();
    this.ui.say(this.ui.t(reason === "disconnected" ? "statusDropped" : "statusLeft", { name: person.info.name }));
    this.ui.fire("participant-left", {
      participantId: id, name: person.info.name, role: person.info.role, reason,
    });
  }

  /** Everyone the session knows about gets a view (after joining, after a reconnection). */
  syncRoster() {
    for (const info of this.parts.session().participants.values()) this.call.person(info);
  }

  remoteTrack({ track, trackId, participantId, kind, source, transceiver }) {
    const call = this.call;
    const session = this.parts.session();
    const info = session.participants.get(participantId) ?? { id: participantId, name: "", role: "" };
    const person = call.person(info);
    const stream = new MediaStream([track]);
    const receiver = session.subscriberPc?.getReceivers().find((r) => r.track === track) ?? transceiver?.receiver;
    if (kind === "audio") {
      const element = h("audio", { autoplay: true, dataset: { trackId } });
      element.srcObject = stream;
      this.parts.audioSink.append(element);
      const entry = { track, trackId, element, receiver };
      if (source === "screen_share_audio") person.screenAudio = entry;
      else person.audio = entry;
      return;
    }
    const entry = { track, trackId, stream, source };
    if (source === "screen_share") {
      person.screen = entry;
      this.ui.say(this.ui.t("statusSharing", { name: person.info.name }));
    } else {
      person.camera = entry;
    }
    if (call.audioOnly) this.parts.media.pause(trackId, true);
    this.parts.stage.render();
  }

  remoteTrackGone({ trackId, participantId }) {
    const call = this.call;
    const person = call.people.get(participantId);
    if (!person) return;
    for (const key of ["audio", "screenAudio", "camera", "screen"]) {
      if (person[key]?.trackId !== trackId) continue;
      person[key].element?.remove();
      person[key] = null;
    }
    call.pausedByUs.delete(trackId);
    call.pausedByServer.delete(trackId);
    this.parts.stage.render();
  }

  /**
   * The server paused (or resumed) a video we receive. Our own `pause_video`
   * (reason `subscriber`) is shown by audio-only mode; `bandwidth` means our
   * link cannot carry even the lowest layer: the tile says so until resumed.
   */
  trackPaused(trackId, paused, reason) {
    const call = this.call;
    const { ui } = this;
    if (reason !== "subscriber") {
      const name = call.ownerOf(trackId)?.info.name ?? "";
      if (paused) {
        const known = call.pausedByServer.get(trackId) === reason;
        call.pausedByServer.set(trackId, reason);
        if (!known) {
          ui.say(reason === "bandwidth" ? ui.t("statusVideoPausedWeak", { name }) : ui.t("videoPausedBandwidth"));
        }
      } else if (call.pausedByServer.delete(trackId)) {
        ui.say(ui.t("statusVideoResumed", { name }));
      }
    }
    this.parts.stage.render();
  }

  /**
   * The server says a remote participant's own uplink is weak (its camera
   * arrives at a few frames a second, or not at all): its tile is dimmed
   * with "Amina's connection is weak" instead of a stale frame shown as live.
   */
  publisherLink(id, weak) {
    const call = this.call;
    const name = call.people.get(id)?.info.name ?? "";
    if (weak && !call.weakUplinks.has(id)) {
      call.weakUplinks.add(id);
      this.ui.say(this.ui.t("peerConnectionWeak", { name }));
    } else if (!weak && call.weakUplinks.delete(id)) {
      this.ui.say(this.ui.t("statusPeerConnectionBack", { name }));
    }
    this.parts.stage.render();
  }

  reconnecting({ attempt, reason }) {
    const { ui } = this;
    const call = this.call;
    const screen = this.parts.screen();
    if (screen !== "call") {
      if (screen === "lobby") ui.banner(ui.t("statusReconnecting"));
      return;
    }
    for (const person of call.people.values()) {
      call.dropped(person);
      for (const key of ["audio", "screenAudio"]) person[key]?.element.remove();
    }
    call.people = new Map();
    call.waiting = [];
    call.pausedByUs.clear();
    call.pausedByServer.clear();
    call.weakUplinks.clear();
    ui.banner(ui.t("statusReconnecting"));
    if (attempt === 1) ui.say(ui.t("statusReconnecting"));
    this.parts.refresh();
    this.parts.waiting.render();
    ui.fire("reconnecting", { attempt, reason });
  }

  async reconnected() {
    const { ui } = this;
    ui.banner(null);
    if (this.parts.screen() === "lobby") { // we were still waiting: nothing to restore
      this.parts.showLobby();
      return;
    }
    this.parts.media.learnPublished();
    this.syncRoster();
    this.parts.refresh();
    this.parts.waiting.render();
    ui.say(ui.t("statusReconnected"));
    ui.fire("reconnected", this.parts.joinedDetail());
    await this.parts.media.reconcile();
  }
}
