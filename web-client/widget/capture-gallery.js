// Clinical captures (docs/capture.md): a room's gallery (CaptureGallery).
// One entry per capture: its transfer's progress both ways until it is here,
// then a thumbnail that opens the viewer (capture-viewer.js), and whether it
// is saved to the record ("Saved to the record", or why not); a "Waiting for
// the photo" entry per request of ours not answered yet; a failed send of
// ours offers "Try again". The widget has one (captures.js), the console one
// per room's tile (console/tile.js).
//
// Interface: new CaptureGallery({ui, language, session, viewer,
// consentState, changed}); .element, .head (for more controls), .items,
// .requests, .empty; listen(session, signal) follows the session's capture-*
// events; label() after a language change; reset(); for our own sends
// outgoing(), named(), sent(), sendFailed(), remove(); requested() and
// answered() for our requests; open(item) opens the viewer. It talks to the
// session only through `session.captures` (capture-util.js's capturesOf) and
// its events. DOM with h(); strings from the catalogue.

import { h, replace } from "./dom.js";
import {
  captureIcon, captureTitle, capturesOf, clock, formatDuration, formatSize, storedText, uniqueId,
} from "./capture-util.js";

/** @typedef {import("./capture-util.js").CaptureUi} CaptureUi */
/** @typedef {import("./capture-util.js").CaptureItem} CaptureItem */
/** @typedef {import("./capture-util.js").CaptureMeta} CaptureMeta */
/** @typedef {import("./capture-viewer.js").CaptureViewer} CaptureViewer */

const THUMB_WIDTH = 160;

/**
 * A room's captures: one entry each, with its transfer's progress until it is
 * here, then a thumbnail that opens the viewer, and whether it is saved to the
 * record. Follows the session's capture-* events (listen()).
 */
export class CaptureGallery {
  /**
   * @param {object} parts
   * @param {CaptureUi} parts.ui
   * @param {() => string} parts.language
   * @param {() => any} parts.session  the current session (events of an older one are ignored)
   * @param {CaptureViewer} parts.viewer
   * @param {() => string} parts.consentState  the room's capture consent state ("off" until asked)
   * @param {() => void} [parts.changed]  an entry came or went (the widget shows or hides the strip)
   */
  constructor({ ui, language, session, viewer, consentState, changed = () => {} }) {
    this.ui = ui;
    this._language = language;
    this._session = session;
    this.viewer = viewer;
    this._consentState = consentState;
    this.changed = changed;
    /** @type {Map<string, CaptureItem>} by key, oldest first */
    this.items = new Map();
    /** @type {Map<string, {kind: string, element: HTMLElement}>} our requests not answered yet, by request id */
    this.requests = new Map();
    this._titleId = uniqueId("dc-captures-title");
    this.title = h("h3", { id: this._titleId, class: "dc-captures-title" });
    this.head = h("div", { class: "dc-captures-head" }, this.title);
    this.list = h("ol", { class: "dc-capture-list" });
    this.element = h("section", { class: "dc-captures", aria: { labelledby: this._titleId }, hidden: true },
      this.head, this.list);
    this._local = 0;
    /** @type {import("../i18n/catalogue.js").Translate|null} the translator the texts are in */
    this._t = null;
    this.label();
  }

  /** Texts that do not depend on the captures; after a language change, the entries again. */
  label() {
    if (this._t === this.ui.t) return;
    const first = !this._t;
    this._t = this.ui.t;
    this.title.textContent = this.ui.t("captureGalleryHeading");
    this.list.setAttribute("aria-label", this.ui.t("captureGalleryHeading"));
    if (!first) for (const item of this.items.values()) this.renderItem(item);
  }

  get empty() { return this.items.size === 0 && this.requests.size === 0; }

  /** A new call: nothing shown. */
  reset() {
    // the viewer may be the page's (the console's): closed only if it shows one of ours
    if (this.viewer.open && [...this.items.values()].includes(this.viewer.item)) this.viewer.close(false);
    for (const item of this.items.values()) {
      item.element?.remove();
      item._thumb?.close();
    }
    this.items.clear();
    for (const request of this.requests.values()) request.element.remove();
    this.requests.clear();
    this._update();
  }

