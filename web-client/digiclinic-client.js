/**
 * digiclinic-client.js: a browser client for the digiclinic signalling
 * protocol, version 1 (docs/protocol.md is the contract).
 *
 * A plain ES module: no dependencies, no build step, no eval and no network
 * access except the digiclinic server's WebSocket, so it runs under a strict
 * Content-Security-Policy (script-src 'self').
 *
 *   const session = new ConsultSession({url: "wss://media.example/ws", token});
 *   session.addEventListener("track", (e) => attach(e.detail.track, e.detail.source));
 *   const joined = await session.join();
 *   if (joined.state === "lobby") await session.admitted();
 *   await session.publish(await navigator.mediaDevices.getUserMedia({video: true, audio: true}));
 *
 * Like the server, it uses two RTCPeerConnections: the *publisher* (our
 * tracks, we offer) and the *subscriber* (everyone else's, the server offers).
 *
 * Events (CustomEvent; the payload is `event.detail`):
 * - each server event, in kebab-case, detail = the message: `lobby`,
 *   `admitted`, `denied`, `participant-joined`, `participant-left`,
 *   `track-published`, `track-unpublished`, `track-muted`,
 *   `subscriber-offer`, `connection-failed`, `room-closed`;
 * - `error`: {code, message} of a server error that no awaited call
 *   receives (a reply error rejects its call instead) or of a failed
 *   subscriber negotiation;
 * - `lobby-wait`: the `joined` reply, when we were put in the lobby;
 * - `track` / `track-removed`: {track, stream, trackId, participantId,
 *   kind, source, mid} of a remote track; `stream` groups a participant's
 *   camera and microphone (or screen share video and audio);
 * - `connection-state`: {pc: "publisher"|"subscriber", state};
 * - `chat`, `track-paused`, `quality` (every ~2 s: the server's estimate of
 *   our downlink and the layer it forwards per video) and `publisher-layers`
 *   (server events, as above; `session.quality` keeps the latest `quality`);
 * - `layers-applied`: {trackId, layers: {rid: active}} once a
 *   `publisher_layers` request was applied to our camera's encodings;
 * - `audio-cap-applied`: {trackId, maxBitrate} once a `publisher_audio`
 *   request capped our microphone's Opus (maxBitrate null: lifted);
 * - `reconnecting`: {attempt, delay, reason} before each reconnection attempt
 *   and `reconnected`: {joined, attempts} once the call is restored (only
 *   with the `reconnect` option, below);
 * - `message`: every server message, raw; `closed`: {reason}, once, at the end.
 *
 * Reconnection (`reconnect: true` or `{attempts, delay, maxDelay, heartbeat}`):
 * when the WebSocket closes without our asking, the server reports
 * `connection_failed` or `reconnect` (its node is draining), a
 * RTCPeerConnection goes `failed`, or the server stops
 * answering the application-level `ping`, the session opens a new WebSocket
 * with the same token (after a growing, jittered delay) and, for a single-use
 * token, the `resume` secret of the first `joined` (docs/protocol.md), joins
 * again (a new participant id; back in the lobby if our role waits there), and republishes
 * the same local tracks with their mute state. (A `ping` unanswered while
 * other server messages keep arriving is not a lost connection: only a wait
 * with nothing at all from the server is, and while the server's media still
 * arrives, only the fourth such wait in a row.) Remote tracks end with
 * `track-removed` and arrive again with `track`. Refused tokens, `denied` and
 * running out of attempts end the session (`closed`).
 *
 * Clusters (docs/cluster.md): a `join` answered with a `redirect` error is
 * sent again, with the reply's ticket instead of the token, to the node the
 * reply names; reconnections start again from `url` (or the node a
 * `reconnect` event suggested, or `fallbackUrls` in turn).
 *
 * The session is split by responsibility: client/protocol.js (version,
 * errors, URL), client/signalling.js (WebSocket, requests, server events),
 * client/publisher.js, client/subscriber.js, client/peer.js (ICE) and
 * client/reconnect.js; this module joins them into ConsultSession.
 *
 * Simulcast: the camera is published as rid-based simulcast (client/simulcast.js:
 * rids q, h, f at 1/4, 1/2 and full resolution, lowest first; fewer layers
 * for small cameras), a screen share as one encoding. The server switches
 * each subscriber between layers; `publisher_layers` switches unused layers
 * off. Render size: `watchRenderSize(trackId, videoElement)` reports the size
 * at which we show a remote video (`track_settings`, client/render-size.js).
 */

