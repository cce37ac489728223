// Clinical captures (docs/capture.md): the full-resolution viewer
// (CaptureViewer), one per page: a modal dialog with a photo at its natural
// size (zoom in / out / fit / 100 %, Ctrl+wheel and pinch zoom, pan by
// scrolling or dragging; + - 0 1 on the keyboard, Escape closes, Tab stays
// inside) or a clip in a <video controls>, with who sent it, when, its size
// and whether it is saved to the record. The widget's CapturePanel
// (captures.js) and the console's controller (console/controller.js) each
// make one; the galleries (capture-gallery.js) open it.
//
// Interface: new CaptureViewer({ui, language}); .element (to put on the
// page), .open, .item, show(item, {opener, onViewed}), updateStored(consent
// state), close(restoreFocus), zoomBy(), setZoom(). DOM with h() (no
// innerHTML, no inline style attributes but the canvas fallback's size, set
// through the CSSOM); strings from the catalogue.

import { h, replace } from "./dom.js";
import {
  blobPicture, captureIcon, captureTitle, clock, formatDuration, formatSize, storedText, trapTab, uniqueId,
} from "./capture-util.js";

/** @typedef {import("./capture-util.js").CaptureUi} CaptureUi */
/** @typedef {import("./capture-util.js").CaptureItem} CaptureItem */
/** @typedef {import("./capture-util.js").CaptureIconName} CaptureIconName */

/** The natural size of a picture element. @param {HTMLImageElement|HTMLCanvasElement} el */
const naturalSize = (el) => (el instanceof HTMLImageElement
  ? { width: el.naturalWidth, height: el.naturalHeight }
  : { width: el.width, height: el.height });

const ZOOM_STEP = 1.25;
const ZOOM_MAX = 8;

/**
 * The full-resolution viewer: a modal dialog with the photo at its natural
 * size (zoom in / out / fit / 100 %, Ctrl+wheel and pinch zoom, pan by
 * scrolling or dragging) or the clip in a <video controls>. One per page.
 */
export class CaptureViewer {
  /**
   * @param {object} parts
   * @param {CaptureUi} parts.ui
   * @param {() => string} parts.language
   */
  constructor({ ui, language }) {
    this.ui = ui;
    this._language = language;
    this._titleId = uniqueId("dc-capture-viewer-title");
    this.element = h("div", {
      class: "dc-capture-viewer", role: "dialog", hidden: true,
      aria: { modal: "true", labelledby: this._titleId },
      onkeydown: (/** @type {KeyboardEvent} */ e) => this._key(e),
    });
    /** @type {CaptureItem|null} */
    this.item = null;
    /** @type {HTMLImageElement|HTMLCanvasElement|null} the photo */
    this.picture = null;
    /** @type {HTMLVideoElement|null} the clip */
    this.video = null;
    /** @type {number|null} the zoom (1: natural size), null: fitted to the window */
    this.zoom = null;
    /** @type {HTMLElement|null} focused again when the viewer closes */
    this._opener = null;
    /** @type {() => void} */
    this._revoke = () => {};
    /** @type {Map<number, {x: number, y: number}>} touch points (pinch) */
    this._pointers = new Map();
    this._pinch = null;
    this._drag = null;
  }

  get open() { return !this.element.hidden; }

