// Clinical captures (docs/capture.md): the small helpers the capture parts
// share (capture-viewer.js, capture-gallery.js, capture-consent.js,
// capture-ask.js, captures.js, capture-offer.js) and their types.
//
// Interface: the typedefs CaptureUi (what the parts may do to their page),
// CaptureApi (the client library's `session.captures`), CaptureMeta (a
// capture sent) and CaptureItem (a capture as the gallery and the viewer
// show it); NOTE_MAX, DEFAULT_CLIP_SECONDS; capturesOf(session) (null with
// an older client library); uniqueId(prefix); formatSize(), formatDuration(),
// clock(); captureIcon(name) (the captures' icons, CaptureIconName);
// captureTitle(), storedText() (the texts of a capture); blobPicture() (a
// Blob shown under any Content-Security-Policy); trapTab() (Tab kept inside a
// modal dialog). No state but uniqueId's counter; DOM with h(), strings from
// the catalogue.

import { h } from "./dom.js";

/** @typedef {import("../i18n/catalogue.js").Translate} Translate */

/**
 * What the capture parts may do to their page (the widget's WidgetUi has all of it).
 * @typedef {object} CaptureUi
 * @property {Translate} t
 * @property {(text: string) => void} say  a status line read by screen readers
 * @property {(name: string, detail?: object) => void} fire  a `digiclinic-<name>` event (the widget's)
 * @property {(role?: string) => string} role  a role's name in the UI language
 */

/**
 * The client library's `session.captures` (web-client/client/captures.js), as these parts use it.
 * @typedef {object} CaptureApi
 * @property {(kind: "photo"|"clip", note?: string) => Promise<any>} request  resolves to the request id
 * @property {(blob: Blob, meta: CaptureMeta) => Promise<any>} send  resolves to the capture id once the server has every byte
 * @property {(given: boolean) => Promise<any>} consent
 * @property {(captureId: string) => void} viewed
 * @property {Map<string, {info: any, blob: Blob}>} [received]
 * @property {number} [maxClipSeconds]
 * @property {number} [maxBytes]
 */

/**
 * @typedef {object} CaptureMeta
 * @property {"photo"|"clip"} kind
 * @property {number} [width]
 * @property {number} [height]
 * @property {number} [durationMs]
 * @property {string} [note]
 * @property {string} [requestId]
 */

/**
 * One capture of the room, as the gallery shows it.
 * @typedef {object} CaptureItem
 * @property {string} key  the capture id, or a local key until the server names our own
 * @property {string|null} id  the capture id
 * @property {"photo"|"clip"} kind
 * @property {boolean} mine  we sent it
 * @property {string} name  the sender's name
 * @property {string} role  the sender's role
 * @property {Date} at  when it started
 * @property {number} size
 * @property {number} offset  bytes transferred so far (the current direction)
 * @property {"up"|"down"} direction
 * @property {"sending"|"uploading"|"downloading"|"ready"|"failed"} state
 *   sending: ours going up; uploading: theirs going up; downloading: coming to us
 * @property {Blob|null} blob
 * @property {any} info  the `capture-ready` detail
 * @property {boolean} stored  saved to the record
 * @property {number} width
 * @property {number} height
 * @property {number} durationMs
 * @property {string} note
 * @property {string|null} error
 * @property {(() => void)|null} retry  sends it again (ours that failed)
 * @property {HTMLElement|null} element
 * @property {HTMLElement} [_progress]  its progress box
 * @property {HTMLElement} [_status]  its status line
 * @property {ImageBitmap} [_thumb]  its thumbnail, decoded once
 */

export const NOTE_MAX = 500;
export const DEFAULT_CLIP_SECONDS = 10;

/**
 * The session's capture API, or null (an older client library, or no session).
 * @param {any} session
 * @returns {CaptureApi|null}
 */
export function capturesOf(session) {
  return session?.captures ?? null;
}

let uid = 0;
/** A document-unique id (the console has a gallery per room). @param {string} prefix */
export const uniqueId = (prefix) => `${prefix}-${(uid += 1)}`;

/**
 * "412 KB", "1.2 MB" (French: "Ko", "Mo", "1,2") in the UI language.
 * @param {number} bytes
 * @param {Translate} t
 * @param {string} language
 */
export function formatSize(bytes, t, language) {
  const number = (/** @type {number} */ n, /** @type {number} */ digits) => new Intl.NumberFormat([language, "en"], {
    maximumFractionDigits: digits,
  }).format(n);
  if (bytes >= 1024 * 1024) return t("captureSizeMB", { n: number(bytes / (1024 * 1024), 1) });
  return t("captureSizeKB", { n: number(Math.max(1, Math.round(bytes / 1024)), 0) });
}

/** "0:08" @param {number} ms */
export function formatDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** "10:42" in the UI language (24-hour clock but in English, as the chat). */
export function clock(/** @type {Date} */ date, /** @type {string} */ language) {
  return new Intl.DateTimeFormat([language, "en"], {
    hour: "2-digit", minute: "2-digit", ...(language === "en" ? {} : { hourCycle: "h23" }),
  }).format(date);
}

