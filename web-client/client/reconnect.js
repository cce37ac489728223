// The reconnection controller of a ConsultSession (../digiclinic-client.js):
// after a lost WebSocket, a failed RTCPeerConnection or a missed heartbeat,
// join again with the same token and republish our tracks, with growing,
// jittered delays.
//
// Owns: the policy (how many attempts, which delays, which join errors are
// final, which URL each attempt goes to: a node the server suggested, else
// the session's URL and its fallbacks in turn), whether a reconnection is in
// progress, and the wait for admission when a rejoin lands in the lobby.
// Interface: lost(reason), active, suggest(url) (a `reconnect` event's node),
// admitted() (an `admitted` event), failWait(error), stop(error) (the session
// ended). It emits `reconnecting`, `reconnected`, `lobby-wait` and, giving
// up, `error`; it does the work through the narrow ReconnectionHost its
// owner gives it.

/** @typedef {import("./protocol.js").Emit} Emit */
/** @typedef {import("./protocol.js").Joined} Joined */
/** @typedef {import("./publisher.js").PublishItem} PublishItem */

/**
 * @typedef {object} ReconnectOptions
 * @property {number} attempts  before giving up (10)
 * @property {number} delay  ms before the first attempt, doubled each attempt (500)
 * @property {number} maxDelay  ms (10 s)
 * @property {number} heartbeat  ms between `ping`s; 0: none (10 s; heartbeat.js)
 */

/**
 * What the controller needs of its session.
 * @typedef {object} ReconnectionHost
 * @property {() => boolean} mayReconnect  whether the session is in a call we may restore
 * @property {() => boolean} ended  whether the session was closed or denied meanwhile
 * @property {() => boolean} stillReconnecting  whether the session still waits for us
 * @property {() => PublishItem[]} takeRepublish  our tracks, forgotten by the publisher
 * @property {() => void} drop  tear the connection down; the session is now "reconnecting"
 * @property {(url: string) => Promise<Joined>} rejoin  connect to `url`, join, take the reply
 * @property {(items: PublishItem[], joined: Joined) => Promise<unknown>} republish
 * @property {(reason: string) => void} shutdown  end the session
 * @property {Emit} emit
 */

/**
 * Join errors that another attempt with the same token cannot fix. (Not
 * `duplicate_identity` or `room_full`: our previous connection may still be
 * counted until the server notices it is gone.) `token_used`: a single-use
 * token refused even with our resume secret.
 */
const FATAL_JOIN_ERRORS = new Set([
  "token_invalid", "token_expired", "token_used", "unknown_issuer", "wrong_room", "forbidden",
]);

/** @type {Readonly<ReconnectOptions>} */
export const RECONNECT_DEFAULTS = Object.freeze({ attempts: 10, delay: 500, maxDelay: 10000, heartbeat: 10000 });

/**
 * The options of the `reconnect` option: null (no reconnection) or complete.
 * @param {boolean|Partial<ReconnectOptions>} [option]
 * @returns {ReconnectOptions|null}
 */
export function reconnectOptions(option) {
  return option ? { ...RECONNECT_DEFAULTS, ...(option === true ? {} : option) } : null;
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Reconnection {
  #options;
  #urls;
  #host;
  #active = false;
  /** @type {string|null} a node the server suggested for our next attempt */
  #hint = null;
  /** @type {{resolve: (value?: unknown) => void, reject: (error: Error) => void}|null} */
  #wait = null; // while a rejoin waits in the lobby

  /**
   * @param {ReconnectOptions} options
   * @param {string[]} urls  where to connect, in turn (the first one first)
   * @param {ReconnectionHost} host
   */
  constructor(options, urls, host) {
    this.#options = options;
    this.#urls = urls;
    this.#host = host;
  }

  /** Whether a reconnection is in progress. */
  get active() { return this.#active; }

  /**
   * The connection is lost: reconnect if we may (else nothing: the session
   * is ending, or already reconnecting).
   * @param {string} reason
   */
  lost(reason) {
    if (this.#active || !this.#host.mayReconnect()) return;
    this.#loop(reason).catch((err) => {
      this.#host.emit("error", { code: err.code ?? "reconnect_failed", message: err.message });
      this.#host.shutdown("reconnect_failed");
    });
  }

  /**
   * The next attempt goes to `url` (a draining node's suggestion), or as usual with null.
   * @param {string|null} url
   */
  suggest(url) { this.#hint = url; }

  /** We were admitted: a rejoin waiting in the lobby goes on. */
  admitted() {
    this.#wait?.resolve();
    this.#wait = null;
  }

  /**
   * A rejoin waiting in the lobby fails (its connection is gone).
   * @param {Error} error
   */
  failWait(error) {
    this.#wait?.reject(error);
    this.#wait = null;
  }

  /**
   * The session ended: no further attempt.
   * @param {Error} error  for a rejoin waiting in the lobby
   */
  stop(error) {
    this.#active = false;
    this.failWait(error);
  }

  /** @param {string} reason */
  async #loop(reason) {
    this.#active = true;
    const republish = this.#host.takeRepublish();
    const { attempts, delay, maxDelay } = this.#options;
    try {
      for (let attempt = 1; ; attempt += 1) {
        this.#host.drop();
        const wait = Math.min(maxDelay, delay * 2 ** (attempt - 1)) * (0.75 + Math.random() / 2);
        this.#host.emit("reconnecting", { attempt, delay: Math.round(wait), reason });
        await sleep(wait);
        if (!this.#host.stillReconnecting()) return; // left meanwhile
        try {
          const joined = await this.#rejoin(republish, attempt);
          this.#host.emit("reconnected", { joined, attempts: attempt });
          return;
        } catch (err) {
          if (this.#host.ended()) return;
          if (FATAL_JOIN_ERRORS.has(err.code) || attempt >= attempts) throw err;
          reason = err.code ?? "failed";
        }
      }
    } finally {
      this.#active = false;
    }
  }

  /**
   * One attempt: connect, join, wait for admission if needed, republish. It
   * connects to the node the server suggested (a `reconnect` event), else to
   * our URLs in turn: in a cluster any node redirects us to the room's node.
   * @param {PublishItem[]} republish
   * @param {number} attempt  from 1
   * @returns {Promise<Joined>}
   */
  async #rejoin(republish, attempt) {
    const url = this.#hint ?? this.#urls[(attempt - 1) % this.#urls.length];
    this.#hint = null;
    const joined = await this.#host.rejoin(url);
    if (joined.state === "lobby") {
      const waiting = new Promise((resolve, reject) => { this.#wait = { resolve, reject }; });
      this.#host.emit("lobby-wait", joined);
      await waiting;
    }
    if (republish.length && joined.participant.grants?.publish !== false) {
      await this.#host.republish(republish, joined);
    }
    return joined;
  }
}