  /**
   * Follow a session's capture events.
   * @param {EventTarget} session
   * @param {AbortSignal} [signal]  stops listening
   */
  listen(session, signal) {
    const on = (/** @type {string} */ type, /** @type {(detail: any) => void} */ fn) => session.addEventListener(type, (e) => {
      if (session === this._session()) fn(/** @type {CustomEvent} */ (e).detail ?? {});
    }, { signal });
    on("capture-started", (d) => this.started(d));
    on("capture-progress", (d) => this.progress(d));
    on("capture-ready", (d) => this.ready(d));
    on("capture-received", (d) => this.received(d));
    on("capture-stored", (d) => this.stored(d));
    on("capture-failed", (d) => this.failed(d));
    on("capture-consent-state", () => this.consentChanged());
  }

  get me() { return this._session()?.participantId ?? null; }

  /** @param {string} id @returns {string} */
  nameOf(id) {
    return this._session()?.participants?.get(id)?.name ?? "";
  }

  /** @param {string} id @returns {string} */
  roleOf(id) {
    return this._session()?.participants?.get(id)?.role ?? "";
  }

  /** @param {string|null|undefined} id @returns {CaptureItem|undefined} */
  byId(id) {
    if (!id) return undefined;
    return this.items.get(id) ?? [...this.items.values()].find((item) => item.id === id);
  }

  /**
   * A new entry.
   * @param {Partial<CaptureItem> & {key: string, kind: "photo"|"clip"}} fields
   * @returns {CaptureItem}
   */
  add(fields) {
    /** @type {CaptureItem} */
    const item = {
      id: null, mine: false, name: "", role: "", at: new Date(), size: 0, offset: 0, direction: "up",
      state: "uploading", blob: null, info: null, stored: false, width: 0, height: 0, durationMs: 0,
      note: "", error: null, retry: null, element: null, ...fields,
    };
    this.items.set(item.key, item);
    this.renderItem(item);
    this.list.append(item.element);
    this._update();
    return item;
  }

  /** Drop an entry. @param {CaptureItem} item */
  remove(item) {
    item.element?.remove();
    item._thumb?.close();
    this.items.delete(item.key);
    this._update();
  }

  // -- our own ---------------------------------------------------------------------

  /**
   * We start sending a capture (its id comes with `capture-started` or when send() resolves).
   * @param {Blob} blob
   * @param {CaptureMeta} meta
   * @returns {CaptureItem}
   */
  outgoing(blob, meta) {
    this._local += 1;
    const me = this._session()?.joined?.participant;
    return this.add({
      key: `local-${this._local}`, kind: meta.kind, mine: true, name: me?.name ?? "", role: me?.role ?? "",
      size: blob.size, state: "sending", blob, width: meta.width ?? 0, height: meta.height ?? 0,
      durationMs: meta.durationMs ?? 0, note: meta.note ?? "",
    });
  }

  /** The server named our capture. @param {CaptureItem} item @param {string} id */
  named(item, id) {
    if (!id || item.id === id) return;
    const other = this.items.get(id); // its events came before we knew it was ours
    if (other && other !== item) {
      item.offset = Math.max(item.offset, other.offset);
      item.stored ||= other.stored;
      item.info ??= other.info;
      other.element?.remove();
      this.items.delete(id);
    }
    item.id = id;
    this.renderItem(item);
  }

  /** Our capture is on the server. @param {CaptureItem} item */
  sent(item) {
    item.offset = item.size;
    item.state = "ready";
    item.error = null;
    item.retry = null;
    this.renderItem(item);
  }

  /** @param {CaptureItem} item @param {any} err @param {() => void} retry */
  sendFailed(item, err, retry) {
    item.state = "failed";
    item.error = String(err?.code ?? err?.name ?? err?.message ?? err);
    item.retry = retry;
    this.renderItem(item);
  }

