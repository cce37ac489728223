// Clinical captures in the widget (docs/capture.md): the CapturePanel part.
//
//   - "Ask for a photo" (the `capture` grant): a small form in the captures
//     strip (photo or clip, optional note);
//   - on the patient's side (the `publish` grant, not a specialist): the
//     request's dialog, and "Send a photo" unasked: take a photo at the
//     camera's full resolution or record a clip (capture-media.js), check it
//     (preview, size, a note), then Send, Retake or Cancel;
//   - the strip above the control bar: the offer when video fails
//     (capture-offer.js), the "Ask for a photo" form (capture-ask.js), the
//     transfers' progress both ways and the gallery (capture-gallery.js),
//     whose thumbnails open the full-resolution viewer (capture-viewer.js);
//   - the consent question for saving captures to the record
//     (capture-consent.js).
// The parts in those files are shared with the console (but the offer); this
// file composes them and does the patient side's taking and sending. It
// talks to the session only through `session.captures` and its events; with
// an older client library (no `captures`) it shows nothing.

import {
  DEFAULT_CLIP_SECONDS, NOTE_MAX, blobPicture, captureIcon, capturesOf, formatDuration, formatSize, trapTab, uniqueId,
} from "./capture-util.js";
import { CaptureRequestForm } from "./capture-ask.js";
import { CaptureConsent } from "./capture-consent.js";
import { CaptureGallery } from "./capture-gallery.js";
import { CaptureOffer } from "./capture-offer.js";
import { CaptureViewer } from "./capture-viewer.js";
import { recordClip, takeFullResolutionPhoto } from "./capture-media.js";
import { h, replace } from "./dom.js";

export { capturesOf } from "./capture-util.js";

/** @typedef {import("../digiclinic-client.js").ConsultSession} ConsultSession */
/** @typedef {import("./call-state.js").CallState} CallState */
/** @typedef {import("./ui.js").WidgetUi} WidgetUi */
/** @typedef {import("./capture-util.js").CaptureMeta} CaptureMeta */

/** the server's default capture.max_bytes, until the library tells */
const MAX_BYTES = 8 * 1024 * 1024;
/** a camera opened for a capture while ours is off: as large as it goes */
const CAPTURE_CAMERA = { width: { ideal: 4096 }, height: { ideal: 2160 } };

/**
 * @typedef {object} Taken a photo or clip taken, before it is sent
 * @property {"photo"|"clip"} kind
 * @property {Blob} blob
 * @property {number} width
 * @property {number} height
 * @property {number} durationMs
 */

