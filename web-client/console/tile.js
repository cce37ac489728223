// One room's tile (class TileView): its DOM (key number, title, state badge,
// Mute / End / Join again / Switch here buttons, remote videos and audio,
// on-hold veil, people, waiting list with Admit / Deny, join error), rendered
// from a Room whenever it reports a change. It owns the End confirmation
// (a first press asks, a second within 5 s ends; its timer) and the media
// elements of the room's remote tracks (audio muted locally while on hold).
// Buttons call the Room's own actions; "Switch here" calls `onFocus`.
// Clinical captures: "Ask for a photo" (the capture grant), the capture
// consent question and the room's gallery, whose thumbnails open the page's
// viewer: the widget's own parts (../widget/capture-gallery.js,
// capture-ask.js, capture-consent.js; the viewer is capture-viewer.js).

import { CaptureRequestForm } from "../widget/capture-ask.js";
import { CaptureConsent } from "../widget/capture-consent.js";
import { CaptureGallery } from "../widget/capture-gallery.js";
import { capturesOf } from "../widget/capture-util.js";
import { el } from "./dom.js";

/** @typedef {import("./room.js").Room} Room */
/** @typedef {import("./types.js").RemoteMedia} RemoteMedia */
/** @typedef {import("./types.js").TileState} TileState */
/** @typedef {import("../i18n/catalogue.js").Translate} Translate */

/**
 * @typedef {object} TileOptions
 * @property {Translate} t
 * @property {HTMLElement} container  where the tile goes (#rooms)
 * @property {(index: number) => void} onFocus  "Switch here" was pressed
 * @property {import("../widget/capture-viewer.js").CaptureViewer} viewer  the page's capture viewer
 * @property {import("../widget/capture-util.js").CaptureUi} captureUi
 * @property {string} lang  the UI language
 */

/** @type {Record<TileState, string>} */
const STATE_TEXT = {
  connecting: "state.connecting", waiting: "state.waiting", "in-call": "state.inCall",
  "on-hold": "state.onHold", failed: "state.failed", closed: "state.closed",
  ended: "state.ended", reconnecting: "state.reconnecting",
};

const END_CONFIRM_MS = 5000;

export class TileView {
  /**
   * @param {Room} room
   * @param {TileOptions} options
   */
  constructor(room, { t, container, onFocus, viewer, captureUi, lang }) {
    this.room = room;
    this.t = t;
    this.confirmingEnd = false; // "End" pressed once: the next press ends the consultation
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.endTimer = null;
    /** @type {Map<string, HTMLMediaElement>} remote trackId -> its <video> or <audio> */
    this.elements = new Map();

    const key = String((room.index + 1) % 10);
    this.tile = el("section", "tile");
    this.tile.dataset.room = String(room.index);
    const number = el("span", "tile-key", key);
    number.setAttribute("aria-hidden", "true");
    this.title = el("h2", "tile-title");
    this.title.id = `room-title-${room.index}`;
    this.tile.setAttribute("aria-labelledby", this.title.id);
    this.status = el("span", "badge");
    this.lock = el("span", "e2ee-badge");
    this.lock.hidden = true;
    this.focus = this.button("focus", () => onFocus(room.index));
    // this room only: our microphone, and ending the consultation (a second click confirms)
    this.mute = this.button("room-mute", () => room.toggleMute());
    this.end = this.button("room-end", () => this.pressEnd());
    this.rejoin = this.button("room-rejoin", () => room.rejoin());
    // clinical captures: asking, the consent question, the gallery (the widget's parts)
    const session = () => room.session;
    this.consent = new CaptureConsent({ ui: captureUi, session, changed: () => this.gallery.consentChanged() });
    this.gallery = new CaptureGallery({
      ui: captureUi, language: () => lang, session, viewer, consentState: () => this.consent.state,
    });
    this.askForm = new CaptureRequestForm({
      ui: captureUi, session, asked: (requestId, kind) => this.gallery.requested(requestId, kind),
    });
    this.askForm.element.id = `capture-ask-${room.index}`;
    this.capture = this.button("room-capture", () => this.askForm.toggle(this.capture));
    this.capture.dataset.action = "capture-request";
    this.capture.setAttribute("aria-controls", this.askForm.element.id);
    this.capture.setAttribute("aria-expanded", "false");
    const actions = el("span", "tile-actions");
    actions.append(this.mute, this.capture, this.end, this.rejoin, this.focus);
    const head = el("header", "tile-head");
    head.append(number, this.title, this.status, this.lock, actions);

    this.stage = el("div", "stage");
    this.videos = el("div", "videos");
    this.placeholder = el("p", "placeholder");
    this.veil = el("p", "veil");
    this.stage.append(this.videos, this.placeholder, this.veil);

    this.people = el("p", "people");
    this.lobby = el("div", "lobby");
    this.lobbyList = el("ul", "lobby-list");
    this.lobby.append(el("h3", "lobby-title", t("waitingList")), this.lobbyList);
    this.error = el("p", "tile-error");
    this.e2eeError = el("p", "tile-error");
    this.e2eeError.hidden = true;

    this.tile.append(head, this.consent.dialog, this.askForm.element, this.stage, this.gallery.element, this.lobby,
      this.people, this.e2eeError, this.error);
    container.append(this.tile);
    this.unsubscribe = [
      room.on("session", ({ session: current, signal }) => {
        this.gallery.reset();
        this.consent.reset();
        this.askForm.close(false);
        this.gallery.listen(current, signal);
        this.consent.listen(current, signal);
      }),
      room.on("change", () => this.render()),
      room.on("track", (media) => this.addMedia(media)),
      room.on("untrack", ({ trackId }) => this.removeMedia(trackId)),
    ];
  }

