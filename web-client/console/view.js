// The console's DOM: one tile per room (title, state badge, focus button,
// remote videos, on-hold veil, waiting list), the page notices, and errors.

import { $, api, t } from "./state.js";
import { endRoom, focusRoom, rejoinRoom, toggleRoomMute } from "./rooms.js";
import { admit, deny } from "./lobby.js";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function buildTile(room) {
  const tile = el("section", "tile");
  tile.dataset.room = String(room.index);
  const key = String((room.index + 1) % 10);
  const head = el("header", "tile-head");
  const number = el("span", "tile-key", key);
  number.setAttribute("aria-hidden", "true");
  const title = el("h2", "tile-title");
  const titleId = `room-title-${room.index}`;
  title.id = titleId;
  tile.setAttribute("aria-labelledby", titleId);
  const status = el("span", "badge");
  const focus = el("button", "focus");
  focus.type = "button";
  focus.addEventListener("click", () => focusRoom(room.index, "click"));
  // this room only: our microphone, and ending the consultation (a second click confirms)
  const mute = el("button", "room-mute");
  mute.type = "button";
  mute.addEventListener("click", () => toggleRoomMute(room));
  const end = el("button", "room-end");
  end.type = "button";
  end.addEventListener("click", () => {
    if (!room.confirmingEnd) {
      room.confirmingEnd = true;
      render(room);
      setTimeout(() => { room.confirmingEnd = false; render(room); }, 5000);
      return;
    }
    room.confirmingEnd = false;
    endRoom(room);
  });
  const rejoin = el("button", "room-rejoin");
  rejoin.type = "button";
  rejoin.addEventListener("click", () => rejoinRoom(room));
  const actions = el("span", "tile-actions");
  actions.append(mute, end, rejoin, focus);
  head.append(number, title, status, actions);

  const stage = el("div", "stage");
  const videos = el("div", "videos");
  const placeholder = el("p", "placeholder");
  const veil = el("p", "veil");
  stage.append(videos, placeholder, veil);

  const people = el("p", "people");
  const lobby = el("div", "lobby");
  const lobbyTitle = el("h3", "lobby-title", t("waitingList"));
  const lobbyList = el("ul", "lobby-list");
  lobby.append(lobbyTitle, lobbyList);
  const error = el("p", "tile-error");

  tile.append(head, stage, lobby, people, error);
  $("rooms").append(tile);
  return { tile, title, status, focus, mute, end, rejoin, stage, videos, placeholder, veil, people, lobby, lobbyList, error };
}

export function tileState(room) {
  if (room.state === "connecting") return "connecting";
  if (["failed", "closed", "ended", "reconnecting"].includes(room.state)) return room.state;
  if (room.lobby.length) return "waiting";
  return room.held ? "on-hold" : "in-call";
}

const STATE_TEXT = {
  connecting: "state.connecting", waiting: "state.waiting", "in-call": "state.inCall",
  "on-hold": "state.onHold", failed: "state.failed", closed: "state.closed",
  ended: "state.ended", reconnecting: "state.reconnecting",
};