export class CapturePanel {
  /**
   * @param {object} parts
   * @param {WidgetUi} parts.ui
   * @param {() => CallState} parts.call
   * @param {() => ConsultSession|null} parts.session
   * @param {() => string} parts.language
   * @param {() => boolean} parts.inCall
   */
  constructor({ ui, call, session, language, inCall }) {
    this.ui = ui;
    this._call = call;
    this._session = session;
    this._language = language;
    this._inCall = inCall;
    this.viewer = new CaptureViewer({ ui, language });
    this.consent = new CaptureConsent({ ui, session, changed: () => this._consentChanged() });
    this.gallery = new CaptureGallery({
      ui, language, session, viewer: this.viewer, consentState: () => this.consent.state,
      changed: () => this._stripChanged(),
    });
    this.askForm = new CaptureRequestForm({
      ui, session, asked: (requestId, kind) => this.gallery.requested(requestId, kind), changed: () => this._stripChanged(),
    });
    this.askForm.element.id = uniqueId("dc-capture-ask-form");
    this.withdraw = h("button", {
      type: "button", class: "dc-button dc-small-button dc-capture-withdraw", hidden: true,
      dataset: { action: "capture-consent-withdraw" }, onclick: () => this.consent.answer(false),
    });
    this.gallery.head.append(this.withdraw);
    /** when video fails: "Send a photo instead?" / "Ask for a photo" */
    this.offer = new CaptureOffer({
      ui, call, session, inCall,
      side: () => (this.canSend ? "send" : this.canAsk ? "ask" : null),
      // a capture being taken, asked for or on its way (a thin uplink pauses the camera while it is sent)
      busy: () => this.phase !== "closed" || this.gallery.requests.size > 0
        || [...this.gallery.items.values()].some((i) => ["sending", "uploading", "downloading"].includes(i.state)),
      accept: (offer) => {
        if (offer === "send") this.openDialog({ opener: this.sendButton });
        else this.askForm.ask("photo");
      },
      returnFocus: () => [this.sendButton, this.askButton].find((button) => !button.hidden) ?? null,
      changed: () => this._stripChanged(),
    });
    /** the row above the control bar: the offer, the ask form, the gallery */
    this.strip = h("div", { class: "dc-capture-strip", hidden: true }, this.offer.element, this.askForm.element, this.gallery.element);
    this._dialogTitle = "dc-capture-dialog-title";
    /** taking and sending a capture (patient's side): a modal dialog over the call */
    this.dialog = h("div", {
      class: "dc-capture-dialog", role: "dialog", hidden: true, aria: { modal: "true", labelledby: this._dialogTitle },
      onkeydown: (/** @type {KeyboardEvent} */ e) => this._dialogKey(e),
    });
    this.askButton = h("button", {
      type: "button", class: "dc-button dc-control", hidden: true, dataset: { action: "capture-request" },
      aria: { controls: this.askForm.element.id, expanded: "false" },
      onclick: (/** @type {MouseEvent} */ e) => this.askForm.toggle(/** @type {HTMLElement} */ (e.currentTarget)),
    });
    this.sendButton = h("button", {
      type: "button", class: "dc-button dc-control", hidden: true, dataset: { action: "capture-send" },
      aria: { haspopup: "dialog" },
      onclick: (/** @type {MouseEvent} */ e) => this.openDialog({ opener: /** @type {HTMLElement} */ (e.currentTarget) }),
    });
    /** the control bar's buttons (before the record control) */
    this.controls = [this.askButton, this.sendButton];
    /** over the whole widget: the capture dialog and the viewer */
    this.overlays = [this.dialog, this.viewer.element];

    /** @type {"closed"|"choose"|"taking"|"recording"|"preview"} */
    this.phase = "closed";
    /** @type {any} the `capture-requested` being answered, if any */
    this.request = null;
    /** @type {Taken|null} */
    this.taken = null;
    this._note = "";
    /** @type {string|null} why the last attempt failed */
    this._error = null;
    this._attempt = 0; // a newer attempt (or Cancel) makes an older one's result moot
    /** @type {(Promise<any> & {stop: () => void})|null} */
    this._recording = null;
    /** @type {MediaStreamTrack|null} a camera opened for a capture while ours is off */
    this._tempCamera = null;
    /** @type {HTMLElement|null} */
    this._opener = null;
    /** @type {HTMLElement|null} the recording's "3 s of 10 s" */
    this._countdown = null;
    /** @type {() => void} */
    this._revokePreview = () => {};
    /** @type {AbortController|null} */
    this._listening = null;
    /** @type {import("../i18n/catalogue.js").Translate|null} the translator the open parts are in */
    this._t = null;
  }

  // -- grants ----------------------------------------------------------------------

  get _me() { return this._session()?.joined?.participant ?? null; }

  /** May ask for captures: the `capture` grant (and a library that has captures). */
  get canAsk() {
    return Boolean(capturesOf(this._session()) && this._me?.grants?.capture);
  }

  /** The patient's side: may send (the `publish` grant), and is not the specialist. */
  get canSend() {
    const me = this._me;
    return Boolean(capturesOf(this._session()) && me?.grants?.publish && me.role !== "specialist");
  }

  // -- lifecycle -------------------------------------------------------------------

  /** A new call. */
  reset() {
    this.stop();
    this.gallery.reset();
    this.consent.reset();
    this.askForm.close(false);
    this.offer.reset();
  }

  /** Follow a session's capture events and the video's health. @param {ConsultSession} session */
  attach(session) {
    this._listening?.abort();
    this._listening = new AbortController();
    const { signal } = this._listening;
    this.gallery.listen(session, signal);
    this.consent.listen(session, signal);
    const on = (/** @type {string} */ type, /** @type {(detail: any) => void} */ fn) => session.addEventListener(type, (e) => {
      if (session === this._session()) fn(/** @type {CustomEvent} */ (e).detail ?? {});
    }, { signal });
    on("capture-requested", (d) => this.requested(d));
    this.offer.listen(session, signal);
    on("closed", () => this.stop());
  }