  /** A request of ours is waiting for its capture. @param {string} requestId @param {"photo"|"clip"} kind */
  requested(requestId, kind) {
    if (!requestId || this.requests.has(requestId)) return;
    const element = h("li", { class: "dc-capture-item dc-capture-pending", dataset: { requestId, kind } },
      h("span", { class: "dc-capture-thumb dc-capture-thumb-empty", aria: { hidden: "true" } }, captureIcon(kind === "clip" ? "clip" : "photo")),
      h("p", { class: "dc-capture-who" }, this.ui.t(kind === "clip" ? "captureWaitingClip" : "captureWaitingPhoto")));
    this.requests.set(requestId, { kind, element });
    this.list.append(element);
    this._update();
  }

  /** @param {string|null|undefined} requestId  answered: gone (null: the oldest of `kind`) @param {string} [kind] */
  answered(requestId, kind) {
    let id = requestId && this.requests.has(requestId) ? requestId : null;
    if (!id && kind) id = [...this.requests.entries()].find(([, r]) => r.kind === kind)?.[0] ?? null;
    if (!id) return;
    this.requests.get(id).element.remove();
    this.requests.delete(id);
    this._update();
  }

  // -- the session's events --------------------------------------------------------

  /** @param {{capture_id: string, kind: "photo"|"clip", size: number, from: string, name?: string}} d */
  started(d) {
    const mine = d.from === this.me;
    if (mine) {
      const local = [...this.items.values()].find((i) => i.mine && !i.id && i.size === d.size);
      if (local) {
        this.named(local, d.capture_id);
        return;
      }
    }
    if (this.byId(d.capture_id)) return;
    const name = mine ? "" : d.name || this.nameOf(d.from);
    this.add({
      key: d.capture_id, id: d.capture_id, kind: d.kind === "clip" ? "clip" : "photo", mine, name,
      role: this.roleOf(d.from), size: d.size ?? 0, state: mine ? "sending" : "uploading",
    });
    if (!mine) {
      this.answered(null, d.kind);
      this.ui.say(this.ui.t(d.kind === "clip" ? "captureIncomingClip" : "captureIncomingPhoto", { name }));
    }
  }

  /** @param {{capture_id: string, offset: number, size: number, direction: "up"|"down", mine?: boolean}} d */
  progress(d) {
    let item = this.byId(d.capture_id);
    if (!item && d.mine && d.direction !== "down") { // our upload, before send() resolves with its id
      item = [...this.items.values()].find((i) => i.mine && !i.id && i.size === d.size);
      if (item) this.named(item, d.capture_id);
    }
    if (!item || item.state === "ready" || item.state === "failed") return;
    item.offset = d.offset ?? item.offset;
    item.size = d.size || item.size;
    item.direction = d.direction === "down" ? "down" : "up";
    if (item.direction === "down") item.state = "downloading";
    this._updateProgress(item);
  }

  /** @param {any} d  capture-ready */
  ready(d) {
    const mine = d.from === this.me;
    let item = this.byId(d.capture_id);
    if (!item && mine) item = [...this.items.values()].find((i) => i.mine && !i.id && i.size === d.size);
    if (!item) {
      item = this.add({
        key: d.capture_id, id: d.capture_id, kind: d.kind === "clip" ? "clip" : "photo", mine,
        name: d.name ?? "", role: d.role ?? "", size: d.size ?? 0, state: mine ? "sending" : "downloading",
      });
    }
    if (item.id !== d.capture_id) this.named(item, d.capture_id);
    Object.assign(item, {
      info: d, name: d.name || item.name, role: d.role || item.role, kind: d.kind === "clip" ? "clip" : "photo",
      size: d.size || item.size, width: d.width ?? item.width, height: d.height ?? item.height,
      durationMs: d.duration_ms ?? item.durationMs, note: d.note ?? item.note, stored: Boolean(d.stored) || item.stored,
    });
    if (item.blob) {
      item.state = "ready";
    } else {
      item.state = "downloading";
      item.offset = 0;
      item.direction = "down";
    }
    this.answered(d.request_id, null);
    this.renderItem(item);
    this.ui.fire("capture-ready", {
      captureId: d.capture_id, kind: item.kind, mime: d.mime, size: item.size, width: item.width,
      height: item.height, durationMs: item.durationMs, from: d.from, name: item.name, role: item.role,
      requestId: d.request_id ?? null, stored: item.stored, mine,
    });
    // already fetched by the library before we heard of it
    const have = capturesOf(this._session())?.received?.get(d.capture_id);
    if (have?.blob && !item.blob) this.received({ capture_id: d.capture_id, blob: have.blob, info: have.info });
  }

