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
 * `connection_failed`, a RTCPeerConnection goes `failed`, or the server stops
 * answering the application-level `ping`, the session opens a new WebSocket
 * with the same token (after a growing, jittered delay), joins again (a new
 * participant id; back in the lobby if our role waits there), and republishes
 * the same local tracks with their mute state. Remote tracks end with
 * `track-removed` and arrive again with `track`. Refused tokens, `denied` and
 * running out of attempts end the session (`closed`).
 */

export const PROTOCOL_VERSION = 1;

/** A request refused by the server (its error `code`) or failed locally. */
export class DigiclinicError extends Error {
  constructor(code, message, reply = null) {
    super(`${code}: ${message}`);
    this.name = "DigiclinicError";
    this.code = code;
    this.reply = reply;
  }
}

/** `ws[s]://host:port/ws?v=1` from a ws(s) or http(s) URL. */
export function websocketUrl(url) {
  const u = new URL(url, globalThis.location?.href);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  if (u.pathname === "/") u.pathname = "/ws";
  if (!u.searchParams.has("v")) u.searchParams.set("v", String(PROTOCOL_VERSION));
  return u.href;
}

/** The protocol's `source` label for a local track, or null to leave it out. */
function sourceFor(kind, { camera = true, microphone = true, screen = false }) {
  if (kind === "video") return screen ? "screen_share" : camera ? "camera" : null;
  if (kind === "audio") return screen ? "screen_share_audio" : microphone ? "microphone" : null;
  return null;
}

const isScreen = (source) => source.startsWith("screen_share");
const kindOf = (source) => (source === "camera" || source === "screen_share" ? "video" : "audio");

/**
 * Join errors that another attempt with the same token cannot fix. (Not
 * `duplicate_identity` or `room_full`: our previous connection may still be
 * counted until the server notices it is gone.)
 */
const FATAL_JOIN_ERRORS = new Set([
  "token_invalid", "token_expired", "unknown_issuer", "wrong_room", "forbidden",
]);

const RECONNECT_DEFAULTS = { attempts: 10, delay: 500, maxDelay: 10000, heartbeat: 10000 };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Our own copy of a participant info (we update its `producers`). */
const copyInfo = (info) => ({ ...info, producers: (info.producers ?? []).map((t) => ({ ...t })) });

