// ConsultSession's reconnection: after a lost WebSocket, a failed
// RTCPeerConnection or a missed heartbeat, join again with the same token and
// republish our tracks, with growing, jittered delays. A mixin of
// ConsultSession (../digiclinic-client.js).

import { DigiclinicError } from "./protocol.js";

const kindOf = (source) => (source === "camera" || source === "screen_share" ? "video" : "audio");

/**
 * Join errors that another attempt with the same token cannot fix. (Not
 * `duplicate_identity` or `room_full`: our previous connection may still be
 * counted until the server notices it is gone.) `token_used`: a single-use
 * token refused even with our resume secret.
 */
const FATAL_JOIN_ERRORS = new Set([
  "token_invalid", "token_expired", "token_used", "unknown_issuer", "wrong_room", "forbidden",
]);

export const RECONNECT_DEFAULTS = { attempts: 10, delay: 500, maxDelay: 10000, heartbeat: 10000 };

/** Missed heartbeats forgiven in a row while the server's media still arrives (~30 s). */
const HEARTBEATS_SPARED_WHILE_MEDIA_FLOWS = 3;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export const Reconnection = (Base) => class Reconnection extends Base {
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
    this._trackSettings = new Map(); // the new participant's consumers start afresh
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
          await this._rejoin(republish, attempt);
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

  /**
   * One reconnection attempt: connect, join, wait for admission if needed,
   * republish. It connects to the node the server suggested (a `reconnect`
   * event), else to our URL and our `fallbackUrls` in turn: in a cluster any
   * node redirects us to the room's node.
   */
  async _rejoin(republish, attempt = 1) {
    const entries = [this.url, ...this.fallbackUrls];
    const url = this._hint ?? entries[(attempt - 1) % entries.length];
    this._hint = null;
    await this._connect(url);
    const message = { token: this.token, auto_subscribe: this.autoSubscribe };
    if (this.room) message.room = this.room;
    // a single-use token joins again only with the secret its first `joined` gave us
    if (this.resume) message.resume = this.resume;
    const joined = this._applyJoined(await this._joinRoom(message));
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
    const timeout = Math.max(2000, every * 0.6);
    let spared = 0; // heartbeats in a row spared because the media kept flowing
    this._heartbeatTimer = setInterval(async () => {
      if (generation !== this._generation || this._ws?.readyState !== WebSocket.OPEN) return;
      const sent = performance.now();
      const mediaBefore = await this._mediaBytesReceived();
      this.ping(timeout).then(() => { spared = 0; }, async (err) => {
        if (err.code !== "timeout" || generation !== this._generation) return;
        // The server's messages kept arriving while we waited: the socket lives, and
        // only our ping (or its pong) is slow, e.g. TCP retransmitting it across a
        // thin, lossy link. A reconnection there would cost far more than it saves;
        // the next heartbeat asks again.
        if (this._lastMessageAt > sent) return;
        // Nothing came, but the server's media still does: the network and the server
        // are alive and only the WebSocket's TCP is stalled (on a 60 kbit/s link its
        // retransmissions back off for 10 s and more). Reconnecting would tear down the
        // media that still works, over that same thin link: give TCP a few heartbeats.
        const mediaAfter = await this._mediaBytesReceived();
        if (mediaAfter > mediaBefore && spared < HEARTBEATS_SPARED_WHILE_MEDIA_FLOWS) {
          spared += 1;
          return;
        }
        if (generation === this._generation) this._lost("heartbeat_timeout");
      });
    }, every);
  }

  /** Bytes of media received so far on the subscriber connection (0 without one). */
  async _mediaBytesReceived() {
    const pc = this.subscriberPc;
    if (!pc || pc.connectionState !== "connected") return 0;
    let bytes = 0;
    try {
      (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp") bytes += s.bytesReceived ?? 0; });
    } catch { return 0; }
    return bytes;
  }

  _stopHeartbeat() {
    clearInterval(this._heartbeatTimer);
    this._heartbeatTimer = null;
  }
};
