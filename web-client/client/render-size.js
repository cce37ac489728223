// Render-size measuring for ConsultSession: the size in device pixels at
// which each incoming video is shown, so that the server (`track_settings`,
// sent by track-settings.js) never forwards a simulcast layer larger than
// needed (a thumbnail gets the lowest layer, a hidden video 0x0) and favours
// pinned videos when bandwidth is short.
//
// RenderSizeReporter owns one ResizeObserver, one IntersectionObserver, a
// `visibilitychange` listener and a debounce timer per watched <video>, all
// released by close(). Interface: watch(trackId, element, options) (returns a
// Watcher), unwatch(trackId), refreshAll(), measure(watcher), close(); it
// calls the `send(trackId, size)` it was given when a size settles (only
// real changes), and retries a rejected send.

/**
 * The size at which a video is shown, in device pixels (0x0: not visible).
 * @typedef {{width: number, height: number, pinned: boolean}} RenderSize
 */

/**
 * One watched <video>: `setPinned(bool)`, `setHidden(bool)`, `refresh()`,
 * `unwatch()`; `lastSent` is the size last acknowledged.
 * @typedef {object} Watcher
 * @property {string} trackId
 * @property {HTMLVideoElement} element
 * @property {boolean} pinned
 * @property {boolean} hidden
 * @property {boolean} offscreen
 * @property {ReturnType<typeof setTimeout>|null} timer
 * @property {RenderSize|null} lastSent
 * @property {RenderSize|null} inFlight
 * @property {(value: boolean) => void} setPinned
 * @property {(value: boolean) => void} setHidden
 * @property {() => void} refresh
 * @property {() => void} unwatch
 * @property {() => void} [onResize]
 * @property {boolean} [gone]
 * @property {number} [failures]
 */

export const RENDER_SIZE_DEBOUNCE_MS = 300;
const RETRY_MS = 2000;
const MAX_RETRIES = 5;

/**
 * The size (device pixels) at which `element` shows its picture: the box
 * fitted to the video's aspect ratio as CSS `object-fit` does (contain,
 * cover, fill, none, scale-down), times devicePixelRatio; 0x0 when it is not
 * displayed or not in the document.
 * @param {HTMLVideoElement} element
 * @returns {{width: number, height: number}}
 */
export function renderedSize(element) {
  if (!element?.isConnected) return { width: 0, height: 0 };
  const boxWidth = element.clientWidth;
  const boxHeight = element.clientHeight;
  if (!boxWidth || !boxHeight) return { width: 0, height: 0 };
  const dpr = globalThis.devicePixelRatio || 1;
  let width = boxWidth;
  let height = boxHeight;
  const vw = element.videoWidth;
  const vh = element.videoHeight;
  if (vw > 0 && vh > 0) {
    const fit = getComputedStyle(element).objectFit;
    const contain = Math.min(boxWidth / vw, boxHeight / vh);
    let scale = null;
    if (fit === "contain") scale = contain;
    else if (fit === "cover") scale = Math.max(boxWidth / vw, boxHeight / vh);
    else if (fit === "none") scale = 1;
    else if (fit === "scale-down") scale = Math.min(1, contain);
    if (scale !== null) { // "fill" (the default): the box itself
      width = vw * scale;
      height = vh * scale;
    }
  }
  return { width: Math.round(width * dpr), height: Math.round(height * dpr) };
}

/**
 * Watches <video> elements and calls `send(trackId, {width, height, pinned})`
 * when the size a video is shown at settles (after `debounce` ms without
 * change). `send` returns a promise; a rejected send is retried after 2 s
 * (at most 5 times in a row).
 */
export class RenderSizeReporter {
  /**
   * @param {(trackId: string, size: RenderSize) => Promise<unknown>} send
   * @param {{debounce?: number}} [options]  ms
   */
  constructor(send, { debounce = RENDER_SIZE_DEBOUNCE_MS } = {}) {
    this.send = send;
    this.debounce = debounce;
    /** @type {Map<string, Watcher>} trackId -> watcher */
    this.watched = new Map();
    /** @type {WeakMap<Element, Watcher>} element -> watcher */
    this.byElement = new WeakMap();
    this.closed = false;
    /** @param {(ResizeObserverEntry|IntersectionObserverEntry)[]} entries */
    const schedule = (entries) => {
      for (const entry of entries) {
        const watcher = this.byElement.get(entry.target);
        if (!watcher) continue;
        if ("isIntersecting" in entry) watcher.offscreen = !entry.isIntersecting;
        this._schedule(watcher);
      }
    };
    this.resizeObserver = typeof ResizeObserver === "function" ? new ResizeObserver(schedule) : null;
    this.intersectionObserver = typeof IntersectionObserver === "function"
      ? new IntersectionObserver(schedule, { threshold: 0 }) : null;
    this._onVisibility = () => { for (const watcher of this.watched.values()) this._schedule(watcher); };
    globalThis.document?.addEventListener("visibilitychange", this._onVisibility);
  }