  /** In the call (grants known): the controls, and the video watch. */
  joined() {
    this.offer.start();
    this.render();
  }

  /** The call ended: timers, dialogs and the camera we opened go. */
  stop() {
    this.offer.stop();
    this.closeDialog(false);
    if (this.viewer.open) this.viewer.close(false);
  }

  // -- drawing ---------------------------------------------------------------------

  /** The controls' texts and visibility (after joining, a language change, a reconnection). */
  render() {
    const t = this.ui.t;
    const active = this._session()?.state === "active";
    const set = (/** @type {HTMLElement} */ button, /** @type {boolean} */ shown, icon, text, label) => {
      button.hidden = !shown;
      replace(button, captureIcon(icon), h("span", { class: "dc-label" }, text));
      button.setAttribute("aria-label", label);
      /** @type {HTMLButtonElement} */ (button).disabled = !active;
    };
    set(this.askButton, this.canAsk, "ask", t("captureAsk"), t("captureAskLabel"));
    this.askButton.setAttribute("aria-expanded", String(this.askForm.open));
    set(this.sendButton, this.canSend, "photo", t("captureSend"), t("captureSendLabel"));
    this.withdraw.textContent = t("captureConsentWithdraw");
    this.gallery.label();
    if (this._t === t) return;
    // the language changed: what is open is drawn again in it
    const first = !this._t;
    this._t = t;
    if (first) return;
    this.offer.relabel();
    if (this.askForm.open) this.askForm.show(this.askButton);
    if (this.phase !== "closed") this._renderDialog();
  }

  _stripChanged() {
    if (this.askForm.open && this.offer.shown) this.offer.hide(); // asking already: the offer's done
    this.strip.hidden = !this.offer.shown && !this.askForm.open && this.gallery.empty;
    this.askButton.setAttribute("aria-expanded", String(this.askForm.open));
  }

  _consentChanged() {
    this.gallery.consentChanged();
    this.withdraw.hidden = !(this.consent.mine && ["recording", "awaiting_consent", "paused"].includes(this.consent.state));
  }

  // -- a request from a clinician ---------------------------------------------------

  /** @param {{request_id: string, kind: "photo"|"clip", max_seconds?: number, by: string, name: string, role?: string, note?: string}} d */
  requested(d) {
    const t = this.ui.t;
    this.ui.fire("capture-requested", {
      requestId: d.request_id, kind: d.kind, maxSeconds: d.max_seconds ?? null, by: d.by, name: d.name,
      role: d.role ?? "", note: d.note ?? "",
    });
    if (d.by === this._session()?.participantId || !this.canSend) return;
    this.ui.say(t(d.kind === "clip" ? "captureRequestedClip" : "captureRequestedPhoto", { name: this._asker(d) }));
    if (this.phase === "closed" || this.phase === "choose") this.openDialog({ request: d });
    else this.request = d; // busy with a capture: it answers this request
  }

  /** "Dr. Okafor (Specialist)" @param {{name: string, role?: string}} request */
  _asker(request) {
    return request.role ? `${request.name} (${this.ui.role(request.role)})` : request.name;
  }

  // -- the capture dialog -------------------------------------------------------------

  /** @param {{request?: any, opener?: HTMLElement|null}} [options] */
  openDialog({ request = null, opener = null } = {}) {
    if (!this.canSend) return;
    const root = /** @type {ShadowRoot|Document} */ (this.dialog.getRootNode());
    if (this.phase === "closed") {
      this._opener = opener ?? /** @type {HTMLElement|null} */ (root.activeElement ?? null);
      this._note = request?.note ? "" : this._note;
      this._error = null;
    }
    this.request = request ?? (this.phase === "closed" ? null : this.request);
    this.offer.hide();
    this.phase = "choose";
    this._renderDialog();
    this.dialog.hidden = false;
    /** @type {HTMLElement|null} */ (this.dialog.querySelector("[data-primary]"))?.focus();
  }

  /** Close the dialog (Cancel): a recording under way is stopped and dropped. */
  closeDialog(restoreFocus = true) {
    this._attempt += 1;
    this._recording?.stop();
    this._recording = null;
    this._dropTaken();
    this._stopTempCamera();
    const wasOpen = this.phase !== "closed";
    this.phase = "closed";
    this.request = null;
    this.dialog.hidden = true;
    replace(this.dialog);
    if (wasOpen && restoreFocus && this._opener?.isConnected) this._opener.focus();
  }