import { PeerConnections } from "./client/peer.js";
import { DigiclinicError, websocketUrl } from "./client/protocol.js";
import { Publishing } from "./client/publisher.js";
import { RECONNECT_DEFAULTS, Reconnection } from "./client/reconnect.js";
import { RenderSizeReporter } from "./client/render-size.js";
import { Signalling } from "./client/signalling.js";
import { Receiving } from "./client/subscriber.js";

export { DigiclinicError, PROTOCOL_VERSION, websocketUrl } from "./client/protocol.js";

export class ConsultSession extends Signalling(Reconnection(Publishing(Receiving(PeerConnections(EventTarget))))) {
  /**
   * @param {object} options
   * @param {string} options.url  the server's WebSocket (or http) URL
   * @param {string} options.token  the join token (JWT) from the portal
   * @param {string} [options.room]  checked by the server against the token
   * @param {RTCIceServer[]} [options.iceServers]  default: the server's list
   *   from `joined`/`admitted` (TURN credentials)
   * @param {"all"|"relay"} [options.iceTransportPolicy]  for both connections
   * @param {boolean} [options.autoSubscribe]  receive everyone's tracks (default)
   * @param {number} [options.gatherTimeout]  ms to wait for ICE gathering
   * @param {number} [options.requestTimeout]  ms to wait for a reply
   * @param {boolean|object} [options.reconnect]  rejoin automatically after a
   *   lost connection (default false); an object sets `attempts` (10),
   *   `delay` (500 ms, doubled each attempt), `maxDelay` (10 s) and
   *   `heartbeat` (10 s between `ping`s; 0 disables them)
   * @param {boolean} [options.simulcast]  publish the camera as simulcast
   *   layers (default true); false sends one encoding
   * @param {string[]} [options.fallbackUrls]  other entry points of a cluster,
   *   tried in turn when reconnecting (the first node may be the one that died)
   * @param {string} [options.resume]  a single-use token's resume secret, from an
   *   earlier session's `resume` (its `joined`): a new session rejoins with it
   */
  constructor({ url, token, room, iceServers, iceTransportPolicy = "all",
                autoSubscribe = true, gatherTimeout = 5000, requestTimeout = 20000,
                reconnect = false, simulcast = true, fallbackUrls = [], resume = null } = {}) {
    super();
    if (!url || !token) throw new TypeError("ConsultSession needs a url and a token");
    if (!["all", "relay"].includes(iceTransportPolicy)) {
      throw new TypeError('iceTransportPolicy is "all" or "relay"');
    }
    Object.assign(this, { token, iceTransportPolicy, autoSubscribe, gatherTimeout, requestTimeout });
    this.url = websocketUrl(url);
    this.fallbackUrls = fallbackUrls.map((u) => websocketUrl(u));
    this.nodeUrl = null; // the node we are connected to (after redirects)
    this.resume = resume; // single-use tokens: the secret a rejoin presents (from `joined`)
    this._hint = null; // a node the server suggested for our next reconnection
    this.room = room ?? null;
    this.iceServers = iceServers ?? [];
    this._iceFromServer = iceServers === undefined; // then take the server's (TURN) list
    this.reconnect = reconnect ? { ...RECONNECT_DEFAULTS, ...(reconnect === true ? {} : reconnect) } : null;
    this.simulcast = simulcast !== false;

    // Read-only for callers.
    this.state = "new"; // new, connecting, lobby, active, reconnecting; then closed or denied
    this.joined = null; // the `joined` reply
    this.participantId = null;
    this.participants = new Map(); // other active participants: id -> info (with producers)
    this.remoteTracks = new Map(); // trackId -> the `track` event's detail
    this.published = new Map(); // our trackId -> {trackId, mid, source, track}
    this.publisherPc = null;
    this.subscriberPc = null;
    this.quality = null; // the latest `quality` event

    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // request id -> {resolve, reject, timer}
    this._offerMeta = new Map(); // mid -> track metadata of the latest subscriber_offer
    this._streams = new Map(); // "participant/camera|screen" -> MediaStream
    this._labels = new Map(); // our mid -> {source, track}
    this._audioPackets = new WeakMap(); // publisher pc -> packet_ms it was last answered for
    this._admission = null; // {promise, resolve, reject} while someone awaits admitted()
    // Negotiations of one connection never overlap: each waits for the previous.
    this._publisherChain = Promise.resolve();
    this._subscriberChain = Promise.resolve();
    // Reconnection: each connection attempt is a new generation; work queued
    // for an older one is dropped.
    this._generation = 0;
    this._reconnecting = false;
    this._rejoinAdmission = null; // {resolve, reject} while a rejoin waits in the lobby
    this._heartbeatTimer = null;
    this._lastMessageAt = -Infinity; // when the server's latest message came (performance.now())
    this._trackSettings = new Map(); // remote trackId -> the track_settings last sent
    this._settingsInFlight = []; // request ids of track_settings awaiting their reply
    this._trackSettingsUnsupported = false;
    this._renderSizes = null; // RenderSizeReporter, created on first use
  }

