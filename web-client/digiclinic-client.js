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
 * - `message`: every server message, raw; `closed`: {reason}, once, at the end.
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
function websocketUrl(url) {
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
   */
  constructor({ url, token, room, iceServers, iceTransportPolicy = "all",
                autoSubscribe = true, gatherTimeout = 5000, requestTimeout = 20000 } = {}) {
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

    // Read-only for callers.
    this.state = "new"; // new, connecting, lobby, active; then closed or denied
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
    const joined = this.joined;
    this.participantId = joined.participant.id;
    this.room = joined.room;
    this.state = joined.state;
    this._learnIceServers(joined.ice_servers);
    this._setRoster(joined.participants);
    if (this.state === "lobby") this._emit("lobby-wait", joined);
    else this._admission?.resolve(joined); // admitted() called while joining
    return joined;
  }

  /**
   * Resolves once we are active: at once after a direct join (to `joined`),
   * otherwise to the `admitted` event. Rejects when denied or closed.
   */
  admitted() {
    if (this.state === "active") return Promise.resolve(this.joined);
    if (this.state !== "lobby" && this.state !== "connecting") {
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
    return this._onPublisher(async () => {
      this._requireActive();
      const pc = (this.publisherPc ??= this._createPc("publisher"));
      const added = [];
      for (const track of stream.getTracks()) {
        const source = sourceFor(track.kind, options);
        if (!source) continue;
        const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
        added.push({ transceiver, track, source });
      }
      if (added.length === 0) throw new TypeError("publish: no track of the stream selected");
      const mids = [];
      try {
        await this._negotiatePublisher(pc, () => { // mids exist once the offer is set
          for (const { transceiver: { mid }, track, source } of added) {
            this._labels.set(mid, { source, track });
            mids.push(mid);
          }
        });
      } catch (err) { // rolled back: forget the new tracks
        mids.forEach((mid) => this._labels.delete(mid));
        added.forEach(({ transceiver }) => transceiver.stop());
        throw err;
      }
      return [...this.published.values()].filter((entry) => mids.includes(entry.mid));
    });
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
    if (entry) entry.track.enabled = !muted; // the server stops forwarding; we stop capturing
    await this._request("mute", { track_id: trackId, muted });
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
    this.published = new Map(reply.tracks.map(({ mid, track_id: trackId, source }) => [
      trackId, { trackId, mid, source, track: this._labels.get(mid)?.track ?? null },
    ]));
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
    if (this.joined && this._ws?.readyState === WebSocket.OPEN) {
      await this._request("leave", {}, 3000).catch(() => {});
    }
    this._shutdown("left");
  }

  _shutdown(reason) {
    if (this.state === "closed" || this.state === "denied") return;
    this.state = reason === "denied" ? "denied" : "closed";
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
      ws.onclose = () => this._shutdown(this.state === "denied" ? "denied" : "disconnected");
    });
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
    } else if (msg.type === "denied") {
      this._shutdown("denied");
    } else if (msg.type === "room_closed") {
      this._shutdown("room_closed");
    } else if (msg.type === "subscriber_offer") {
      this._subscriberChain = this._subscriberChain
        .then(() => this._answerSubscriber(msg))
        .catch((err) => {
          if (this.state !== "active") return; // we left meanwhile
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

  _onPublisher(task) {
    const run = this._publisherChain.then(task);
    this._publisherChain = run.catch(() => {});
    return run;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
