/**
 * digiclinic-client.js: a browser client for the digiclinic signalling
 * protocol, version 1 (docs/protocol.md is the contract). A plain ES module:
 * no dependencies, no build step, no eval, no network access but the
 * server's WebSocket; it runs under a strict Content-Security-Policy.
 *
 *   const session = new ConsultSession({url: "wss://media.example/ws", token});
 *   session.addEventListener("track", (e) => attach(e.detail.track, e.detail.source));
 *   const joined = await session.join();
 *   if (joined.state === "lobby") await session.admitted();
 *   await session.publish(await navigator.mediaDevices.getUserMedia({video: true, audio: true}));
 *
 * docs/client-library.md is the manual: events, read-only properties,
 * reconnection, clusters, simulcast, and the structure. ConsultSession is
 * composed of objects that each own one part of the session (client/*.js:
 * SignallingChannel, Roster, PeerFactory, Publisher, PublisherControl,
 * Subscriber, TrackSettings, Heartbeat, Reconnection) and see the rest only
 * through what their constructor gets; this module owns the session's state
 * (joining, admission, leaving) and routes each server event to the object
 * it concerns.
 */

import { Captures } from "./client/captures.js";
import { Heartbeat } from "./client/heartbeat.js";
import { PeerFactory } from "./client/peer.js";
import { FrameEncryption, e2eeSupported } from "./client/e2ee.js";
import { DigiclinicError, websocketUrl } from "./client/protocol.js";
import { Publisher } from "./client/publisher.js";
import { PublisherControl } from "./client/publisher-control.js";
import { Reconnection, reconnectOptions } from "./client/reconnect.js";
import { Roster, expandParticipantsChanged } from "./client/roster.js";
import { SignallingChannel } from "./client/signalling.js";
import { Subscriber } from "./client/subscriber.js";
import { TrackSettings } from "./client/track-settings.js";

export { DigiclinicError, PROTOCOL_VERSION, websocketUrl } from "./client/protocol.js";

/** @typedef {import("./client/protocol.js").ServerMessage} ServerMessage */
/** @typedef {import("./client/protocol.js").Request} Request */
/** @typedef {import("./client/protocol.js").Emit} Emit */
/** @typedef {import("./client/protocol.js").Joined} Joined */
/** @typedef {import("./client/protocol.js").JoinRequest} JoinRequest */
/** @typedef {import("./client/protocol.js").ParticipantInfo} ParticipantInfo */
/** @typedef {import("./client/protocol.js").PublisherLayers} PublisherLayers */
/** @typedef {import("./client/protocol.js").PublisherAudio} PublisherAudio */
/** @typedef {import("./client/protocol.js").SubscriberOffer} SubscriberOffer */
/** @typedef {import("./client/publisher.js").PublishedTrack} PublishedTrack */
/** @typedef {import("./client/subscriber.js").RemoteTrack} RemoteTrack */
/** @typedef {import("./client/track-settings.js").TrackSize} TrackSize */
/** @typedef {import("./client/render-size.js").Watcher} Watcher */
/** @typedef {import("./client/reconnect.js").ReconnectOptions} ReconnectOptions */

/** @typedef {"new"|"connecting"|"lobby"|"active"|"reconnecting"|"closed"|"denied"} SessionState */

/**
 * The promise admitted() returns, and how to settle it.
 * @typedef {object} Admission
 * @property {Promise<ServerMessage>} promise
 * @property {(message: ServerMessage) => void} resolve
 * @property {(error: Error) => void} reject
 */

/**
 * @typedef {object} ConsultSessionOptions
 * @property {string} url  the server's WebSocket (or http) URL
 * @property {string} token  the join token (JWT) from the portal
 * @property {string} [room]  checked by the server against the token
 * @property {RTCIceServer[]} [iceServers]  default: the server's list
 *   from `joined`/`admitted` (TURN credentials)
 * @property {"all"|"relay"} [iceTransportPolicy]  for both connections
 * @property {boolean} [autoSubscribe]  receive everyone's tracks (default)
 * @property {number} [gatherTimeout]  ms to wait for ICE gathering
 * @property {number} [requestTimeout]  ms to wait for a reply
 * @property {boolean|Partial<ReconnectOptions>} [reconnect]  rejoin automatically after a
 *   lost connection (default false); an object sets `attempts` (10),
 *   `delay` (500 ms, doubled each attempt), `maxDelay` (10 s) and
 *   `heartbeat` (10 s between `ping`s; 0 disables them)
 * @property {boolean} [simulcast]  publish the camera as simulcast
 *   layers (default true); false sends one encoding
 * @property {string[]} [fallbackUrls]  other entry points of a cluster,
 *   tried in turn when reconnecting (the first node may be the one that died)
 * @property {string|null} [resume]  a single-use token's resume secret, from an
 *   earlier session's `resume` (its `joined`): a new session rejoins with it
 * @property {string|{id: number, key: string}|null} [e2eeKey]  the consult key from the
 *   portal, for an end-to-end encrypted room ("<key id>.<base64url>"; docs/e2ee.md)
 */