export function render(room) {
  const e = room.el;
  const state = tileState(room);
  const n = room.index + 1;
  const key = String(n % 10);
  e.tile.dataset.state = state;
  e.tile.classList.toggle("focused", !room.held);
  e.tile.classList.toggle("held", room.held);
  e.title.textContent = room.label;
  e.status.textContent = t(STATE_TEXT[state]);
  if (state === "waiting") e.status.textContent += ` · ${t(room.held ? "state.onHold" : "state.inCall")}`;
  e.focus.textContent = room.held ? t("focus") : t("focused");
  e.focus.setAttribute("aria-pressed", String(!room.held));
  e.focus.setAttribute("aria-label", room.held
    ? t("focusLabel", { n, room: room.label, key })
    : t("focusedLabel", { n, room: room.label }));
  e.focus.disabled = room.state !== "active" && room.state !== "connecting";
  const live = room.state === "active";
  e.mute.hidden = e.end.hidden = !live;
  e.mute.textContent = t(room.micMuted ? "roomUnmute" : "roomMute");
  e.mute.setAttribute("aria-pressed", String(room.micMuted));
  e.mute.setAttribute("aria-label", t(room.micMuted ? "roomUnmuteLabel" : "roomMuteLabel", { room: room.label }));
  e.end.textContent = t(room.confirmingEnd ? "endConfirm" : "endConsult");
  e.end.classList.toggle("confirming", Boolean(room.confirmingEnd));
  e.end.setAttribute("aria-label", t(room.confirmingEnd ? "endConfirmLabel" : "endConsultLabel", { room: room.label }));
  e.rejoin.hidden = room.state !== "closed";
  e.rejoin.textContent = t("rejoin");
  e.rejoin.setAttribute("aria-label", t("rejoinToRoomLabel", { room: room.label }));

  const others = [...(room.session?.participants.values() ?? [])];
  e.people.textContent = others.length
    ? t("inRoom", { count: others.length, names: others.map((p) => p.name).join(", ") })
    : "";
  const hasVideo = [...room.media.values()].some((m) => m.kind === "video");
  e.placeholder.textContent = room.state === "active" && !hasVideo ? t("emptyRoom") : "";
  e.placeholder.hidden = !e.placeholder.textContent;
  e.veil.textContent = t("onHoldOverlay");
  e.veil.hidden = !room.held || room.state !== "active";

  const errors = api.errors.filter((x) => x.room === room.index);
  const last = errors[errors.length - 1];
  e.error.textContent = room.state === "failed" && last ? t("joinError", { room: room.label, message: last.code }) : "";
  e.error.hidden = !e.error.textContent;

  renderLobby(room);
  if (!room.held) $("self-caption").textContent = t("selfCaption", { room: room.label });
}

function renderLobby(room) {
  const { lobby, lobbyList } = room.el;
  const shown = [...lobbyList.children].map((li) => li.dataset.participant).join(",");
  lobby.hidden = room.lobby.length === 0;
  if (shown === room.lobby.map((w) => w.id).join(",")) return; // keep keyboard focus on the buttons
  lobbyList.replaceChildren(...room.lobby.map((person) => {
    const item = el("li", "waiting");
    item.dataset.participant = person.id;
    const name = el("span", "waiting-name", person.name);
    const yes = el("button", "admit", t("admit"));
    yes.type = "button";
    yes.setAttribute("aria-label", t("admitToRoomLabel", { name: person.name, room: room.label }));
    yes.addEventListener("click", () => admit(room, person.id));
    const no = el("button", "deny", t("deny"));
    no.type = "button";
    no.setAttribute("aria-label", t("denyToRoomLabel", { name: person.name, room: room.label }));
    no.addEventListener("click", () => deny(room, person.id));
    item.append(name, yes, no);
    return item;
  }));
}

export function renderAll() {
  api.rooms.forEach(render);
}

export function addMedia(room, { track, trackId, participantId, kind }) {
  removeMedia(room, trackId);
  const stream = new MediaStream([track]);
  let element;
  let watcher = null;
  if (kind === "video") {
    const figure = el("figure", "remote");
    const video = el("video");
    Object.assign(video, { autoplay: true, playsInline: true, muted: true, srcObject: stream });
    video.dataset.trackId = trackId;
    // until a first frame arrives (never, for a room on hold from the start) show no black box
    video.addEventListener("loadeddata", () => { figure.dataset.frame = "1"; }, { once: true });
    const name = room.session.participants.get(participantId)?.name ?? "";
    figure.append(video, el("figcaption", "", name));
    room.el.videos.append(figure);
    element = video;
    // the size we show it at goes to the server (track_settings): a room on hold is a
    // thumbnail and gets the lowest simulcast layer, the focused room its real size
    watcher = room.session.watchRenderSize?.(trackId, video) ?? null;
  } else {
    element = el("audio");
    Object.assign(element, { autoplay: true, muted: room.held, srcObject: stream });
    room.el.stage.append(element);
  }
  room.media.set(trackId, { kind, element, participantId, watcher });
  render(room);
}

export function removeMedia(room, trackId) {
  const entry = room.media.get(trackId);
  if (!entry) return;
  room.media.delete(trackId);
  entry.watcher?.unwatch();
  entry.element.srcObject = null;
  (entry.element.closest("figure") ?? entry.element).remove();
  render(room);
}

export function notice(text) {
  const item = document.createElement("li");
  item.textContent = text;
  $("notices").append(item);
}

export function report(room, err) {
  const entry = { room: room?.index ?? null, code: err?.code ?? "error", message: String(err?.message ?? err) };
  api.errors.push(entry);
  console.warn("digiclinic console", entry);
  if (room) render(room);
}