  _dropTaken() {
    this._revokePreview();
    this._revokePreview = () => {};
    this.taken = null;
  }

  /** The live camera for a capture: ours, or one opened now (ours is off). */
  async _camera() {
    const call = this._call();
    const live = call.cam?.track;
    if (live && live.readyState === "live" && !call.cameraOff) return live;
    if (this._tempCamera?.readyState === "live") return this._tempCamera;
    const stream = await navigator.mediaDevices.getUserMedia({ video: CAPTURE_CAMERA });
    this._tempCamera = stream.getVideoTracks()[0];
    return this._tempCamera;
  }

  _stopTempCamera() {
    this._tempCamera?.stop();
    this._tempCamera = null;
  }

  /** The camera now, if it is on (for the preview): never opened just to show it. */
  _liveCamera() {
    const call = this._call();
    const live = call.cam?.track;
    if (live?.readyState === "live" && !call.cameraOff) return live;
    return this._tempCamera?.readyState === "live" ? this._tempCamera : null;
  }

  _renderDialog() {
    const t = this.ui.t;
    const language = this._language();
    const captures = capturesOf(this._session());
    const seconds = this.request?.max_seconds ?? captures?.maxClipSeconds ?? DEFAULT_CLIP_SECONDS;
    const request = this.request;
    const button = (/** @type {string} */ action, /** @type {string} */ text, /** @type {() => void} */ onclick, primary = false, disabled = false) => h("button", {
      type: "button", class: primary ? "dc-button dc-primary" : "dc-button", dataset: { action, ...(primary ? { primary: "" } : {}) },
      onclick, disabled,
    }, text);
    let title;
    if (this.phase === "preview") title = t(this.taken?.kind === "clip" ? "captureCheckClip" : "captureCheckPhoto");
    else if (request) {
      title = t(request.kind === "clip" ? "captureRequestedClip" : "captureRequestedPhoto", { name: this._asker(request) });
    } else title = t("captureSendTitle");
    const parts = [h("h3", { id: this._dialogTitle, class: "dc-capture-dialog-title" }, title)];
    if (request?.note && this.phase !== "preview") {
      parts.push(h("p", { class: "dc-capture-asked-note" }, t("captureNoteShown", { note: request.note })));
    }
    const livePreview = () => {
      const track = this._liveCamera();
      if (!track) return h("p", { class: "dc-capture-camera-note" }, t("captureCameraWillOpen"));
      const video = /** @type {HTMLVideoElement} */ (h("video", {
        class: "dc-capture-live", autoplay: true, playsInline: true, muted: true, aria: { label: t("captureLiveLabel") },
      }));
      video.srcObject = new MediaStream([track]); // not mirrored: left is the patient's right, as photographed
      video.play?.().catch(() => {});
      return video;
    };
    if (this.phase === "choose") {
      const clipFirst = request?.kind === "clip";
      parts.push(livePreview());
      if (this._error) parts.push(h("p", { class: "dc-capture-error", role: "alert" }, this._error));
      const photo = button("capture-take-photo", t("captureTakePhoto"), () => this.takePhoto(), !clipFirst);
      const clip = button("capture-record-clip", t("captureRecordClip", { seconds }), () => this.recordClip(seconds), clipFirst);
      parts.push(h("div", { class: "dc-capture-actions" }, clipFirst ? clip : photo, clipFirst ? photo : clip,
        button("capture-cancel", t("captureCancel"), () => this.closeDialog())));
    } else if (this.phase === "taking") {
      parts.push(livePreview(), h("p", { class: "dc-capture-working", role: "status" }, t("captureTaking")),
        h("div", { class: "dc-capture-actions" }, button("capture-cancel", t("captureCancel"), () => this.closeDialog(), true)));
    } else if (this.phase === "recording") {
      this._countdown = h("p", { class: "dc-capture-countdown", dataset: { elapsed: "0" } },
        h("span", { class: "dc-rec-dot", aria: { hidden: "true" } }), h("span", {}, t("captureRecording", { elapsed: 0, total: seconds })));
      parts.push(livePreview(), this._countdown, h("div", { class: "dc-capture-actions" },
        button("capture-stop", t("captureStop"), () => this._recording?.stop(), true),
        button("capture-cancel", t("captureCancel"), () => this.closeDialog())));
    } else if (this.phase === "preview" && this.taken) {
      const taken = this.taken;
      const facts = [t("captureDims", { width: taken.width, height: taken.height }), formatSize(taken.blob.size, t, language)];
      if (taken.kind === "clip") facts.push(formatDuration(taken.durationMs));
      this._revokePreview();
      let media;
      if (taken.kind === "clip") {
        const url = URL.createObjectURL(taken.blob);
        this._revokePreview = () => URL.revokeObjectURL(url);
        media = h("video", { class: "dc-capture-preview", controls: true, playsInline: true, src: url, aria: { label: t("capturePreviewClip") } });
      } else {
        const picture = blobPicture(taken.blob, "dc-capture-preview", t("capturePreviewPhoto"), () => {});
        this._revokePreview = picture.revoke;
        media = picture.element;
      }
      const noteId = uniqueId("dc-capture-note");
      const note = /** @type {HTMLTextAreaElement} */ (h("textarea", {
        id: noteId, class: "dc-capture-note dc-chat-input", maxlength: String(NOTE_MAX), rows: "2",
        placeholder: t("captureNotePlaceholder"),
        oninput: (/** @type {InputEvent} */ e) => { this._note = /** @type {HTMLTextAreaElement} */ (e.target).value; },
      }));
      note.value = this._note;
      parts.push(h("div", { class: "dc-capture-preview-box" }, media),
        h("p", { class: "dc-capture-dims", dataset: { width: String(taken.width), height: String(taken.height), bytes: String(taken.blob.size) } },
          facts.join(" · ")),
        h("label", { class: "dc-capture-note-label", for: noteId }, t("captureNoteLabel")), note,
        h("div", { class: "dc-capture-actions" },
          button("capture-send-confirm", t("send"), () => this.confirmSend(), true),
          button("capture-retake", t("captureRetake"), () => this.retake()),
          button("capture-cancel", t("captureCancel"), () => this.closeDialog())));
    }
    replace(this.dialog, h("div", { class: "dc-capture-dialog-box", dataset: { phase: this.phase } }, ...parts));
    this.dialog.dataset.phase = this.phase;
  }

