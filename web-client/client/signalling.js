// ConsultSession's signalling over the WebSocket: connecting, requests and
// their replies, and server events (keeping the roster up to date before
// they are emitted). A mixin of ConsultSession (../digiclinic-client.js).

import { DigiclinicError, websocketUrl } from "./protocol.js";

const MAX_REDIRECTS = 3;

/** Our own copy of a participant info (we update its `producers`). */
const copyInfo = (info) => ({ ...info, producers: (info.producers ?? []).map((t) => ({ ...t })) });

export const Signalling = (Base) => class Signalling extends Base {
  /** Open a WebSocket (to `url`, default the session's own URL) as the current connection. */
  _connect(url = this.url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      this._ws = ws;
      this.nodeUrl = url;
      ws.onopen = () => resolve();
      // before `open` this fails the join; afterwards `close` follows and shuts down
      ws.onerror = () => reject(new DigiclinicError("connect_failed", `cannot connect to ${url}`));
      ws.onmessage = (event) => this._onMessage(event.data);
      ws.onclose = () => {
        if (ws !== this._ws) return; // an earlier connection, already replaced
        if (this._reconnecting) { // fail the attempt in progress; the loop retries
          reject(new DigiclinicError("connect_failed", `cannot connect to ${url}`));
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

  /**
   * Send `join`, following `redirect` replies: a cluster answers a join for a
   * room hosted on another node with that node's URL and a ticket (proof that
   * our token was checked); we join there with the ticket (docs/cluster.md).
   */
  async _joinRoom(message) {
    for (let redirects = 0; ; redirects += 1) {
      try {
        return await this._request("join", message);
      } catch (err) {
        const { url, ticket } = err.reply ?? {};
        if (err.code !== "redirect" || !url || !ticket || redirects >= MAX_REDIRECTS) throw err;
        const old = this._ws;
        old.onopen = old.onerror = old.onmessage = old.onclose = null;
        old.close(1000);
        await this._connect(websocketUrl(url));
        message = { ...message, ticket };
        delete message.token;
      }
    }
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
    this._lastMessageAt = performance.now(); // the heartbeat's proof that the socket lives
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (typeof msg?.type !== "string") return;
    this._emit("message", msg);
    if (msg.type === "error" && msg.ref === undefined && this._unreferencedError?.(msg)) return;
    const pending = msg.ref !== undefined ? this._pending.get(msg.ref) : undefined;
    if (pending) { // a reply: settle the request
      this._pending.delete(msg.ref);
      clearTimeout(pending.timer);
      if (msg.type === "error") pending.reject(new DigiclinicError(msg.code, msg.message, msg));
      else pending.resolve(msg);
      return;
    }
    if (msg.type === "participants_changed") { // a large room's batch: one event each, here
      for (const event of expandParticipantsChanged(msg, this.joined?.participant?.id)) {
        this._updateState(event);
        this._emit(event.type.replaceAll("_", "-"), event);
      }
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
    } else if (msg.type === "reconnect") { // the node is draining: move (to msg.url if given)
      this._hint = typeof msg.url === "string" ? websocketUrl(msg.url) : null;
      this._lost(msg.reason ?? "reconnect");
    } else if (msg.type === "denied") {
      this._shutdown("denied");
    } else if (msg.type === "room_closed") {
      this._shutdown("room_closed");
    } else if (msg.type === "publisher_layers") {
      this._onPublisherLayers(msg);
    } else if (msg.type === "publisher_audio") {
      this._onPublisherAudio(msg);
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
      case "quality":
        this.quality = msg; // the server's latest view of our downlink
        break;
      case "track_muted": {
        const track = who?.producers.find((t) => t.id === msg.track_id);
        if (track) track.muted = msg.muted;
        break;
      }
      case "participant_audio_only":
        if (who) who.audio_only = msg.enabled === true;
        break;
      case "participant_on_hold":
        if (who) who.on_hold = msg.enabled === true;
        break;
    }
  }

  _setRoster(participants = []) {
    this.participants = new Map(participants.map((p) => [p.id, copyInfo(p)]));
  }
};

/**
 * A large room announces arrivals and departures in batches (`participants_changed`,
 * docs/protocol.md): as the `participant_joined` / `participant_left` events a consult
 * gets one by one. Joined first, then left; our own arrival is not news to us.
 */
export function expandParticipantsChanged(msg, selfId) {
  const events = [];
  for (const participant of Array.isArray(msg.joined) ? msg.joined : []) {
    if (participant?.id && participant.id !== selfId) {
      events.push({ type: "participant_joined", participant });
    }
  }
  for (const left of Array.isArray(msg.left) ? msg.left : []) {
    if (left?.participant_id && left.participant_id !== selfId) {
      events.push({ type: "participant_left", ...left });
    }
  }
  return events;
}
