// The signalling channel of a ConsultSession (../digiclinic-client.js): one
// WebSocket at a time, requests and their replies, and the server's events.
//
// Owns: the current WebSocket and the URL it went to, the request ids, the
// requests awaiting their reply (and their timeout timers), and the time the
// server's latest message arrived.
// Interface: connect(url), join(message) (following a cluster's redirects),
// request(type, fields, timeout, {mayBeUnknown}), receive(data) (what the
// socket's `message` does), failPending(error), disconnect() (drop the
// socket silently), close() (close it, the close still reported); ws, url,
// isOpen, lastMessageAt. It knows nothing of the session's state: it hands
// every message to `onMessage`, each one that settles no request to
// `onEvent`, and tells `onClose` when the current socket closes.

import { DigiclinicError, websocketUrl } from "./protocol.js";

/** @typedef {import("./protocol.js").ServerMessage} ServerMessage */
/** @typedef {import("./protocol.js").Joined} Joined */
/** @typedef {import("./protocol.js").JoinRequest} JoinRequest */

/**
 * @typedef {object} Pending  a request awaiting its reply
 * @property {(reply: ServerMessage) => void} resolve
 * @property {(error: Error) => void} reject
 * @property {ReturnType<typeof setTimeout>} timer
 * @property {boolean} mayBeUnknown  see request()
 */

/**
 * @typedef {object} ChannelCallbacks
 * @property {number} requestTimeout  ms to wait for a reply, by default
 * @property {(msg: ServerMessage) => void} onMessage  every message, as it arrives
 * @property {(msg: ServerMessage) => void} onEvent  each message that is no awaited reply
 * @property {(data: ArrayBuffer) => void} [onBinary]  a binary frame (a capture chunk)
 * @property {() => void} onClose  the current WebSocket closed without our asking
 */

const MAX_REDIRECTS = 3;

export class SignallingChannel {
  /** @type {WebSocket|null} the current connection */
  ws = null;
  /** @type {string|null} the URL of the latest connection (after redirects) */
  url = null;
  /** when the server's latest message came (performance.now()): proof that the socket lives */
  lastMessageAt = -Infinity;
  #nextId = 1;
  /** @type {Map<number, Pending>} request id -> its pending reply */
  #pending = new Map();
  #requestTimeout;
  #onMessage;
  #onEvent;
  #onClose;
  #onBinary;

  /** @param {ChannelCallbacks} callbacks */
  constructor({ requestTimeout, onMessage, onEvent, onClose, onBinary = () => {} }) {
    this.#onBinary = onBinary;
    this.#requestTimeout = requestTimeout;
    this.#onMessage = onMessage;
    this.#onEvent = onEvent;
    this.#onClose = onClose;
  }

  /** Whether the current WebSocket is open. */
  get isOpen() { return this.ws?.readyState === WebSocket.OPEN; }