  /**
   * @param {string} className
   * @param {() => void} onClick
   * @returns {HTMLButtonElement}
   */
  button(className, onClick) {
    const button = el("button", className);
    button.type = "button";
    button.addEventListener("click", onClick);
    return button;
  }

  pressEnd() {
    if (!this.confirmingEnd) {
      this.confirmingEnd = true;
      this.render();
      if (this.endTimer) clearTimeout(this.endTimer);
      this.endTimer = setTimeout(() => {
        this.endTimer = null;
        this.confirmingEnd = false;
        this.render();
      }, END_CONFIRM_MS);
      return;
    }
    this.confirmingEnd = false;
    this.room.end();
  }

  render() {
    const { room, t } = this;
    const state = room.tileState;
    const n = room.index + 1;
    const key = String(n % 10);
    this.tile.dataset.state = state;
    this.tile.classList.toggle("focused", !room.held);
    this.tile.classList.toggle("held", room.held);
    this.title.textContent = room.label;
    this.status.textContent = t(STATE_TEXT[state]);
    if (state === "waiting") this.status.textContent += ` · ${t(room.held ? "state.onHold" : "state.inCall")}`;
    this.focus.textContent = room.held ? t("focus") : t("focused");
    this.focus.setAttribute("aria-pressed", String(!room.held));
    this.focus.setAttribute("aria-label", room.held
      ? t("focusLabel", { n, room: room.label, key })
      : t("focusedLabel", { n, room: room.label }));
    this.focus.disabled = room.state !== "active" && room.state !== "connecting";
    const live = room.state === "active";
    this.mute.hidden = this.end.hidden = !live;
    this.mute.textContent = t(room.micMuted ? "roomUnmute" : "roomMute");
    this.mute.setAttribute("aria-pressed", String(room.micMuted));
    this.mute.setAttribute("aria-label", t(room.micMuted ? "roomUnmuteLabel" : "roomMuteLabel", { room: room.label }));
    this.end.textContent = t(this.confirmingEnd ? "endConfirm" : "endConsult");
    this.end.classList.toggle("confirming", this.confirmingEnd);
    this.end.setAttribute("aria-label", t(this.confirmingEnd ? "endConfirmLabel" : "endConsultLabel", { room: room.label }));
    this.rejoin.hidden = room.state !== "closed";
    const e2ee = room.e2ee;
    this.lock.hidden = e2ee.mode === "off";
    this.lock.dataset.state = e2ee.encrypted ? "on" : "partial";
    this.lock.textContent = t(e2ee.encrypted ? "e2eeOn" : "e2eeOff");
    this.e2eeError.hidden = !e2ee.failing;
    this.e2eeError.textContent = e2ee.failing ? t("e2eeCannotDecrypt") : "";
    const canAsk = live && Boolean(capturesOf(room.session) && room.session?.joined?.participant?.grants?.capture);
    this.capture.hidden = !canAsk;
    this.capture.textContent = t("captureAsk");
    this.capture.setAttribute("aria-label", t("captureAskToRoomLabel", { room: room.label }));
    if (!canAsk) this.askForm.close(false);
    this.gallery.label();
    this.rejoin.textContent = t("rejoin");
    this.rejoin.setAttribute("aria-label", t("rejoinToRoomLabel", { room: room.label }));

    const others = room.others;
    this.people.textContent = others.length
      ? t("inRoom", { count: others.length, names: others.map((p) => p.name).join(", ") })
      : "";
    const hasVideo = [...room.media.values()].some((m) => m.kind === "video");
    this.placeholder.textContent = room.state === "active" && !hasVideo ? t("emptyRoom") : "";
    this.placeholder.hidden = !this.placeholder.textContent;
    this.veil.textContent = t("onHoldOverlay");
    this.veil.hidden = !room.held || room.state !== "active";
    // audio keeps flowing while on hold (the protocol has no audio pause): muted here
    for (const element of this.elements.values()) if (element instanceof HTMLAudioElement) element.muted = room.held;

    const error = room.lastError;
    this.error.textContent = room.state === "failed" && error ? t("joinError", { room: room.label, message: error.code }) : "";
    this.error.hidden = !this.error.textContent;
    this.renderLobby();
  }