  // -- joining -------------------------------------------------------------

  /**
   * Connect and join; resolves to the `joined` reply (state "active" or
   * "lobby"). A refused join (e.g. `token_expired`) rejects with the
   * server's code and ends the session: retry with a new ConsultSession.
   */
  async join() {
    if (this.state !== "new") {
      throw new DigiclinicError("already_joined", "a session joins once: create a new one");
    }
    this.state = "connecting";
    try {
      await this._connect();
      const message = { token: this.token, auto_subscribe: this.autoSubscribe };
      if (this.room) message.room = this.room;
      if (this.resume) message.resume = this.resume;
      this.joined = await this._joinRoom(message);
    } catch (err) {
      this._shutdown("join_failed");
      throw err;
    }
    const joined = this._applyJoined(this.joined);
    if (this.state === "lobby") this._emit("lobby-wait", joined);
    else this._admission?.resolve(joined); // admitted() called while joining
    this._startHeartbeat();
    return joined;
  }

  _applyJoined(joined) {
    this.joined = joined;
    // single-use tokens: the server's resume secret, kept in memory only (never in a URL
    // or storage) and sent with the token when we rejoin after a lost connection
    if (typeof joined.resume === "string") this.resume = joined.resume;
    this.participantId = joined.participant.id;
    this.room = joined.room;
    this.state = joined.state;
    this._learnIceServers(joined.ice_servers);
    this._setRoster(joined.participants);
    return joined;
  }

  /**
   * Resolves once we are active: at once after a direct join (to `joined`),
   * otherwise to the `admitted` event. Rejects when denied or closed.
   */
  admitted() {
    if (this.state === "active") return Promise.resolve(this.joined);
    if (!["lobby", "connecting", "reconnecting"].includes(this.state)) {
      return Promise.reject(new DigiclinicError(this.state, "not waiting for admission"));
    }
    if (!this._admission) {
      const admission = (this._admission = {});
      admission.promise = new Promise((resolve, reject) => Object.assign(admission, { resolve, reject }));
    }
    return this._admission.promise;
  }

  /** Admit / deny a participant waiting in the lobby (needs the `admit` grant). */
  admit(participantId) { return this._request("admit", { participant_id: participantId }); }

  deny(participantId) { return this._request("deny", { participant_id: participantId }); }
  /** Send a chat message to everyone in the call (relayed, never stored). */
  chat(text) { return this._request("chat", { text }); }

  /** Tell the others we chose audio only (or no longer, with false): their tiles say so. */
  setAudioOnly(enabled = true) { return this._request("audio_only", { enabled }); }

  /** Tell the others this room is on hold (a specialist busy in another room), or no longer. */
  setOnHold(enabled = true) { return this._request("on_hold", { enabled }); }

  /** Stop (or resume, with false) receiving one remote video track. */
  pauseVideo(trackId, paused = true) {
    return this._request("pause_video", { track_id: trackId, paused });
  }