  /** @param {KeyboardEvent} e */
  _dialogKey(e) {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      this.closeDialog();
    } else if (e.key === "Tab") {
      trapTab(this.dialog, e);
    }
  }

  /** @param {"choose"|"taking"|"recording"|"preview"} phase */
  _setPhase(phase) {
    this.phase = phase;
    this._renderDialog();
    /** @type {HTMLElement|null} */ (this.dialog.querySelector("[data-primary]"))?.focus();
  }

  async takePhoto() {
    const attempt = ++this._attempt;
    const t = this.ui.t;
    this._error = null;
    this._setPhase("taking");
    try {
      const track = await this._camera();
      const maxBytes = capturesOf(this._session())?.maxBytes ?? MAX_BYTES;
      const photo = await takeFullResolutionPhoto(track, { maxBytes });
      if (attempt !== this._attempt) return;
      this._dropTaken();
      this.taken = { kind: "photo", blob: photo.blob, width: photo.width, height: photo.height, durationMs: 0 };
      this._setPhase("preview");
      this.ui.say(t("captureTaken", { width: photo.width, height: photo.height }));
    } catch (err) {
      if (attempt !== this._attempt) return;
      this._error = t("captureTakeFailed", { reason: err?.name ?? err?.message ?? String(err) });
      this._setPhase("choose");
    }
  }

  /** @param {number} seconds */
  async recordClip(seconds) {
    const attempt = ++this._attempt;
    const t = this.ui.t;
    this._error = null;
    try {
      const track = await this._camera();
      if (attempt !== this._attempt) return;
      const mic = this._call().mic?.track;
      this._setPhase("recording");
      this.ui.say(t("captureRecordingStarted"));
      const recording = recordClip(track, mic?.readyState === "live" ? mic : null, seconds, (elapsed, total) => {
        if (attempt !== this._attempt || !this._countdown) return;
        const s = Math.floor(elapsed / 1000);
        if (this._countdown.dataset.elapsed === String(s)) return;
        this._countdown.dataset.elapsed = String(s);
        this._countdown.lastElementChild.textContent = t("captureRecording", { elapsed: s, total: Math.round(total / 1000) });
      });
      this._recording = recording;
      const clip = await recording;
      if (attempt !== this._attempt) return;
      this._recording = null;
      this._dropTaken();
      this.taken = { kind: "clip", blob: clip.blob, width: clip.width, height: clip.height, durationMs: clip.durationMs };
      this._setPhase("preview");
      this.ui.say(t("captureRecorded", { seconds: Math.round(clip.durationMs / 1000) }));
    } catch (err) {
      if (attempt !== this._attempt) return;
      this._recording = null;
      this._error = t("captureRecordFailed", { reason: err?.name ?? err?.message ?? String(err) });
      this._setPhase("choose");
    }
  }

  retake() {
    const kind = this.taken?.kind;
    this._dropTaken();
    this._setPhase("choose");
    /** @type {HTMLElement|null} */ (this.dialog.querySelector(
      `[data-action="${kind === "clip" ? "capture-record-clip" : "capture-take-photo"}"]`))?.focus();
  }

  /** Send what was taken (the dialog closes; the strip shows the progress). */
  confirmSend() {
    const taken = this.taken;
    if (!taken) return;
    const note = this._note.trim().slice(0, NOTE_MAX);
    const requestId = this.request?.request_id;
    this.taken = null; // the blob is the send's now: not revoked with the preview
    this._note = "";
    this.closeDialog();
    this.send(taken.blob, {
      kind: taken.kind, width: taken.width, height: taken.height,
      ...(taken.kind === "clip" ? { durationMs: taken.durationMs } : {}),
      ...(note ? { note } : {}), ...(requestId ? { requestId } : {}),
    });
  }

  /**
   * Send a capture, showing its progress in the gallery; a failure there offers "Try again".
   * @param {Blob} blob
   * @param {CaptureMeta} meta
   */
  async send(blob, meta) {
    const t = this.ui.t;
    const captures = capturesOf(this._session());
    if (!captures) return;
    const clip = meta.kind === "clip";
    const item = this.gallery.outgoing(blob, meta);
    this.offer.captured();
    this.offer.hide();
    this.ui.say(t(clip ? "captureSendingClip" : "captureSendingPhoto"));
    try {
      const id = await captures.send(blob, meta);
      this.gallery.named(item, String(id));
      this.gallery.sent(item);
      this.offer.captured();
      this.ui.say(t(clip ? "captureSentClip" : "captureSentPhoto"));
      this.ui.fire("capture-sent", {
        captureId: String(id), kind: meta.kind, size: blob.size, width: meta.width ?? 0, height: meta.height ?? 0,
        durationMs: meta.durationMs ?? 0, requestId: meta.requestId ?? null,
      });
    } catch (err) {
      const reason = err?.code ?? err?.name ?? err?.message ?? String(err);
      this.gallery.sendFailed(item, err, () => {
        this.gallery.remove(item);
        this.send(blob, meta);
      });
      this.ui.say(t("captureSendFailed", { reason }));
      this.ui.fire("capture-failed", { captureId: item.id, code: reason, message: err?.message ?? "" });
    }
  }

  // -- video failure: the offer (capture-offer.js) ---------------------------------------
  // Its watch as the panel's own, as before the offer had a file of its own
  // (tests/browser/test_capture_media.py drives and reads it here).

  /** One check of the video (the watch does it every 2 s). */
  checkVideo() { this.offer.check(); }

  /** @returns {{reason: string, at: number}|null} the video failure episode under way */
  get episode() { return this.offer.episode; }

  get _settleUntil() { return this.offer._settleUntil; }
  set _settleUntil(value) { this.offer._settleUntil = value; }
  get _healthySince() { return this.offer._healthySince; }
  set _healthySince(value) { this.offer._healthySince = value; }
  get _thinAudio() { return this.offer._thinAudio; }
  set _thinAudio(value) { this.offer._thinAudio = value; }
  get _cameraStopped() { return this.offer._cameraStopped; }
  set _cameraStopped(value) { this.offer._cameraStopped = value; }
}
