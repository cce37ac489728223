// Lobby alerts (class LobbyAlerts): a patient entering any room's lobby gets
// the page's banner (#banner, read out at once by screen readers) with Admit,
// Go to room and Dismiss, a short chime and, when the user already allowed
// it and the page is hidden, a system notification (never asked for). It
// owns the banner's listeners, the AudioContext, the latest system
// notification and the `notifications` record. The tile's own waiting list
// is tile.js's.

import { byId } from "./dom.js";

/** @typedef {import("./room.js").Room} Room */
/** @typedef {import("./types.js").Waiting} Waiting */
/** @typedef {import("../i18n/catalogue.js").Translate} Translate */

/**
 * A lobby arrival, as `digiclinicConsole.notifications` lists it.
 * @typedef {object} NotificationRecord
 * @property {number} room  the room's index
 * @property {string} participantId
 * @property {string} name
 * @property {number} at  Date.now()
 */

/**
 * @typedef {object} LobbyAlertsOptions
 * @property {Translate} t
 * @property {(room: Room) => void} onGo  the banner's "Go to room" was pressed
 */

export class LobbyAlerts {
  /** @param {LobbyAlertsOptions} options */
  constructor({ t, onGo }) {
    this.t = t;
    /** @type {NotificationRecord[]} */
    this.notifications = [];
    /** @type {{room: Room, participantId: string} | null} whom the banner is about */
    this.about = null;
    /** @type {AudioContext | null} */
    this.audioContext = null;
    /** @type {Notification | null} the latest system notification */
    this.system = null;
    this.banner = byId("banner", HTMLElement);
    this.text = byId("banner-text", HTMLElement);
    this.admit = byId("banner-admit", HTMLButtonElement);
    this.go = byId("banner-go", HTMLButtonElement);
    this.dismiss = byId("banner-dismiss", HTMLButtonElement);
    this.dismiss.textContent = t("dismiss");
    this.dismiss.setAttribute("aria-label", t("dismissLabel"));
    this.listening = new AbortController();
    const { signal } = this.listening;
    this.dismiss.addEventListener("click", () => this.hide(), { signal });
    this.go.addEventListener("click", () => {
      if (this.about) onGo(this.about.room);
      this.go.hidden = true;
    }, { signal });
    this.admit.addEventListener("click", () => {
      if (this.about) this.about.room.admit(this.about.participantId);
      this.hide();
    }, { signal });
  }

  /**
   * A room's lobby changed (`room.lobby`): hide the banner if its patient left,
   * announce the people new there.
   * @param {Room} room
   * @param {Waiting[]} fresh
   */
  update(room, fresh) {
    if (this.about?.room === room && !room.lobby.some((w) => w.id === this.about.participantId)) this.hide();
    for (const person of fresh) this.notify(room, person);
  }

  /**
   * @param {Room} room
   * @param {Waiting} person
   */
  notify(room, person) {
    const { t } = this;
    const text = t("notify", { name: person.name, room: room.label });
    this.notifications.push({ room: room.index, participantId: person.id, name: person.name, at: Date.now() });
    this.about = { room, participantId: person.id };
    this.text.textContent = text;
    this.admit.textContent = t("admit");
    this.admit.setAttribute("aria-label", t("admitToRoomLabel", { name: person.name, room: room.label }));
    this.go.textContent = t("goToRoom");
    this.go.setAttribute("aria-label", t("goToRoomLabel", { room: room.label }));
    this.go.hidden = !room.held;
    this.banner.hidden = false;
    this.beep();
    // The Notification API only if the user already allowed it: never ask from here.
    if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
      try {
        this.system = new Notification(t("notifyTitle"), { body: text, tag: `digiclinic-lobby-${room.index}` });
      } catch { /* e.g. not allowed outside a service worker on some platforms */ }
    }
  }

  hide() {
    this.banner.hidden = true;
    this.about = null;
  }

  /** The focus moved: "Go to room" only while the waiting patient's room is on hold. */
  focusChanged() {
    if (this.about) this.go.hidden = !this.about.room.held;
  }

  /** A short two-tone chime; silently nothing when audio cannot start. */
  beep() {
    try {
      this.audioContext ??= new AudioContext();
      const audio = this.audioContext;
      if (audio.state === "suspended") audio.resume().catch(() => {});
      const now = audio.currentTime;
      const gain = audio.createGain();
      gain.connect(audio.destination);
      gain.gain.setValueAtTime(0.0001, now);
      gain.gain.exponentialRampToValueAtTime(0.2, now + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.35);
      for (const [freq, at] of [[880, 0], [1175, 0.14]]) {
        const osc = audio.createOscillator();
        osc.frequency.value = freq;
        osc.connect(gain);
        osc.start(now + at);
        osc.stop(now + at + 0.2);
      }
    } catch { /* no audio output */ }
  }

  /** Remove the banner's listeners, hide it and the system notification, release the audio output. */
  close() {
    this.listening.abort();
    this.hide();
    this.system?.close();
    this.system = null;
    this.audioContext?.close().catch(() => {});
    this.audioContext = null;
  }
}