export class ConsultSession extends EventTarget {
  /** @type {SessionState} */
  state = "new";
  /** @type {Joined|null} the `joined` reply */
  joined = null;
  /** @type {string|null} */
  participantId = null;
  /** @type {ServerMessage|null} the latest `quality` event */
  quality = null;
  #channel;
  #peers;
  #roster = new Roster();
  #publisher;
  #publisherControl;
  #subscriber;
  #trackSettings;
  #heartbeat;
  #captures;
  #e2ee;
  /** @type {Reconnection|null} */
  #reconnection = null;
  #leaving = false; // the server closes the WebSocket after `left`: no reconnection
  /** @type {Admission|null} while someone awaits admitted() */
  #admission = null;

  /** @param {ConsultSessionOptions} options */
  constructor({ url, token, room, iceServers, iceTransportPolicy = "all",
                autoSubscribe = true, gatherTimeout = 5000, requestTimeout = 20000, reconnect = false,
                simulcast = true, fallbackUrls = [], resume = null, e2eeKey = null } = /** @type {any} */ ({})) {
    super();
    if (!url || !token) throw new TypeError("ConsultSession needs a url and a token");
    if (!["all", "relay"].includes(iceTransportPolicy)) {
      throw new TypeError('iceTransportPolicy is "all" or "relay"');
    }
    this.token = token;
    this.iceTransportPolicy = iceTransportPolicy;
    this.autoSubscribe = autoSubscribe;
    this.gatherTimeout = gatherTimeout;
    this.requestTimeout = requestTimeout;
    this.url = websocketUrl(url);
    this.fallbackUrls = fallbackUrls.map((u) => websocketUrl(u));
    this.resume = resume; // single-use tokens: the secret a rejoin presents (from `joined`)
    this.room = room ?? null;
    this.reconnect = reconnectOptions(reconnect);
    this.simulcast = simulcast !== false;

    const channel = (this.#channel = new SignallingChannel({
      requestTimeout,
      onMessage: (msg) => this.#emit("message", msg),
      onEvent: (msg) => this.#onEvent(msg),
      onClose: () => this.#onSocketClosed(),
      onBinary: (data) => this.#captures.onBinary(data),
    }));
    /** @type {Request} */
    const request = (type, fields, timeout) => channel.request(type, fields, timeout);
    /** @type {Emit} */
    const emit = (type, detail) => this.#emit(type, detail);
    const e2ee = (this.#e2ee = new FrameEncryption(emit));
    if (e2eeKey) e2ee.setKey(e2eeKey); // a malformed key throws here: a clear TypeError
    const peers = (this.#peers = new PeerFactory({
      iceServers, iceTransportPolicy, gatherTimeout,
      onStateChange: (name, pc) => this.#onConnectionState(name, pc),
    }));
    const trackSettings = (this.#trackSettings = new TrackSettings(
      (fields) => channel.request("track_settings", fields, undefined, { mayBeUnknown: true })));
    const publisher = (this.#publisher = new Publisher({
      request, peers, simulcast: this.simulcast, requireActive: () => this.#requireActive(),
      onTransceiver: (transceiver, kind) => e2ee.protectSender(transceiver, kind),
    }));
    this.#publisherControl = new PublisherControl(publisher, emit);
    const subscriber = (this.#subscriber = new Subscriber({
      request, emit, peers, isActive: () => this.state === "active",
      onTrackGone: (trackId) => trackSettings.forget(trackId),
      onReceiver: (receiver, kind, participantId) => e2ee.protectReceiver(receiver, kind, participantId),
    }));
    this.#captures = new Captures({
      request, emit, sendBinary: (data) => channel.sendBinary(data),
      bufferedAmount: () => channel.bufferedAmount, publisherPc: () => publisher.pc,
      yieldVideo: (on) => this.#publisherControl.yieldVideo(on, [...publisher.published.values()]
        .filter((p) => p.source === "camera").map((p) => p.trackId)),
      audioThinned: (ms) => this.#publisherControl.audioThinned(ms),
      e2ee,
      me: () => (this.joined && this.participantId
        ? { room: this.joined.room, identity: this.joined.participant.identity, participantId: this.participantId }
        : null),
    });
    this.addEventListener("reconnected", () => { if (this.state === "active") this.#captures.resume(); });
    this.#heartbeat = new Heartbeat({
      every: this.reconnect?.heartbeat ?? 0,
      ping: (timeout) => channel.request("ping", {}, timeout),
      isOpen: () => channel.isOpen,
      lastMessageAt: () => channel.lastMessageAt,
      mediaBytesReceived: () => subscriber.mediaBytesReceived(),
      onLost: () => this.#reconnection?.lost("heartbeat_timeout"),
    });
    if (this.reconnect) {
      this.#reconnection = new Reconnection(this.reconnect, [this.url, ...this.fallbackUrls], {
        mayReconnect: () => !this.#leaving && (this.state === "active" || this.state === "lobby"),
        stillReconnecting: () => this.state === "reconnecting",
        ended: () => this.state === "closed" || this.state === "denied",
        takeRepublish: () => this.#publisher.takeRepublish(),
        drop: () => this.#dropConnection(),
        rejoin: (url) => this.#rejoin(url),
        republish: (items) => this.#publisher.republish(items),
        shutdown: (reason) => this.#shutdown(reason),
        emit,
      });
    }
  }

  /** @type {string|null} the node we are connected to (after redirects) */
  get nodeUrl() { return this.#channel.url; }
  /** @type {RTCIceServer[]} the ICE servers of our connections */
  get iceServers() { return this.#peers.iceServers; }
  /** @type {Map<string, ParticipantInfo>} other active participants: id -> info (with producers) */
  get participants() { return this.#roster.participants; }
  /** @type {Map<string, RemoteTrack>} trackId -> the `track` event's detail */
  get remoteTracks() { return this.#subscriber.remoteTracks; }
  /** @type {Map<string, PublishedTrack>} our trackId -> {trackId, mid, source, track, muted, simulcast} */
  get published() { return this.#publisher.published; }
  /** @type {RTCPeerConnection|null} */
  get publisherPc() { return this.#publisher.pc; }
  /** @type {RTCPeerConnection|null} */
  get subscriberPc() { return this.#subscriber.pc; }
  /** @type {Captures} clinical photos and clips (client/captures.js, docs/capture.md) */
  get captures() { return this.#captures; }
  /** @type {FrameEncryption} end-to-end encryption: `mode`, `encrypting`, `sendKeyId`, counts() */
  get e2ee() { return this.#e2ee; }

  /**
   * A new consult key from the portal (a rotation, or after someone left): docs/e2ee.md.
   * @param {string|{id: number, key: string}} key
   */
  setE2eeKey(key) { this.#e2ee.setKey(key); }

  /**
   * EventTarget's, typed: the session's events are CustomEvents (the list above).
   * @param {string} type
   * @param {((event: CustomEvent) => void)|EventListenerObject|null} listener
   * @param {boolean|AddEventListenerOptions} [options]
   */
  addEventListener(type, listener, options) { super.addEventListener(type, listener, options); }

  // -- joining -------------------------------------------------------------

  /**
   * Connect and join; resolves to the `joined` reply (state "active" or
   * "lobby"). A refused join (e.g. `token_expired`) rejects with the
   * server's code and ends the session: retry with a new ConsultSession.
   * @returns {Promise<Joined>}
   */
  async join() {
    if (this.state !== "new") {
      throw new DigiclinicError("already_joined", "a session joins once: create a new one");
    }
    this.state = "connecting";
    try {
      await this.#channel.connect(this.url);
      this.joined = await this.#channel.join(this.#joinRequest());
    } catch (err) {
      this.#shutdown("join_failed");
      throw err;
    }
    const joined = this.#applyJoined(this.joined);
    if (joined.state === "lobby") this.#emit("lobby-wait", joined);
    else {
      this.#admission?.resolve(joined); // admitted() called while joining
      this.#captures.resume(); // a reloaded page's unfinished uploads
    }
    this.#heartbeat.start();
    return joined;
  }

  /** @returns {JoinRequest} */
  #joinRequest() {
    /** @type {JoinRequest} */
    const message = { token: this.token, auto_subscribe: this.autoSubscribe };
    if (this.room) message.room = this.room;
    // a single-use token joins again only with the secret its first `joined` gave us
    if (this.resume) message.resume = this.resume;
    // we can encrypt our frames (an end-to-end encrypted room refuses a page that cannot)
    if (this.#e2ee.hasKey && e2eeSupported()) message.e2ee = true;
    return message;
  }

  /**
   * @param {Joined} joined
   * @returns {Joined}
   */
  #applyJoined(joined) {
    this.joined = joined;
    // single-use tokens: the server's resume secret, kept in memory only (never in a URL
    // or storage) and sent with the token when we rejoin after a lost connection
    if (typeof joined.resume === "string") this.resume = joined.resume;
    this.participantId = joined.participant.id;
    this.room = joined.room;
    this.state = joined.state;
    this.#peers.learnIceServers(joined.ice_servers);
    this.#roster.reset(joined.participants);
    this.#e2ee.joined(joined.e2ee);
    this.#e2ee.roster(this.#roster.participants);
    return joined;
  }

  /**
   * Resolves once we are active: at once after a direct join (to `joined`),
   * otherwise to the `admitted` event. Rejects when denied or closed.
   * @returns {Promise<ServerMessage>}
   */
  admitted() {
    if (this.state === "active") return Promise.resolve(this.joined);
    if (!["lobby", "connecting", "reconnecting"].includes(this.state)) {
      return Promise.reject(new DigiclinicError(this.state, "not waiting for admission"));
    }
    if (!this.#admission) {
      const admission = (this.#admission = /** @type {any} */ ({}));
      admission.promise = new Promise((resolve, reject) => Object.assign(admission, { resolve, reject }));
    }
    return this.#admission.promise;
  }

  /** Admit a participant waiting in the lobby (needs the `admit` grant). @param {string} participantId */
  admit(participantId) { return this.request("admit", { participant_id: participantId }); }

  /** Deny a participant waiting in the lobby (needs the `admit` grant). @param {string} participantId */
  deny(participantId) { return this.request("deny", { participant_id: participantId }); }

  /** Send a chat message to everyone in the call (relayed, never stored). @param {string} text */
  chat(text) { return this.request("chat", { text }); }

  /** Tell the others we chose audio only (or no longer): their tiles say so. @param {boolean} [enabled] */
  setAudioOnly(enabled = true) { return this.request("audio_only", { enabled }); }

  /** Tell the others the room is on hold (a specialist busy elsewhere), or no longer. @param {boolean} [enabled] */
  setOnHold(enabled = true) { return this.request("on_hold", { enabled }); }

  /** Stop (or resume, with false) receiving a remote video. @param {string} trackId @param {boolean} [paused] */
  pauseVideo(trackId, paused = true) { return this.request("pause_video", { track_id: trackId, paused }); }

  /**
   * Send a protocol request (docs/protocol.md) for which there is no method:
   * resolves to the reply, rejects with a DigiclinicError on an `error` reply,
   * a timeout (ms, default `requestTimeout`) or a lost connection.
   * @param {string} type
   * @param {Record<string, any>} [fields]
   * @param {number} [timeout]
   * @returns {Promise<ServerMessage>}
   */
  request(type, fields = {}, timeout = this.requestTimeout) {
    return this.#channel.request(type, fields, timeout);
  }

  /** request(), by its earlier name (the widget and the console use it). @type {ConsultSession["request"]} */
  _request(type, fields = {}, timeout = this.requestTimeout) { return this.request(type, fields, timeout); }

  /** @type {WebSocket|null} the current WebSocket (tests close it to simulate a drop) */
  get _ws() { return this.#channel.ws; }

  /** Handle `data` (JSON) as if the server had sent it (tests inject messages). @param {string} data */
  _onMessage(data) { this.#channel.receive(data); }

  /** Round-trip time of an application-level `ping`, in milliseconds. */
  async ping(timeout = this.requestTimeout) {
    const started = performance.now();
    await this.request("ping", {}, timeout);
    return performance.now() - started;
  }

  // -- publishing and receiving (client/publisher.js, client/track-settings.js) --

  /**
   * Publish the tracks of `stream`. By default its video is the camera and
   * its audio the microphone; `{camera: false}` / `{microphone: false}`
   * leaves one out, `{screen: true}` labels the stream a screen share.
   * Each call renegotiates the one publisher connection with a complete
   * offer. Resolves to the tracks added, as in `published`.
   * @param {MediaStream} stream
   * @param {{camera?: boolean, microphone?: boolean, screen?: boolean}} [options]
   * @returns {Promise<PublishedTrack[]>}
   */
  publish(stream, options = {}) { return this.#publisher.publish(stream, options); }

  /** Stop publishing one of our tracks (its m-line becomes inactive). @param {string} trackId */
  unpublish(trackId) { return this.#publisher.unpublish(trackId); }

  /**
   * Mark one of our tracks muted for everyone (and stop sending its media).
   * @param {string} trackId
   * @param {boolean} [muted]
   */
  mute(trackId, muted = true) { return this.#publisher.mute(trackId, muted); }

  /**
   * Send `track` (or nothing, with null) on one of our published m-lines,
   * without renegotiating: e.g. a new camera track after the camera was
   * switched off. A reconnection republishes the current one.
   * @param {string} trackId
   * @param {MediaStreamTrack|null} track
   * @returns {Promise<void>}
   */
  replaceTrack(trackId, track) { return this.#publisher.replaceTrack(trackId, track); }

  /**
   * The encodings one of our video tracks is sent with now:
   * [{rid, active, scaleResolutionDownBy, maxBitrate}] (one entry without a
   * rid when not simulcast), or null if we do not publish it.
   * @param {string} trackId
   */
  sendEncodings(trackId) { return this.#publisher.sendEncodings(trackId); }

  /**
   * Tell the server the size, in device pixels, at which we show a remote
   * video (0x0: not visible), and whether the user pinned it: the server then
   * forwards no simulcast layer larger than needed and favours pinned videos
   * when bandwidth is short. Only changes are sent. Resolves to true once
   * acknowledged, false if the server does not know `track_settings`.
   * @param {string} trackId
   * @param {TrackSize} [size]
   * @returns {Promise<boolean>}
   */
  setTrackSettings(trackId, size = {}) { return this.#trackSettings.set(trackId, size); }

  /**
   * Report the render size of `element` (the <video> showing remote video
   * `trackId`) whenever it changes: ResizeObserver and IntersectionObserver,
   * debounced 300 ms, times devicePixelRatio, 0x0 while it is hidden, off
   * screen or detached. Options `{pinned, hidden}`. Returns a watcher with
   * `setPinned(bool)`, `setHidden(bool)`, `refresh()` and `unwatch()`; it
   * ends by itself with the track.
   * @param {string} trackId
   * @param {HTMLVideoElement} element
   * @param {{pinned?: boolean, hidden?: boolean}} [options]
   * @returns {Watcher}
   */
  watchRenderSize(trackId, element, options = {}) {
    return this.#trackSettings.watch(trackId, element, options);
  }

  /** Measure every watched video again (e.g. after re-rendering the page). */
  refreshRenderSizes() { this.#trackSettings.refreshAll(); }

  // -- server events ---------------------------------------------------------

  /**
   * A server message that answers no request: update our state, emit it (in
   * kebab-case), then hand it to the object it concerns.
   * @param {ServerMessage} msg
   */
  #onEvent(msg) {
    if (msg.type === "participants_changed") { // a large room's batch: one event each, here
      for (const event of expandParticipantsChanged(msg, this.joined?.participant?.id)) {
        this.#updateState(event);
        this.#emit(event.type.replaceAll("_", "-"), event);
      }
      return;
    }
    this.#updateState(msg);
    const detail = msg.type.startsWith("capture_") || msg.type === "error" ? this.#captures.onEvent(msg) : msg;
    this.#emit(msg.type.replaceAll("_", "-"), detail);
    switch (msg.type) {
      case "admitted":
        this.#captures.resume();
        this.#admission?.resolve(msg);
        this.#admission = null;
        this.#reconnection?.admitted();
        break;
      case "connection_failed":
        this.#reconnection?.lost(`${msg.pc}_failed`);
        break;
      case "reconnect": // the node is draining: move (to msg.url if given)
        this.#reconnection?.suggest(typeof msg.url === "string" ? websocketUrl(msg.url) : null);
        this.#reconnection?.lost(msg.reason ?? "reconnect");
        break;
      case "denied":
        this.#shutdown("denied");
        break;
      case "room_closed":
        this.#shutdown("room_closed");
        break;
      case "publisher_layers":
        this.#publisherControl.onLayers(/** @type {PublisherLayers} */ (msg));
        break;
      case "publisher_audio":
        this.#publisherControl.onAudio(/** @type {PublisherAudio} */ (msg));
        break;
      case "subscriber_offer":
        this.#subscriber.onOffer(/** @type {SubscriberOffer} */ (msg));
        break;
    }
  }

  /**
   * Keep `state`, `participants`, `remoteTracks` and `quality` up to date before emitting.
   * @param {ServerMessage} msg
   */
  #updateState(msg) {
    if (msg.type === "admitted") {
      this.state = "active";
      this.#peers.learnIceServers(msg.ice_servers);
      this.#roster.reset(msg.participants);
    } else if (msg.type === "quality") {
      this.quality = msg; // the server's latest view of our downlink
    } else {
      this.#roster.apply(msg);
      if (msg.type === "track_unpublished") this.#subscriber.removeTrack(msg.track_id);
    }
    this.#e2ee.roster(this.#roster.participants);
  }

  /**
   * A connection's state changed: tell, and reconnect if a current one failed.
   * @param {string} name  "publisher" or "subscriber"
   * @param {RTCPeerConnection} pc
   */
  #onConnectionState(name, pc) {
    this.#emit("connection-state", { pc: name, state: pc.connectionState });
    const current = pc === this.publisherPc || pc === this.subscriberPc;
    if (current && pc.connectionState === "failed") this.#reconnection?.lost(`${name}_failed`);
  }

  // -- lost connections (client/reconnect.js) --------------------------------

  /** The current WebSocket closed without our asking. */
  #onSocketClosed() {
    if (this.#reconnection?.active) { // fail the attempt in progress; the loop retries
      const error = new DigiclinicError("disconnected", "the connection closed");
      this.#channel.failPending(error);
      this.#reconnection.failWait(error);
    } else if (this.#reconnection && !this.#leaving && ["active", "lobby"].includes(this.state)) {
      this.#reconnection.lost("disconnected");
    } else {
      this.#shutdown(this.state === "denied" ? "denied" : "disconnected");
    }
  }

  /** Tear the old connection down, keeping what we publish; we are now "reconnecting". */
  #dropConnection() {
    this.#heartbeat.stop();
    this.#channel.disconnect();
    const error = new DigiclinicError("reconnecting", "the connection was lost");
    this.#channel.failPending(error);
    this.#reconnection?.failWait(error);
    this.#publisher.reset();
    this.#subscriber.reset();
    this.#trackSettings.reset(); // the new participant's consumers start afresh
    this.#roster.clear();
    this.state = "reconnecting";
  }

  /**
   * One reconnection attempt's join (the Reconnection waits in the lobby and republishes).
   * @param {string} url
   * @returns {Promise<Joined>}
   */
  async #rejoin(url) {
    await this.#channel.connect(url);
    const joined = this.#applyJoined(await this.#channel.join(this.#joinRequest()));
    this.#heartbeat.start();
    if (joined.state !== "lobby") {
      this.#admission?.resolve(joined);
      this.#admission = null;
    }
    return joined;
  }

  // -- leaving -------------------------------------------------------------

  /** Leave the room (telling the server when possible) and close everything. */
  async leave() {
    if (this.state === "closed" || this.state === "denied") return;
    this.#leaving = true; // the server closes the WebSocket after `left`: no reconnection
    if (this.joined && this.state !== "reconnecting" && this.#channel.isOpen) {
      await this.request("leave", {}, 3000).catch(() => {});
    }
    this.#shutdown("left");
  }

  /** @param {string} reason */
  #shutdown(reason) {
    if (this.state === "closed" || this.state === "denied") return;
    this.state = reason === "denied" ? "denied" : "closed";
    this.#reconnection?.stop(new DigiclinicError(this.state, reason));
    this.#heartbeat.stop();
    this.#captures.close();
    this.#e2ee.close();
    this.#publisher.close();
    this.#subscriber.close(); // every remote track ends with `track-removed`
    this.#trackSettings.close();
    this.#channel.failPending(new DigiclinicError("closed", "the session has ended"));
    this.#admission?.reject(new DigiclinicError(this.state, `not admitted: ${reason}`));
    this.#admission = null;
    this.#channel.close();
    this.#emit("closed", { reason });
  }

  #requireActive() {
    if (this.state === "lobby") throw new DigiclinicError("not_admitted", "waiting in the lobby");
    if (this.state !== "active") throw new DigiclinicError("not_joined", "join first");
  }

  /**
   * @param {string} type
   * @param {any} [detail]
   */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