  renderLobby() {
    const { room, t } = this;
    const shown = [...this.lobbyList.children].map((li) => /** @type {HTMLElement} */ (li).dataset.participant).join(",");
    this.lobby.hidden = room.lobby.length === 0;
    if (shown === room.lobby.map((w) => w.id).join(",")) return; // keep keyboard focus on the buttons
    this.lobbyList.replaceChildren(...room.lobby.map((person) => {
      const item = el("li", "waiting");
      item.dataset.participant = person.id;
      const yes = this.button("admit", () => room.admit(person.id));
      yes.textContent = t("admit");
      yes.setAttribute("aria-label", t("admitToRoomLabel", { name: person.name, room: room.label }));
      const no = this.button("deny", () => room.deny(person.id));
      no.textContent = t("deny");
      no.setAttribute("aria-label", t("denyToRoomLabel", { name: person.name, room: room.label }));
      item.append(el("span", "waiting-name", person.name), yes, no);
      return item;
    }));
  }

  /** @param {RemoteMedia} media  a remote track the room now receives */
  addMedia({ track, trackId, participantId, kind }) {
    const stream = new MediaStream([track]);
    if (kind === "video") {
      const figure = el("figure", "remote");
      const video = el("video");
      Object.assign(video, { autoplay: true, playsInline: true, muted: true, srcObject: stream });
      video.dataset.trackId = trackId;
      // until a first frame arrives (never, for a room on hold from the start) show no black box
      video.addEventListener("loadeddata", () => { figure.dataset.frame = "1"; }, { once: true });
      figure.append(video, el("figcaption", "", this.room.participantName(participantId)));
      this.videos.append(figure);
      this.elements.set(trackId, video);
      // the size we show it at goes to the server (track_settings): a room on hold is a
      // thumbnail and gets the lowest simulcast layer, the focused room its real size
      this.room.watchRenderSize(trackId, video);
    } else {
      const audio = el("audio");
      Object.assign(audio, { autoplay: true, muted: this.room.held, srcObject: stream });
      this.stage.append(audio);
      this.elements.set(trackId, audio);
    }
  }

  /** @param {string} trackId  a remote track the room no longer receives */
  removeMedia(trackId) {
    const element = this.elements.get(trackId);
    if (!element) return;
    this.elements.delete(trackId);
    element.srcObject = null;
    (element.closest("figure") ?? element).remove();
  }

  /** Stop following the room, drop its timer, media and DOM. */
  close() {
    for (const stop of this.unsubscribe) stop();
    if (this.endTimer) clearTimeout(this.endTimer);
    this.gallery.reset();
    for (const trackId of [...this.elements.keys()]) this.removeMedia(trackId);
    this.tile.remove();
  }
}