  /** @param {{capture_id: string, blob: Blob, info?: any}} d */
  received(d) {
    let item = this.byId(d.capture_id);
    if (!item && d.info) {
      this.ready({ ...d.info, capture_id: d.capture_id });
      item = this.byId(d.capture_id);
    }
    if (!item || !d.blob) return;
    const first = !item.blob;
    item.blob = d.blob;
    item.state = "ready";
    item.offset = item.size = d.blob.size || item.size;
    this.renderItem(item);
    if (first && !item.mine) {
      const what = captureTitle(this.ui.t, item);
      this.ui.say(this.ui.t("captureReceivedStatus", { what }));
      this.ui.fire("capture-received", {
        captureId: item.id, kind: item.kind, size: item.size, width: item.width, height: item.height,
        durationMs: item.durationMs, name: item.name, role: item.role,
      });
    }
  }

  /** @param {{capture_id: string}} d */
  stored(d) {
    const item = this.byId(d.capture_id);
    if (!item) return;
    item.stored = true;
    this.renderItem(item);
    if (this.viewer.item === item) this.viewer.updateStored(this._consentState());
    this.ui.fire("capture-stored", { captureId: d.capture_id });
  }

  /** @param {{capture_id: string, code?: string, message?: string}} d */
  failed(d) {
    const item = this.byId(d.capture_id);
    if (item && item.state !== "ready") {
      item.state = "failed";
      item.error = d.code ?? "error";
      this.renderItem(item);
    }
    this.ui.fire("capture-failed", { captureId: d.capture_id, code: d.code ?? "error", message: d.message ?? "" });
  }

  /** The consent changed: "Saved" / "Not saved (no consent yet)" again. */
  consentChanged() {
    for (const item of this.items.values()) this._updateStatus(item);
    if (this.viewer.item) this.viewer.updateStored(this._consentState());
  }

  // -- drawing ---------------------------------------------------------------------

  _update() {
    this.element.hidden = this.empty;
    this.changed();
  }

  /** Open the viewer on a capture we have. @param {CaptureItem} item @param {HTMLElement|null} [opener] */
  open(item, opener = null) {
    if (!item.blob) return;
    this.viewer.updateStored(this._consentState());
    this.viewer.show(item, {
      opener,
      onViewed: () => {
        if (item.id) capturesOf(this._session())?.viewed(item.id);
        this.ui.fire("capture-viewed", { captureId: item.id, kind: item.kind });
      },
    });
  }

