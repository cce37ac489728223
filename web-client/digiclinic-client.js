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
 * - `chat` and `track-paused` (server events, as above);
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
 * with the same token (after a growing, jittered delay), joins again (a new
 * participant id; back in the lobby if our role waits there), and republishes
 * the same local tracks with their mute state. Remote tracks end with
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
 */

import { PeerConnections } from "./client/peer.js";
import { DigiclinicError, websocketUrl } from "./client/protocol.js";
import { Publishing } from "./client/publisher.js";
import { RECONNECT_DEFAULTS, Reconnection } from "./client/reconnect.js";
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
   * @param {string[]} [options.fallbackUrls]  other entry points of a cluster,
   *   tried in turn when reconnecting (the first node may be the one that died)
   */
  constructor({ url, token, room, iceServers, iceTransportPolicy = "all",
                autoSubscribe = true, gatherTimeout = 5000, requestTimeout = 20000,
                reconnect = false, fallbackUrls = [] } = {}) {
    super();
    if (!url || !token) throw new TypeError("ConsultSession needs a url and a token");
    if (!["all", "relay"].includes(iceTransportPolicy)) {
      throw new TypeError('iceTransportPolicy is "all" or "relay"');
    }
    Object.assign(this, { token, iceTransportPolicy, autoSubscribe, gatherTimeout, requestTimeout });
    this.url = websocketUrl(url);
    this.fallbackUrls = fallbackUrls.map((u) => websocketUrl(u));
    this.nodeUrl = null; // the node we are connected to (after redirects)
    this._hint = null; // a node the server suggested for our next reconnection
    this.room = room ?? null;
    this.iceServers = iceServers ?? [];
    this._iceFromServer = iceServers === undefined; // then take the server's (TURN) list
    this.reconnect = reconnect ? { ...RECONNECT_DEFAULTS, ...(reconnect === true ? {} : reconnect) } : null;

    // Read-only for callers.
    this.state = "new"; // new, connecting, lobby, active, reconnecting; then closed or denied
    this.joined = null; // the `joined` reply
    this.participantId = null;
    this.participants = new Map(); // other active participants: id -> info (with producers)
    this.remoteTracks = new Map(); // trackId -> the `track` event's detail
    this.published = new Map(); // our trackId -> {trackId, mid, source, track}
    this.publisherPc = null;
    this.subscriberPc = null;

    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // request id -> {resolve, reject, timer}
    this._offerMeta = new Map(); // mid -> track metadata of the latest subscriber_offer
    this._streams = new Map(); // "participant/camera|screen" -> MediaStream
    this._labels = new Map(); // our mid -> {source, track}
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

  /** Stop (or resume, with false) receiving one remote video track. */
  pauseVideo(trackId, paused = true) {
    return this._request("pause_video", { track_id: trackId, paused });
  }

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