  /**
   * Tell the server the size, in device pixels, at which we show a remote
   * video (0x0: not visible), and whether the user pinned it: the server then
   * forwards no simulcast layer larger than needed and favours pinned videos
   * when bandwidth is short. Only changes are sent. Resolves to true once
   * acknowledged, false if the server does not know `track_settings`.
   */
  async setTrackSettings(trackId, { width = 0, height = 0, pinned = false } = {}) {
    const fields = {
      track_id: trackId, width: Math.max(0, Math.round(width) || 0),
      height: Math.max(0, Math.round(height) || 0), pinned: Boolean(pinned),
    };
    const key = `${fields.width}x${fields.height}${fields.pinned ? "/pinned" : ""}`;
    if (this._trackSettingsUnsupported) return false;
    if (this._trackSettings.get(trackId) === key) return true;
    this._trackSettings.set(trackId, key);
    const id = this._nextId; // the id _request gives it
    const reply = this._request("track_settings", fields);
    this._settingsInFlight.push(id);
    try {
      await reply;
      return true;
    } catch (err) {
      if (err.code === "unknown_type") { // an older server: stop asking
        this._trackSettingsUnsupported = true;
        return false;
      }
      if (this._trackSettings.get(trackId) === key) this._trackSettings.delete(trackId);
      throw err;
    } finally {
      this._settingsInFlight = this._settingsInFlight.filter((x) => x !== id);
    }
  }

  /**
   * A server that does not know a message type answers `unknown_type`
   * without `ref` (protocol.md): taken as the answer to our oldest
   * `track_settings` in flight, if any — the only request older servers lack.
   */
  _unreferencedError(msg) {
    if (msg.code !== "unknown_type" || this._settingsInFlight.length === 0) return false;
    const id = this._settingsInFlight.shift();
    const pending = this._pending.get(id);
    if (!pending) return false;
    this._pending.delete(id);
    clearTimeout(pending.timer);
    pending.reject(new DigiclinicError(msg.code, msg.message, msg));
    return true;
  }

  /**
   * Report the render size of `element` (the <video> showing remote video
   * `trackId`) whenever it changes: ResizeObserver and IntersectionObserver,
   * debounced 300 ms, times devicePixelRatio, 0x0 while it is hidden, off
   * screen or detached. Options `{pinned, hidden}`. Returns a watcher with
   * `setPinned(bool)`, `setHidden(bool)`, `refresh()` and `unwatch()`; it
   * ends by itself with the track.
   */
  watchRenderSize(trackId, element, options = {}) {
    this._renderSizes ??= new RenderSizeReporter((id, size) => this.setTrackSettings(id, size));
    return this._renderSizes.watch(trackId, element, options);
  }

  /** Measure every watched video again (e.g. after re-rendering the page). */
  refreshRenderSizes() { this._renderSizes?.refreshAll(); }

  /** Round-trip time of an application-level `ping`, in milliseconds. */
  async ping(timeout = this.requestTimeout) {
    const started = performance.now();
    await this._request("ping", {}, timeout);
    return performance.now() - started;
  }

  // -- leaving -------------------------------------------------------------

  /** Leave the room (telling the server when possible) and close everything. */
  async leave() {
    if (this.state === "closed" || this.state === "denied") return;
    this._leaving = true; // the server closes the WebSocket after `left`: no reconnection
    if (this.joined && this.state !== "reconnecting" && this._ws?.readyState === WebSocket.OPEN) {
      await this._request("leave", {}, 3000).catch(() => {});
    }
    this._shutdown("left");
  }

  _shutdown(reason) {
    if (this.state === "closed" || this.state === "denied") return;
    this.state = reason === "denied" ? "denied" : "closed";
    this._reconnecting = false;
    this._stopHeartbeat();
    this._rejoinAdmission?.reject(new DigiclinicError(this.state, reason));
    this._rejoinAdmission = null;
    for (const pc of [this.publisherPc, this.subscriberPc]) pc?.close();
    for (const trackId of [...this.remoteTracks.keys()]) this._removeRemoteTrack(trackId);
    this._renderSizes?.close();
    this._renderSizes = null;
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(new DigiclinicError("closed", "the session has ended"));
    }
    this._pending.clear();
    this._admission?.reject(new DigiclinicError(this.state, `not admitted: ${reason}`));
    this._admission = null;
    if (this._ws && this._ws.readyState <= WebSocket.OPEN) this._ws.close(1000);
    this._emit("closed", { reason });
  }

  _requireActive() {
    if (this.state === "lobby") throw new DigiclinicError("not_admitted", "waiting in the lobby");
    if (this.state !== "active") throw new DigiclinicError("not_joined", "join first");
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
