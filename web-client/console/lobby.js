// Lobby and notifications: a patient entering a room's lobby gets a banner
// (read out at once by screen readers), a chime and, when allowed and the
// page is hidden, a system notification. Admit and deny, from the banner or
// a tile's waiting list.

import { $, api, t } from "./state.js";
import { render, report } from "./view.js";
import { focusRoom } from "./rooms.js";

let audioContext = null;
let bannerRoom = null; // {room, participantId} the banner is about

export function onLobby(room, waiting) {
  room.lobby = waiting;
  const fresh = waiting.filter((w) => !room.seenWaiting.has(w.id));
  for (const w of waiting) room.seenWaiting.add(w.id);
  const ids = new Set(waiting.map((w) => w.id));
  for (const id of room.seenWaiting) if (!ids.has(id)) room.seenWaiting.delete(id);
  if (bannerRoom?.room === room && !ids.has(bannerRoom.participantId)) hideBanner();
  for (const person of fresh) notify(room, person);
  render(room);
}

function notify(room, person) {
  const text = t("notify", { name: person.name, room: room.label });
  api.notifications.push({ room: room.index, participantId: person.id, name: person.name, at: Date.now() });
  bannerRoom = { room, participantId: person.id, name: person.name };
  $("banner-text").textContent = text;
  $("banner-admit").textContent = t("admit");
  $("banner-admit").setAttribute("aria-label", t("admitToRoomLabel", { name: person.name, room: room.label }));
  $("banner-go").textContent = t("goToRoom");
  $("banner-go").setAttribute("aria-label", t("goToRoomLabel", { room: room.label }));
  $("banner-go").hidden = !room.held;
  $("banner").hidden = false;
  beep();
  // The Notification API only if the user already allowed it: never ask from here.
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    try {
      new Notification(t("notifyTitle"), { body: text, tag: `digiclinic-lobby-${room.index}` });
    } catch { /* e.g. not allowed outside a service worker on some platforms */ }
  }
}

function hideBanner() {
  $("banner").hidden = true;
  bannerRoom = null;
}

/** A short two-tone chime; silently nothing when audio cannot start. */
function beep() {
  try {
    audioContext ??= new AudioContext();
    if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
    const now = audioContext.currentTime;
    const gain = audioContext.createGain();
    gain.connect(audioContext.destination);
    gain.gain.setValueAtTime(0.0001, now);
    gain.gain.exponentialRampToValueAtTime(0.2, now + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.35);
    for (const [freq, at] of [[880, 0], [1175, 0.14]]) {
      const osc = audioContext.createOscillator();
      osc.frequency.value = freq;
      osc.connect(gain);
      osc.start(now + at);
      osc.stop(now + at + 0.2);
    }
  } catch { /* no audio output */ }
}

export async function admit(room, participantId) {
  try {
    await room.session.admit(participantId);
  } catch (err) {
    report(room, err);
  }
}

export async function deny(room, participantId) {
  try {
    await room.session.deny(participantId);
  } catch (err) {
    report(room, err);
  }
}

/** The banner's buttons (once, at start). */
export function setUpBanner() {
  $("banner-dismiss").textContent = t("dismiss");
  $("banner-dismiss").setAttribute("aria-label", t("dismissLabel"));
  $("banner-dismiss").addEventListener("click", hideBanner);
  $("banner-go").addEventListener("click", () => {
    if (bannerRoom) focusRoom(bannerRoom.room.index, "banner");
    $("banner-go").hidden = true;
  });
  $("banner-admit").addEventListener("click", () => {
    if (bannerRoom) admit(bannerRoom.room, bannerRoom.participantId);
    hideBanner();
  });
}