  /**
   * Show a capture (it must have its blob).
   * @param {CaptureItem} item
   * @param {{opener?: HTMLElement|null, onViewed?: ((item: CaptureItem) => void)|null}} [options]
   */
  show(item, { opener = null, onViewed = null } = {}) {
    if (!item.blob) return;
    this._clear();
    const t = this.ui.t;
    const language = this._language();
    this.item = item;
    this._opener = opener;
    this.zoom = null;
    const what = captureTitle(t, item);
    const clip = item.kind === "clip";
    const facts = [];
    if (item.width && item.height) facts.push(t("captureDims", { width: item.width, height: item.height }));
    facts.push(formatSize(item.blob.size, t, language));
    if (clip && item.durationMs) facts.push(formatDuration(item.durationMs));
    this._status = h("span", { class: "dc-capture-viewer-stored", dataset: { stored: String(item.stored) } });
    this._zoomLabel = h("span", { class: "dc-capture-zoom-level", aria: { live: "polite" } });
    const tool = (/** @type {string} */ action, /** @type {CaptureIconName} */ iconName, /** @type {string} */ label, /** @type {() => void} */ onclick, text = "") => h("button", {
      type: "button", class: "dc-button dc-capture-tool", dataset: { action }, title: label,
      aria: { label }, onclick,
    }, captureIcon(iconName), text ? h("span", { class: "dc-capture-tool-text" }, text) : null);
    const tools = clip ? null : h("div", { class: "dc-capture-tools", role: "toolbar", aria: { label: t("captureZoomTools") } },
      tool("capture-zoom-out", "zoomOut", t("captureZoomOut"), () => this.zoomBy(1 / ZOOM_STEP)),
      tool("capture-zoom-fit", "fit", t("captureZoomFitLabel"), () => this.setZoom(null), t("captureZoomFit")),
      h("button", {
        type: "button", class: "dc-button dc-capture-tool", dataset: { action: "capture-zoom-actual" },
        aria: { label: t("captureZoomActualLabel") }, title: t("captureZoomActualLabel"), onclick: () => this.setZoom(1),
      }, t("captureZoomActual")),
      tool("capture-zoom-in", "zoomIn", t("captureZoomIn"), () => this.zoomBy(ZOOM_STEP)),
      this._zoomLabel);
    this.stage = h("div", {
      class: "dc-capture-stage", tabindex: "0",
      aria: { label: t(clip ? "captureStageClip" : "captureStagePhoto", { what }) },
    });
    if (clip) {
      const url = URL.createObjectURL(item.blob);
      this._revoke = () => URL.revokeObjectURL(url);
      const video = /** @type {HTMLVideoElement} */ (h("video", {
        class: "dc-capture-full-video", controls: true, playsInline: true, preload: "metadata",
        aria: { label: what },
      }));
      video.addEventListener("error", () => {
        this.stage.append(h("p", { class: "dc-capture-blocked" }, t("captureClipBlocked")));
      }, { once: true });
      video.src = url;
      this.video = video;
      this.stage.append(video);
    } else {
      const { element, revoke } = blobPicture(item.blob, "dc-capture-full dc-fit", what, (el) => {
        this.picture = el;
        this._showZoom();
      });
      this._revoke = revoke;
      this.picture = element;
      this.stage.append(element);
      this._listenGestures(this.stage);
    }
    const close = h("button", {
      type: "button", class: "dc-button dc-capture-tool dc-capture-close", dataset: { action: "capture-close" },
      aria: { label: t("captureCloseLabel") }, title: t("captureCloseLabel"), onclick: () => this.close(),
    }, captureIcon("close"), h("span", { class: "dc-capture-tool-text" }, t("captureClose")));
    replace(this.element,
      h("div", { class: "dc-capture-viewer-box" },
        h("header", { class: "dc-capture-viewer-head" },
          h("div", { class: "dc-capture-viewer-text" },
            h("h3", { id: this._titleId, class: "dc-capture-viewer-title" },
              what, item.role && !item.mine ? ` (${this.ui.role(item.role)})` : "", ` · ${clock(item.at, language)}`),
            h("p", { class: "dc-capture-viewer-facts" }, facts.join(" · "), " · ", this._status),
            item.note ? h("p", { class: "dc-capture-viewer-note" }, t("captureNoteShown", { note: item.note })) : null),
          close),
        tools, this.stage));
    this.updateStored();
    this.element.dataset.captureId = item.id ?? item.key;
    this.element.dataset.kind = item.kind;
    this.element.hidden = false;
    this.stage.focus();
    onViewed?.(item);
  }

  /** The capture's "Saved to the record" line (again, e.g. after `capture-stored`). @param {string} [consentState] */
  updateStored(consentState = this._consentState ?? "off") {
    this._consentState = consentState;
    if (!this.item || !this._status) return;
    this._status.textContent = storedText(this.ui.t, this.item, consentState);
    this._status.dataset.stored = String(this.item.stored);
  }

  close(restoreFocus = true) {
    if (!this.item) return;
    this._clear();
    this.element.hidden = true;
    replace(this.element);
    if (restoreFocus && this._opener?.isConnected) this._opener.focus();
  }

  _clear() {
    this.video?.pause();
    this._revoke();
    this._revoke = () => {};
    this.item = null;
    this.picture = null;
    this.video = null;
    this._pointers.clear();
    this._pinch = null;
    this._drag = null;
  }

  // -- zoom ------------------------------------------------------------------------

  /** The scale the photo is drawn at now (1: natural size). */
  get scale() {
    if (!this.picture) return 1;
    const { width } = naturalSize(this.picture);
    return width ? this.picture.getBoundingClientRect().width / width : 1;
  }

  /** The scale at which the whole photo fits the stage. */
  get fitScale() {
    if (!this.picture || !this.stage) return 1;
    const { width, height } = naturalSize(this.picture);
    if (!width || !height) return 1;
    return Math.min(1, this.stage.clientWidth / width, this.stage.clientHeight / height);
  }

  /** @param {number} factor @param {{x: number, y: number}} [anchor] a point (client coordinates) that stays put */
  zoomBy(factor, anchor) {
    this.setZoom(this.scale * factor, anchor);
  }