const SVG = "http://www.w3.org/2000/svg";
// 24x24 outline icons of the captures (the style of dom.js's)
const ICONS = {
  photo: ["M3 8h4l2-3h6l2 3h4v11H3z", "M12 16.5a3.5 3.5 0 1 0 0-7a3.5 3.5 0 0 0 0 7z"],
  ask: ["M2 10h3l1.5-2h5L13 10h3v9H2z", "M9 17a2.5 2.5 0 1 0 0-5a2.5 2.5 0 0 0 0 5z",
    "M17.5 3.5a2.5 2.5 0 1 1 3 2.4c-.6.3-1 .8-1 1.4V8", "M19.5 10.5v.01"],
  clip: ["M3 6h13v12H3z", "M16 10l5-3v10l-5-3", "M8 9.5v5l4-2.5z"],
  zoomIn: ["M10.5 17a6.5 6.5 0 1 0 0-13a6.5 6.5 0 0 0 0 13z", "M15.5 15.5L21 21", "M10.5 7.5v6", "M7.5 10.5h6"],
  zoomOut: ["M10.5 17a6.5 6.5 0 1 0 0-13a6.5 6.5 0 0 0 0 13z", "M15.5 15.5L21 21", "M7.5 10.5h6"],
  fit: ["M4 9V4h5", "M20 9V4h-5", "M4 15v5h5", "M20 15v5h-5"],
  close: ["M6 6l12 12", "M18 6L6 18"],
  saved: ["M5 12l4 4 10-10"],
};

/** @typedef {keyof typeof ICONS} CaptureIconName the captures' icons */

/** An aria-hidden icon. @param {CaptureIconName} name */
export function captureIcon(name, className = "dc-icon") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  for (const d of ICONS[name]) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

/**
 * "Photo from Amina Uwase" / "Your clip".
 * @param {Translate} t
 * @param {{kind: string, mine: boolean, name: string}} item
 */
export function captureTitle(t, { kind, mine, name }) {
  const clip = kind === "clip";
  if (mine) return t(clip ? "captureClipMine" : "capturePhotoMine");
  return t(clip ? "captureClipFrom" : "capturePhotoFrom", { name: name || "?" });
}

/**
 * Whether a capture is saved to the record, or why not: the room's capture
 * consent is being asked (or was withdrawn), given (saved in a moment), or
 * not asked at all (this server stores no captures).
 * @param {Translate} t
 * @param {{stored: boolean}} item
 * @param {string} consentState  `capture-consent-state`'s state ("off" until asked)
 */
export function storedText(t, { stored }, consentState) {
  if (stored) return t("captureStored");
  if (consentState === "recording") return t("captureSaving");
  if (consentState === "awaiting_consent" || consentState === "paused") return t("captureNotStoredNoConsent");
  return t("captureNotStored");
}

/**
 * A picture of a Blob: an <img> of an object URL; where the page's
 * Content-Security-Policy refuses blob: images (img-src), a <canvas> drawn
 * from the decoded image instead (no URL at all). `onReady` gets the element
 * in use once it has its natural size.
 * @param {Blob} blob
 * @param {string} className
 * @param {string} label
 * @param {(el: HTMLImageElement|HTMLCanvasElement) => void} onReady
 * @returns {{element: HTMLImageElement, revoke: () => void}}
 */
export function blobPicture(blob, className, label, onReady) {
  const url = URL.createObjectURL(blob);
  const img = /** @type {HTMLImageElement} */ (h("img", { class: className, alt: label, draggable: "false" }));
  img.addEventListener("load", () => onReady(img), { once: true });
  img.addEventListener("error", () => {
    createImageBitmap(blob).then((bitmap) => {
      const canvas = /** @type {HTMLCanvasElement} */ (h("canvas", { class: className, role: "img", aria: { label } }));
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
      canvas.getContext("2d").drawImage(bitmap, 0, 0);
      bitmap.close();
      img.replaceWith(canvas);
      onReady(canvas);
    }).catch(() => {});
  }, { once: true });
  img.src = url;
  return { element: img, revoke: () => URL.revokeObjectURL(url) };
}

/**
 * Keep Tab inside a modal dialog: from the last focusable to the first and back.
 * @param {HTMLElement} dialog
 * @param {KeyboardEvent} e
 */
export function trapTab(dialog, e) {
  const focusable = [...dialog.querySelectorAll("button, [href], input, textarea, select, video[controls], [tabindex]:not([tabindex='-1'])")]
    .filter((el) => !(/** @type {HTMLButtonElement} */ (el).disabled) && /** @type {HTMLElement} */ (el).getClientRects().length > 0);
  if (!focusable.length) return;
  const first = /** @type {HTMLElement} */ (focusable[0]);
  const last = /** @type {HTMLElement} */ (focusable[focusable.length - 1]);
  const active = /** @type {ShadowRoot|Document} */ (dialog.getRootNode()).activeElement;
  if (e.shiftKey && active === first) {
    e.preventDefault();
    last.focus();
  } else if (!e.shiftKey && active === last) {
    e.preventDefault();
    first.focus();
  }
}