  /** Draw an entry (again). @param {CaptureItem} item */
  renderItem(item) {
    const t = this.ui.t;
    const language = this._language();
    const what = captureTitle(t, item);
    const li = item.element ?? h("li", { class: "dc-capture-item" });
    li.dataset.captureId = item.id ?? "";
    li.dataset.state = item.state;
    li.dataset.kind = item.kind;
    li.classList.toggle("dc-capture-mine", item.mine);
    const clipLength = item.kind === "clip" && item.durationMs ? formatDuration(item.durationMs) : "";
    let thumb;
    if (item.blob) {
      thumb = h("button", {
        type: "button", class: "dc-capture-thumb", dataset: { action: "capture-open", captureId: item.id ?? item.key },
        // the clip's visible duration is part of its name (WCAG 2.5.3)
        aria: { label: t("captureOpenLabel", { what: clipLength ? `${what} ${clipLength}` : what, time: clock(item.at, language) }) },
        onclick: (/** @type {MouseEvent} */ e) => this.open(item, /** @type {HTMLElement} */ (e.currentTarget)),
      });
      if (item.kind === "clip") {
        thumb.append(captureIcon("clip", "dc-icon dc-capture-clip-icon"),
          clipLength ? h("span", { class: "dc-capture-duration" }, clipLength) : null);
      } else {
        this._thumbnail(item, thumb);
      }
    } else {
      thumb = h("span", { class: "dc-capture-thumb dc-capture-thumb-empty", aria: { hidden: "true" } },
        captureIcon(item.kind === "clip" ? "clip" : "photo"));
    }
    const progress = h("div", { class: "dc-capture-progress" },
      h("progress", { class: "dc-capture-bar", max: "1", value: "0" }),
      h("span", { class: "dc-capture-progress-text" }));
    const status = h("p", { class: "dc-capture-status" });
    replace(li, thumb, h("div", { class: "dc-capture-meta" },
      h("p", { class: "dc-capture-who" }, what, h("span", { class: "dc-capture-time" }, ` · ${clock(item.at, language)}`)),
      progress, status));
    item.element = li;
    item._progress = progress;
    item._status = status;
    this._updateProgress(item);
    this._updateStatus(item);
  }

  /** The progress bar and its text, in place (no focus lost). @param {CaptureItem} item */
  _updateProgress(item) {
    const box = item._progress;
    if (!box) return;
    const moving = ["sending", "uploading", "downloading"].includes(item.state);
    box.hidden = !moving;
    if (!moving) return;
    const t = this.ui.t;
    const language = this._language();
    const size = Math.max(item.size, 1);
    const offset = Math.min(item.offset, size);
    const percent = Math.floor((offset / size) * 100);
    box.dataset.offset = String(offset);
    box.dataset.size = String(item.size);
    box.dataset.direction = item.direction;
    const bar = /** @type {HTMLProgressElement} */ (box.querySelector("progress"));
    bar.max = size;
    bar.value = offset;
    const doing = item.state === "sending" ? "captureProgressSending"
      : item.state === "uploading" ? "captureProgressTheirs" : "captureProgressReceiving";
    bar.setAttribute("aria-label", t(doing, { name: item.name }));
    bar.setAttribute("aria-valuetext", `${percent} %`);
    box.querySelector(".dc-capture-progress-text").textContent = t("captureProgressText", {
      percent, done: formatSize(offset, t, language), total: formatSize(item.size, t, language),
    });
  }

  /** "Saved to the record", or a failure and "Try again". @param {CaptureItem} item */
  _updateStatus(item) {
    const status = item._status;
    if (!status) return;
    const t = this.ui.t;
    status.dataset.stored = String(item.stored);
    if (item.state === "failed") {
      replace(status, h("span", { class: "dc-capture-error" }, t("captureTransferFailed", { code: item.error ?? "error" })),
        item.retry ? h("button", {
          type: "button", class: "dc-button dc-small-button dc-capture-retry", dataset: { action: "capture-retry" },
          onclick: () => item.retry?.(),
        }, t("captureRetry")) : null);
      return;
    }
    const text = item.state === "ready" || item.info ? storedText(t, item, this._consentState()) : "";
    replace(status, item.stored ? captureIcon("saved", "dc-icon dc-capture-saved-icon") : null, text);
    status.hidden = !text;
  }

  /** A small picture of a photo, drawn once it is decoded. @param {CaptureItem} item @param {HTMLElement} button */
  _thumbnail(item, button) {
    const canvas = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "dc-capture-thumb-img", aria: { hidden: "true" } }));
    button.append(canvas);
    const draw = (/** @type {ImageBitmap} */ bitmap) => {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
      canvas.getContext("2d")?.drawImage(bitmap, 0, 0);
    };
    if (item._thumb) {
      draw(item._thumb);
      return;
    }
    createImageBitmap(item.blob, { resizeWidth: THUMB_WIDTH, resizeQuality: "medium" }).then((bitmap) => {
      item._thumb = bitmap;
      draw(bitmap);
    }).catch(() => {});
  }
}