  /**
   * @param {number|null} zoom null: fit the window; else 1 is the natural size
   * @param {{x: number, y: number}} [anchor]
   */
  setZoom(zoom, anchor) {
    const picture = this.picture;
    const stage = this.stage;
    if (!picture || !stage) return;
    const { width, height } = naturalSize(picture);
    if (!width || !height) return;
    const fit = this.fitScale;
    if (zoom !== null && zoom <= fit * 1.001) zoom = null; // smaller than fitted: fitted
    if (zoom !== null) zoom = Math.min(ZOOM_MAX, zoom);
    const box = stage.getBoundingClientRect();
    const point = anchor ?? { x: box.left + stage.clientWidth / 2, y: box.top + stage.clientHeight / 2 };
    const before = picture.getBoundingClientRect();
    const fx = before.width ? (point.x - before.left) / before.width : 0.5;
    const fy = before.height ? (point.y - before.top) / before.height : 0.5;
    this.zoom = zoom;
    picture.classList.toggle("dc-fit", zoom === null);
    const w = zoom === null ? null : Math.round(width * zoom);
    const hgt = zoom === null ? null : Math.round(height * zoom);
    if (picture instanceof HTMLImageElement) {
      if (w === null) {
        picture.removeAttribute("width");
        picture.removeAttribute("height");
      } else {
        picture.width = w;
        picture.height = hgt;
      }
    } else { // the canvas fallback has no width attribute to display with: CSSOM (allowed by CSP)
      picture.style.width = w === null ? "" : `${w}px`;
      picture.style.height = hgt === null ? "" : `${hgt}px`;
    }
    // keep the anchor point under the pointer (or the middle in the middle)
    const after = picture.getBoundingClientRect();
    stage.scrollLeft += after.left + fx * after.width - point.x;
    stage.scrollTop += after.top + fy * after.height - point.y;
    this._showZoom();
  }

  _showZoom() {
    if (!this._zoomLabel) return;
    const percent = Math.round(this.scale * 100);
    this._zoomLabel.textContent = this.ui.t("captureZoomLevel", { percent });
    if (this.picture) this.picture.dataset.zoom = this.zoom === null ? "fit" : String(this.zoom);
  }

  /** Ctrl+wheel (and a trackpad's pinch) zooms, a plain wheel scrolls; touch pinch; mouse drag pans. */
  _listenGestures(stage) {
    stage.addEventListener("wheel", (/** @type {WheelEvent} */ e) => {
      if (!e.ctrlKey && !e.metaKey) return; // scrolling pans
      e.preventDefault();
      this.zoomBy(Math.exp(-e.deltaY * 0.0025), { x: e.clientX, y: e.clientY });
    }, { passive: false });
    // a click on the fitted photo: its natural size (at least twice the fitted), there
    stage.addEventListener("click", (/** @type {MouseEvent} */ e) => {
      if (this.zoom === null && e.target === this.picture) {
        this.setZoom(Math.max(1, this.fitScale * 2), { x: e.clientX, y: e.clientY });
      }
    });
    stage.addEventListener("pointerdown", (/** @type {PointerEvent} */ e) => {
      if (e.pointerType === "touch") {
        this._pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
        if (this._pointers.size === 2) this._pinch = { distance: this._distance(), scale: this.scale };
      } else if (e.button === 0 && this.zoom !== null) {
        this._drag = { x: e.clientX, y: e.clientY };
        stage.setPointerCapture?.(e.pointerId);
        stage.classList.add("dc-grabbing");
      }
    });
    stage.addEventListener("pointermove", (/** @type {PointerEvent} */ e) => {
      if (this._pointers.has(e.pointerId)) {
        this._pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
        if (this._pinch && this._pointers.size === 2 && this._pinch.distance > 0) {
          const [a, b] = [...this._pointers.values()];
          this.setZoom(this._pinch.scale * (this._distance() / this._pinch.distance), { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 });
        }
      } else if (this._drag) {
        stage.scrollLeft -= e.clientX - this._drag.x;
        stage.scrollTop -= e.clientY - this._drag.y;
        this._drag = { x: e.clientX, y: e.clientY };
      }
    });
    const end = (/** @type {PointerEvent} */ e) => {
      this._pointers.delete(e.pointerId);
      if (this._pointers.size < 2) this._pinch = null;
      this._drag = null;
      stage.classList.remove("dc-grabbing");
    };
    stage.addEventListener("pointerup", end);
    stage.addEventListener("pointercancel", end);
  }

  _distance() {
    const [a, b] = [...this._pointers.values()];
    return a && b ? Math.hypot(a.x - b.x, a.y - b.y) : 0;
  }

  /** Escape closes; + - 0 1 zoom; Tab stays in the dialog. @param {KeyboardEvent} e */
  _key(e) {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      this.close();
      return;
    }
    if (e.key === "Tab") {
      trapTab(this.element, e);
      return;
    }
    const inStage = e.target === this.stage;
    if (!inStage || !this.picture || e.ctrlKey || e.metaKey || e.altKey) return;
    const zooms = { "+": () => this.zoomBy(ZOOM_STEP), "=": () => this.zoomBy(ZOOM_STEP), "-": () => this.zoomBy(1 / ZOOM_STEP),
      0: () => this.setZoom(null), 1: () => this.setZoom(1) };
    const action = zooms[e.key];
    if (action) {
      e.preventDefault();
      e.stopPropagation(); // not the console's room keys
      action();
    }
  }
}
