// How fast a capture upload may go (client/captures.js): a less-than-best-effort
// window in the manner of LEDBAT (RFC 6817), over the WebSocket's TCP.
//
// Why not a rate from the browser's estimate: on a thin link the browser's
// estimate (availableOutgoingBitrate) is application-limited — it is about
// what the audio sends, and says nothing of the room left. And TCP alone fills
// the link's queue until it drops, which delays and drops the audio behind it.
// So the upload watches the round trip of its own chunks (sent -> the server's
// `capture_progress`): the lowest seen is the empty-queue delay; as long as
// the extra delay stays under TARGET_MS the window grows, above it the window
// shrinks. The capture takes the room the link has and gives it back as soon as
// a queue builds up, before the audio suffers from it.
//
// Owns: the window (bytes in flight), the chunks in flight and their send
// times, the base delay. Interface: window, chunk(), sent(start, end),
// acked(offset), lost().

const TARGET_MS = 100; // queueing delay the upload may add (LEDBAT's target)
const GAIN = 1;
const MSS = 1200; // bytes: the window grows by about this per round trip at most
const MIN_CHUNK = 512;
const MIN_WINDOW = 2 * MIN_CHUNK;
const MAX_WINDOW = 4 * 1024 * 1024;
const BASE_HISTORY_MS = 60_000; // the base delay is the lowest of the last minute

export class CaptureWindow {
  /** bytes that may be sent and not yet confirmed */
  window = MIN_WINDOW;
  /** @type {Array<{start: number, end: number, at: number}>} chunks in flight, in order */
  #flight = [];
  /** @type {Array<{at: number, rtt: number}>} the lowest round trip of each 10 s */
  #base = [];
  #chunkMax;

  /** @param {number} chunkMax the server's largest chunk */
  constructor(chunkMax) { this.#chunkMax = chunkMax; }

  /** The next chunk's size: a quarter of the window (so a few are in flight), within bounds. */
  chunk() {
    return Math.min(this.#chunkMax, Math.max(MIN_CHUNK, Math.floor(this.window / 4)));
  }

  /** Bytes [start, end) were handed to the WebSocket. @param {number} start @param {number} end */
  sent(start, end) { this.#flight.push({ start, end, at: performance.now() }); }

  /**
   * The server holds every byte before `offset`: each chunk it covers gives a
   * round trip; the window follows the queueing delay.
   * @param {number} offset
   */
  acked(offset) {
    const now = performance.now();
    while (this.#flight.length && this.#flight[0].end <= offset) {
      const chunk = /** @type {{start: number, end: number, at: number}} */ (this.#flight.shift());
      this.#sample(now - chunk.at, chunk.end - chunk.start, now);
    }
  }

  /** A refused chunk or a lost connection: what was in flight is gone; the window halves. */
  lost() {
    this.#flight = [];
    this.window = Math.max(MIN_WINDOW, this.window / 2);
  }

  /** @param {number} rtt ms @param {number} bytes @param {number} now */
  #sample(rtt, bytes, now) {
    const slot = Math.floor(now / 10_000);
    const last = this.#base[this.#base.length - 1];
    if (last && Math.floor(last.at / 10_000) === slot) last.rtt = Math.min(last.rtt, rtt);
    else this.#base.push({ at: now, rtt });
    while (this.#base.length && now - this.#base[0].at > BASE_HISTORY_MS) this.#base.shift();
    const base = Math.min(...this.#base.map((b) => b.rtt));
    // no faster down than TCP's own halving (LEDBAT's bound on the decrease)
    const offTarget = Math.max(-1, (TARGET_MS - (rtt - base)) / TARGET_MS);
    this.window += (GAIN * offTarget * bytes * MSS) / this.window;
    this.window = Math.min(MAX_WINDOW, Math.max(MIN_WINDOW, this.window));
  }
}