export class ConsultSession extends EventTarget {
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
   */
  constructor({ url, token, room, iceServers, iceTransportPolicy = "all",
                autoSubscribe = true, gatherTimeout = 5000, requestTimeout = 20000,
                reconnect = false } = {}) {
    super();
    if (!url || !token) throw new TypeError("ConsultSession needs a url and a token");
    if (!["all", "relay"].includes(iceTransportPolicy)) {
      throw new TypeError('iceTransportPolicy is "all" or "relay"');
    }
    Object.assign(this, { token, iceTransportPolicy, autoSubscribe, gatherTimeout, requestTimeout });
    this.url = websocketUrl(url);
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
      this.joined = await this._request("join", message);
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

  // -- publishing ----------------------------------------------------------

  /**
   * Publish the tracks of `stream`. By default its video is the camera and
   * its audio the microphone; `{camera: false}` / `{microphone: false}`
   * leaves one out, `{screen: true}` labels the stream a screen share.
   * Each call renegotiates the one publisher connection with a complete
   * offer. Resolves to the tracks added, as in `published`.
   */
  publish(stream, options = {}) {
    const items = [];
    for (const track of stream.getTracks()) {
      const source = sourceFor(track.kind, options);
      if (source) items.push({ track, kind: track.kind, source, stream, muted: false });
    }
    return this._onPublisher(() => this._publishItems(items));
  }

  /**
   * Add sending m-lines for `items` ({track or null, kind, source, stream,
   * muted}) and renegotiate; a null track sends nothing until replaceTrack().
   * Muted items are announced muted right after.
   */
  async _publishItems(items) {
    this._requireActive();
    if (items.length === 0) throw new TypeError("publish: no track of the stream selected");
    const pc = (this.publisherPc ??= this._createPc("publisher"));
    const added = items.map((item) => ({
      ...item,
      transceiver: pc.addTransceiver(item.track ?? item.kind, {
        direction: "sendonly", streams: item.stream ? [item.stream] : [],
      }),
    }));
    const mids = [];
    try {
      await this._negotiatePublisher(pc, () => { // mids exist once the offer is set
        for (const { transceiver: { mid }, track, kind, source, stream, muted } of added) {
          if (track && muted) track.enabled = false;
          this._labels.set(mid, { source, track, kind, stream, muted: Boolean(muted) });
          mids.push(mid);
        }
      });
    } catch (err) { // rolled back: forget the new tracks
      mids.forEach((mid) => this._labels.delete(mid));
      added.forEach(({ transceiver }) => transceiver.stop());
      throw err;
    }
    const mine = [...this.published.values()].filter((entry) => mids.includes(entry.mid));
    for (const entry of mine) {
      if (entry.muted) await this._request("mute", { track_id: entry.trackId, muted: true });
    }
    return mine;
  }

  /** Stop publishing one of our tracks (its m-line becomes inactive). */
  unpublish(trackId) {
    return this._onPublisher(async () => {
      const entry = this.published.get(trackId);
      const pc = this.publisherPc;
      const transceiver = pc?.getTransceivers().find((t) => t.mid === entry?.mid);
      if (!transceiver) throw new DigiclinicError("not_found", `not publishing ${trackId}`);
      await transceiver.sender.replaceTrack(null);
      transceiver.direction = "inactive";
      await this._negotiatePublisher(pc);
    });
  }

  /** Mark one of our tracks muted for everyone (and stop sending its media). */
  async mute(trackId, muted = true) {
    const entry = this.published.get(trackId);
    if (entry) {
      // the server stops forwarding; we stop capturing
      if (entry.track) entry.track.enabled = !muted;
      entry.muted = muted;
      const label = this._labels.get(entry.mid);
      if (label) label.muted = muted; // kept when republishing after a reconnection
    }
    await this._request("mute", { track_id: trackId, muted });
  }

  /**
   * Send `track` (or nothing, with null) on one of our published m-lines,
   * without renegotiating: e.g. a new camera track after the camera was
   * switched off. A reconnection republishes the current one.
   */
  replaceTrack(trackId, track) {
    return this._onPublisher(async () => {
      const entry = this.published.get(trackId);
      const transceiver = this.publisherPc?.getTransceivers().find((t) => t.mid === entry?.mid);
      if (!transceiver) throw new DigiclinicError("not_found", `not publishing ${trackId}`);
      const label = this._labels.get(entry.mid);
      if (track && (label?.muted ?? entry.muted)) track.enabled = false;
      await transceiver.sender.replaceTrack(track);
      entry.track = track;
      if (label) label.track = track;
    });
  }

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

  /** Offer, wait for ICE gathering, send `publish`, apply `publish_answer`. */
  async _negotiatePublisher(pc, onOffer = () => {}) {
    await pc.setLocalDescription(); // an offer, in state "stable"
    onOffer();
    await this._gathered(pc);
    let reply;
    try {
      const tracks = [...this._labels].map(([mid, { source }]) => ({ mid, source }));
      reply = await this._request("publish", { sdp: pc.localDescription.sdp, tracks });
    } catch (err) {
      if (pc.signalingState === "have-local-offer") await pc.setLocalDescription({ type: "rollback" });
      throw err;
    }
    await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
    // `tracks` lists everything we publish now
    this.published = new Map(reply.tracks.map(({ mid, track_id: trackId, source }) => {
      const label = this._labels.get(mid);
      return [trackId, {
        trackId, mid, source, track: label?.track ?? null, muted: label?.muted ?? false,
      }];
    }));
  }

  // -- receiving -----------------------------------------------------------

  /** Answer a `subscriber_offer`: set it, answer, wait for ICE gathering, send. */
  async _answerSubscriber(offer) {
    if (this.state !== "active") return;
    if (!this.subscriberPc) {
      this.subscriberPc = this._createPc("subscriber");
      this.subscriberPc.ontrack = (event) => this._onRemoteTrack(event);
    }
    const pc = this.subscriberPc;
    const previous = this._offerMeta;
    this._offerMeta = new Map(offer.tracks.map((meta) => [meta.mid, meta]));
    for (const [mid, meta] of previous) {
      if (!this._offerMeta.has(mid)) this._removeRemoteTrack(meta.track_id);
    }
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp }); // fires `track`
    await pc.setLocalDescription(); // the answer
    await this._gathered(pc);
    await this._request("subscriber_answer", { sdp: pc.localDescription.sdp });
  }

  _onRemoteTrack({ track, transceiver }) {
    const meta = this._offerMeta.get(transceiver.mid);
    if (!meta) return; // not in the offer's `tracks`: nothing to label it with
    const key = `${meta.participant_id}/${isScreen(meta.source) ? "screen" : "camera"}`;
    let stream = this._streams.get(key);
    if (!stream) this._streams.set(key, (stream = new MediaStream()));
    stream.addTrack(track);
    const info = {
      track, stream, trackId: meta.track_id, participantId: meta.participant_id,
      kind: meta.kind, source: meta.source, mid: transceiver.mid,
    };
    this.remoteTracks.set(meta.track_id, info);
    this._emit("track", info);
  }

  _removeRemoteTrack(trackId) {
    const info = this.remoteTracks.get(trackId);
    if (!info) return;
    this.remoteTracks.delete(trackId);
    info.stream.removeTrack(info.track);
    this._emit("track-removed", info);
  }

  // -- ICE -----------------------------------------------------------------

  _createPc(name) {
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers, iceTransportPolicy: this.iceTransportPolicy,
      bundlePolicy: "max-bundle", // one transport: the server reads the first m-line's only
    });
    pc.addEventListener("connectionstatechange", () => {
      this._emit("connection-state", { pc: name, state: pc.connectionState });
      const current = pc === this.publisherPc || pc === this.subscriberPc;
      if (current && pc.connectionState === "failed") this._lost(`${name}_failed`);
    });
    return pc;
  }

  /**
   * No trickle ICE: we wait for gathering to complete and send one SDP with
   * all our candidates. The server does not trickle either, so each
   * negotiation is one round trip and no `ice_candidate` can race ahead of
   * the `publish` that creates the server's connection. Host candidates take
   * milliseconds, STUN/TURN (policy "relay") one round trip to that server;
   * `gatherTimeout` bounds a server that never answers (we then send what we
   * have). Renegotiations reuse the bundled transport and do not wait.
   */
  _gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      const check = () => { if (pc.iceGatheringState === "complete") finish(); };
      const timer = setTimeout(finish, this.gatherTimeout);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  _learnIceServers(servers) {
    if (!this._iceFromServer || !Array.isArray(servers)) return;
    // keep the RTCIceServer members only (the server adds e.g. `ttl`)
    this.iceServers = servers.map(({ urls, username, credential }) =>
      Object.fromEntries(Object.entries({ urls, username, credential }).filter(([, v]) => v != null)));
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

  // -- signalling ----------------------------------------------------------

  _connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this._ws = ws;
      ws.onopen = () => resolve();
      // before `open` this fails the join; afterwards `close` follows and shuts down
      ws.onerror = () => reject(new DigiclinicError("connect_failed", `cannot connect to ${this.url}`));
      ws.onmessage = (event) => this._onMessage(event.data);
      ws.onclose = () => {
        if (ws !== this._ws) return; // an earlier connection, already replaced
        if (this._reconnecting) { // fail the attempt in progress; the loop retries
          reject(new DigiclinicError("connect_failed", `cannot connect to ${this.url}`));
          this._failPending(new DigiclinicError("disconnected", "the connection closed"));
        } else if (this.reconnect && !this._leaving && ["active", "lobby"].includes(this.state)) {
          this._lost("disconnected");
        } else {
          this._shutdown(this.state === "denied" ? "denied" : "disconnected");
        }
      };
    });
  }

  _failPending(error) {
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(error);
    }
    this._pending.clear();
    this._rejoinAdmission?.reject(error);
    this._rejoinAdmission = null;
  }

  // -- reconnecting --------------------------------------------------------

  /** The connection is lost: reconnect if we may, else end the session. */
  _lost(reason) {
    if (!this.reconnect || this._leaving) return;
    if (this._reconnecting || !["active", "lobby"].includes(this.state)) return;
    this._reconnectLoop(reason).catch((err) => {
      this._emit("error", { code: err.code ?? "reconnect_failed", message: err.message });
      this._shutdown("reconnect_failed");
    });
  }

  /** Tear the old connection down, keeping what we publish and the roster's absence. */
  _dropConnection() {
    this._generation += 1;
    this._stopHeartbeat();
    const ws = this._ws;
    if (ws) {
      ws.onopen = ws.onerror = ws.onmessage = ws.onclose = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000);
    }
    this._ws = null;
    this._failPending(new DigiclinicError("reconnecting", "the connection was lost"));
    for (const pc of [this.publisherPc, this.subscriberPc]) pc?.close();
    this.publisherPc = this.subscriberPc = null;
    for (const trackId of [...this.remoteTracks.keys()]) this._removeRemoteTrack(trackId);
    this._offerMeta = new Map();
    this._streams = new Map();
    this._publisherChain = Promise.resolve();
    this._subscriberChain = Promise.resolve();
  }

  async _reconnectLoop(reason) {
    this._reconnecting = true;
    // what to publish again: our current tracks, as labelled, with their mute state
    const republish = [...this.published.values()].map((entry) => {
      const label = this._labels.get(entry.mid) ?? {};
      const track = entry.track?.readyState === "live" ? entry.track : null;
      return {
        track, kind: label.kind ?? kindOf(entry.source), source: entry.source,
        stream: label.stream ?? null, muted: label.muted ?? entry.muted ?? false,
      };
    }).filter((item) => item.track || item.source === "camera" || item.source === "microphone");
    this.published = new Map();
    this._labels = new Map();
    const { attempts, delay, maxDelay } = this.reconnect;
    try {
      for (let attempt = 1; ; attempt += 1) {
        this._dropConnection();
        this.participants = new Map();
        this.state = "reconnecting";
        const wait = Math.min(maxDelay, delay * 2 ** (attempt - 1)) * (0.75 + Math.random() / 2);
        this._emit("reconnecting", { attempt, delay: Math.round(wait), reason });
        await sleep(wait);
        if (this.state !== "reconnecting") return; // left meanwhile
        try {
          await this._rejoin(republish);
          this._emit("reconnected", { joined: this.joined, attempts: attempt });
          return;
        } catch (err) {
          if (this.state === "closed" || this.state === "denied") return;
          if (FATAL_JOIN_ERRORS.has(err.code) || attempt >= attempts) throw err;
          reason = err.code ?? "failed";
        }
      }
    } finally {
      this._reconnecting = false;
    }
  }

  /** One reconnection attempt: connect, join, wait for admission if needed, republish. */
  async _rejoin(republish) {
    await this._connect();
    const message = { token: this.token, auto_subscribe: this.autoSubscribe };
    if (this.room) message.room = this.room;
    const joined = this._applyJoined(await this._request("join", message));
    this._startHeartbeat();
    if (joined.state === "lobby") {
      const waiting = new Promise((resolve, reject) => { this._rejoinAdmission = { resolve, reject }; });
      this._emit("lobby-wait", joined);
      await waiting;
    } else {
      this._admission?.resolve(joined);
      this._admission = null;
    }
    const generation = this._generation;
    if (republish.length && this.joined.participant.grants?.publish !== false) {
      await this._onPublisher(() => this._publishItems(republish), generation);
    }
  }

  _startHeartbeat() {
    this._stopHeartbeat();
    const every = this.reconnect?.heartbeat;
    if (!every) return;
    const generation = this._generation;
    this._heartbeatTimer = setInterval(() => {
      if (generation !== this._generation || this._ws?.readyState !== WebSocket.OPEN) return;
      this.ping(Math.max(2000, every * 0.6)).catch((err) => {
        if (err.code === "timeout" && generation === this._generation) this._lost("heartbeat_timeout");
      });
    }, every);
  }

  _stopHeartbeat() {
    clearInterval(this._heartbeatTimer);
    this._heartbeatTimer = null;
  }

  /** Send a message with a fresh `id`; resolves to the reply carrying it as `ref`. */
  _request(type, fields = {}, timeout = this.requestTimeout) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new DigiclinicError("closed", "not connected"));
    }
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new DigiclinicError("timeout", `no reply to ${type}`));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...fields, type, id }));
    });
  }

  _onMessage(data) {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (typeof msg?.type !== "string") return;
    this._emit("message", msg);
    const pending = msg.ref !== undefined ? this._pending.get(msg.ref) : undefined;
    if (pending) { // a reply: settle the request
      this._pending.delete(msg.ref);
      clearTimeout(pending.timer);
      if (msg.type === "error") pending.reject(new DigiclinicError(msg.code, msg.message, msg));
      else pending.resolve(msg);
      return;
    }
    this._updateState(msg);
    this._emit(msg.type.replaceAll("_", "-"), msg);
    if (msg.type === "admitted") {
      this._admission?.resolve(msg);
      this._admission = null;
      this._rejoinAdmission?.resolve(msg);
      this._rejoinAdmission = null;
    } else if (msg.type === "connection_failed") {
      this._lost(`${msg.pc}_failed`);
    } else if (msg.type === "denied") {
      this._shutdown("denied");
    } else if (msg.type === "room_closed") {
      this._shutdown("room_closed");
    } else if (msg.type === "subscriber_offer") {
      const generation = this._generation;
      this._subscriberChain = this._subscriberChain
        .then(() => generation === this._generation && this._answerSubscriber(msg))
        .catch((err) => {
          // we left or reconnected meanwhile
          if (this.state !== "active" || generation !== this._generation) return;
          this._emit("error", {
            code: err.code ?? "subscriber_failed", message: `subscriber answer: ${err.message}`,
          });
        });
    }
  }

  /** Keep `state`, `participants` and `remoteTracks` up to date before emitting. */
  _updateState(msg) {
    const who = this.participants.get(msg.participant_id);
    switch (msg.type) {
      case "admitted":
        this.state = "active";
        this._learnIceServers(msg.ice_servers);
        this._setRoster(msg.participants);
        break;
      case "participant_joined":
        this.participants.set(msg.participant.id, copyInfo(msg.participant));
        break;
      case "participant_left":
        this.participants.delete(msg.participant_id);
        break;
      case "track_published":
        who?.producers.push({ ...msg.track });
        break;
      case "track_unpublished":
        if (who) who.producers = who.producers.filter((t) => t.id !== msg.track_id);
        this._removeRemoteTrack(msg.track_id);
        break;
      case "track_muted": {
        const track = who?.producers.find((t) => t.id === msg.track_id);
        if (track) track.muted = msg.muted;
        break;
      }
    }
  }

  _setRoster(participants = []) {
    this.participants = new Map(participants.map((p) => [p.id, copyInfo(p)]));
  }

  _requireActive() {
    if (this.state === "lobby") throw new DigiclinicError("not_admitted", "waiting in the lobby");
    if (this.state !== "active") throw new DigiclinicError("not_joined", "join first");
  }

  _onPublisher(task, generation = this._generation) {
    const run = this._publisherChain.then(() => {
      if (generation !== this._generation) {
        throw new DigiclinicError("reconnecting", "the connection was replaced");
      }
      return task();
    });
    this._publisherChain = run.catch(() => {});
    return run;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