  /**
   * Open a WebSocket to `url` as the current connection; resolves once open,
   * rejects (`connect_failed`) if it fails or closes first.
   * @param {string} url
   * @returns {Promise<void>}
   */
  connect(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer"; // capture chunks (docs/capture.md)
      this.ws = ws;
      this.url = url;
      const failed = () => reject(new DigiclinicError("connect_failed", `cannot connect to ${url}`));
      ws.onopen = () => resolve();
      ws.onerror = failed; // before `open`; afterwards `close` follows
      ws.onmessage = (event) => {
        if (event.data instanceof ArrayBuffer) {
          this.lastMessageAt = performance.now();
          this.#onBinary(event.data);
        } else this.receive(event.data);
      };
      ws.onclose = () => {
        if (ws !== this.ws) return; // an earlier connection, already replaced
        failed(); // nothing once open
        this.#onClose();
      };
    });
  }

  /**
   * Send `join`, following `redirect` replies: a cluster answers a join for a
   * room hosted on another node with that node's URL and a ticket (proof that
   * our token was checked); we join there with the ticket (docs/cluster.md).
   * @param {JoinRequest} message
   * @returns {Promise<Joined>}
   */
  async join(message) {
    for (let redirects = 0; ; redirects += 1) {
      try {
        return /** @type {Joined} */ (/** @type {unknown} */ (await this.request("join", message)));
      } catch (err) {
        const { url, ticket } = err.reply ?? {};
        if (err.code !== "redirect" || !url || !ticket || redirects >= MAX_REDIRECTS) throw err;
        this.disconnect();
        await this.connect(websocketUrl(url));
        message = { ...message, ticket };
        delete message.token;
      }
    }
  }

  /**
   * Send a message with a fresh `id`; resolves to the reply carrying it as
   * `ref`. `mayBeUnknown`: an older server may not know this type, and its
   * `unknown_type` error carries no `ref` (protocol.md): such an error is taken
   * as the answer to the oldest request in flight sent with this flag.
   * @param {string} type
   * @param {Record<string, any>} [fields]
   * @param {number} [timeout]  ms
   * @param {{mayBeUnknown?: boolean}} [options]
   * @returns {Promise<ServerMessage>}
   */
  request(type, fields = {}, timeout = this.#requestTimeout, { mayBeUnknown = false } = {}) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new DigiclinicError("closed", "not connected"));
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new DigiclinicError("timeout", `no reply to ${type}`));
      }, timeout);
      this.#pending.set(id, { resolve, reject, timer, mayBeUnknown });
      ws.send(JSON.stringify({ ...fields, type, id }));
    });
  }

  /**
   * Send a binary frame (a capture chunk); false when not connected.
   * @param {Uint8Array} data
   */
  sendBinary(data) {
    if (!this.isOpen) return false;
    /** @type {WebSocket} */ (this.ws).send(data);
    return true;
  }

  /** Bytes the current WebSocket has queued and not yet sent. */
  get bufferedAmount() { return this.ws?.bufferedAmount ?? 0; }

  /**
   * One message from the server (the WebSocket's `message` data): settle the
   * request it answers, or hand it on as an event.
   * @param {string} data
   */
  receive(data) {
    this.lastMessageAt = performance.now();
    /** @type {ServerMessage} */
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (typeof msg?.type !== "string") return;
    this.#onMessage(msg);
    if (msg.type === "error" && msg.ref === undefined && this.#settleUnreferenced(msg)) return;
    const pending = msg.ref !== undefined ? this.#pending.get(msg.ref) : undefined;
    if (pending) { // a reply: settle the request
      this.#pending.delete(msg.ref);
      clearTimeout(pending.timer);
      if (msg.type === "error") pending.reject(new DigiclinicError(msg.code, msg.message, msg));
      else pending.resolve(msg);
      return;
    }
    this.#onEvent(msg);
  }

  /**
   * An `unknown_type` error without `ref`: the answer to our oldest
   * `mayBeUnknown` request in flight, if any.
   * @param {ServerMessage} msg
   * @returns {boolean} whether it settled one
   */
  #settleUnreferenced(msg) {
    if (msg.code !== "unknown_type") return false;
    for (const [id, pending] of this.#pending) {
      if (!pending.mayBeUnknown) continue;
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(new DigiclinicError(msg.code, msg.message, msg));
      return true;
    }
    return false;
  }

  /**
   * Reject every request awaiting its reply.
   * @param {Error} error
   */
  failPending(error) {
    for (const { reject, timer } of this.#pending.values()) {
      clearTimeout(timer);
      reject(error);
    }
    this.#pending.clear();
  }

  /** Drop the current WebSocket without hearing of it again (a reconnection or a redirect). */
  disconnect() {
    const ws = this.ws;
    if (ws) {
      ws.onopen = ws.onerror = ws.onmessage = ws.onclose = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000);
    }
    this.ws = null;
  }

  /** Close the current WebSocket (the session ends; its `close` is still reported). */
  close() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
  }
}
