// The heartbeat of a ConsultSession (../digiclinic-client.js): an
// application-level `ping` every `every` ms, to notice a server that no
// longer answers (a WebSocket can stay "open" long after its network died).
//
// Owns: its interval timer (stop() clears it; a ping still in flight when it
// is stopped or restarted is ignored).
// Interface: start() (again after each join), stop(). It decides only
// whether the connection is lost, through callbacks from its constructor:
// `ping(timeout)`, `isOpen()`, `lastMessageAt()` (when the server's latest
// message came), `mediaBytesReceived()` and `onLost()`.

/** Missed heartbeats forgiven in a row while the server's media still arrives (~30 s). */
const HEARTBEATS_SPARED_WHILE_MEDIA_FLOWS = 3;

/**
 * @typedef {object} HeartbeatOptions
 * @property {number} every  ms between pings; 0 (or none): no heartbeat
 * @property {(timeout: number) => Promise<unknown>} ping  rejects with code `timeout` unanswered
 * @property {() => boolean} isOpen  whether the WebSocket is open
 * @property {() => number} lastMessageAt  performance.now() of the server's latest message
 * @property {() => Promise<number>} mediaBytesReceived  media received so far
 * @property {() => void} onLost  the server is gone
 */

export class Heartbeat {
  /** @type {ReturnType<typeof setInterval>|null} */
  #timer = null;
  /** @type {object|null} the current run: a ping of an earlier one is ignored */
  #run = null;
  #options;

  /** @param {HeartbeatOptions} options */
  constructor(options) {
    this.#options = options;
  }

  /** (Re)start pinging; a no-op without `every`. */
  start() {
    this.stop();
    const { every, ping, isOpen, lastMessageAt, mediaBytesReceived, onLost } = this.#options;
    if (!every) return;
    const run = (this.#run = {});
    const current = () => run === this.#run;
    const timeout = Math.max(2000, every * 0.6);
    let spared = 0; // heartbeats in a row spared because the media kept flowing
    this.#timer = setInterval(async () => {
      if (!current() || !isOpen()) return;
      const sent = performance.now();
      const mediaBefore = await mediaBytesReceived();
      ping(timeout).then(() => { spared = 0; }, async (err) => {
        if (err.code !== "timeout" || !current()) return;
        // The server's messages kept arriving while we waited: the socket lives, and
        // only our ping (or its pong) is slow, e.g. TCP retransmitting it across a
        // thin, lossy link. A reconnection there would cost far more than it saves;
        // the next heartbeat asks again.
        if (lastMessageAt() > sent) return;
        // Nothing came, but the server's media still does: the network and the server
        // are alive and only the WebSocket's TCP is stalled (on a 60 kbit/s link its
        // retransmissions back off for 10 s and more). Reconnecting would tear down the
        // media that still works, over that same thin link: give TCP a few heartbeats.
        const mediaAfter = await mediaBytesReceived();
        if (mediaAfter > mediaBefore && spared < HEARTBEATS_SPARED_WHILE_MEDIA_FLOWS) {
          spared += 1;
          return;
        }
        if (current()) onLost();
      });
    }, every);
  }

  /** Stop pinging; pings in flight no longer count. */
  stop() {
    clearInterval(this.#timer);
    this.#timer = null;
    this.#run = null;
  }
}