  /**
   * Start reporting the size of `element` (a <video>) for `trackId`. Options:
   * `pinned` (the user pinned it), `hidden` (report 0x0 whatever the size).
   * Returns the watcher: `setPinned(bool)`, `setHidden(bool)`, `refresh()`,
   * `unwatch()`, `lastSent`.
   * @param {string} trackId
   * @param {HTMLVideoElement} element
   * @param {{pinned?: boolean, hidden?: boolean}} [options]
   * @returns {Watcher}
   */
  watch(trackId, element, { pinned = false, hidden = false } = {}) {
    const previous = this.watched.get(trackId);
    if (previous && previous.element === element) {
      previous.setPinned(pinned);
      previous.setHidden(hidden);
      return previous;
    }
    previous?.unwatch();
    /** @type {Watcher} */
    const watcher = {
      trackId, element, pinned: Boolean(pinned), hidden: Boolean(hidden), offscreen: false,
      timer: null, lastSent: null, inFlight: null,
      setPinned: (value) => this._set(watcher, "pinned", value),
      setHidden: (value) => this._set(watcher, "hidden", value),
      refresh: () => this._schedule(watcher),
      unwatch: () => this._unwatch(watcher),
    };
    this.watched.set(trackId, watcher);
    this.byElement.set(element, watcher);
    this.resizeObserver?.observe(element);
    this.intersectionObserver?.observe(element);
    watcher.onResize = () => this._schedule(watcher); // the picture's aspect ratio changed
    element.addEventListener("resize", watcher.onResize);
    this._schedule(watcher);
    return watcher;
  }

  /** @param {string} trackId */
  unwatch(trackId) {
    const watcher = this.watched.get(trackId);
    if (watcher) this._unwatch(watcher);
  }

  /** Re-measure every watched video (e.g. after the page re-rendered). */
  refreshAll() {
    for (const watcher of this.watched.values()) this._schedule(watcher);
  }

  close() {
    this.closed = true;
    for (const watcher of [...this.watched.values()]) this._unwatch(watcher);
    this.resizeObserver?.disconnect();
    this.intersectionObserver?.disconnect();
    globalThis.document?.removeEventListener("visibilitychange", this._onVisibility);
  }

  /**
   * What the watcher's video needs now.
   * @param {Watcher} watcher
   * @returns {RenderSize}
   */
  measure(watcher) {
    const hidden = watcher.hidden || watcher.offscreen || globalThis.document?.visibilityState === "hidden";
    const size = hidden ? { width: 0, height: 0 } : renderedSize(watcher.element);
    return { ...size, pinned: watcher.pinned };
  }

  /** @param {Watcher} watcher */
  _unwatch(watcher) {
    clearTimeout(watcher.timer);
    if (this.watched.get(watcher.trackId) === watcher) this.watched.delete(watcher.trackId);
    this.byElement.delete(watcher.element);
    this.resizeObserver?.unobserve(watcher.element);
    this.intersectionObserver?.unobserve(watcher.element);
    watcher.element.removeEventListener("resize", watcher.onResize);
    watcher.gone = true;
  }

  /**
   * @param {Watcher} watcher
   * @param {"pinned"|"hidden"} key
   * @param {boolean} value
   */
  _set(watcher, key, value) {
    if (watcher[key] === Boolean(value)) return;
    watcher[key] = Boolean(value);
    this._schedule(watcher);
  }

  /**
   * @param {Watcher} watcher
   * @param {number} [delay]  ms
   */
  _schedule(watcher, delay = this.debounce) {
    if (watcher.gone || this.closed) return;
    clearTimeout(watcher.timer);
    watcher.timer = setTimeout(() => this._flush(watcher), delay);
  }

  /** @param {Watcher} watcher */
  _flush(watcher) {
    if (watcher.gone || this.closed) return;
    const wanted = this.measure(watcher);
    /** @param {RenderSize|null} a */
    const same = (a) => a && a.width === wanted.width && a.height === wanted.height && a.pinned === wanted.pinned;
    if (same(watcher.inFlight) || (!watcher.inFlight && same(watcher.lastSent))) return;
    watcher.inFlight = wanted;
    Promise.resolve(this.send(watcher.trackId, wanted)).then(() => {
      watcher.lastSent = wanted; // sent (or refused for good by an older server: not retried)
      watcher.failures = 0;
    }, () => {
      watcher.lastSent = null; // e.g. the track was just unpublished, or a lost connection
      watcher.failures = (watcher.failures ?? 0) + 1;
      if (watcher.failures <= MAX_RETRIES) this._schedule(watcher, RETRY_MS);
    }).finally(() => {
      if (watcher.inFlight === wanted) watcher.inFlight = null;
      if (!same(this.measure(watcher))) this._schedule(watcher); // changed meanwhile
    });
  }
}
