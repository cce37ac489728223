// The console's rooms: joining, and focus / hold.
//
// One ConsultSession per room (its own WebSocket, publisher and subscriber
// RTCPeerConnections), all joined up front. Exactly one room is *focused*:
// it gets the specialist's camera and microphone and its incoming video
// plays. Every other room is *on hold*:
//   - our senders there carry no track (RTCRtpSender.replaceTrack(null): no
//     renegotiation, nothing is encoded or sent), and the server is told with
//     `mute` so the other participants see the specialist's tracks muted;
//   - the video we receive there is paused on the server (`pause_video`), so
//     it costs no bandwidth; the tile keeps its last frame under an "on hold"
//     veil; its audio keeps flowing but is muted locally.
// Switching focus only does replaceTrack + `mute` + `pause_video` in the two
// rooms concerned: no new connection, no SDP. See docs/console.md.

import { ConsultSession } from "../digiclinic-client.js";
import { jwtClaims } from "./config.js";
import { $, api, focusedIndex, serverUrl, setFocused, t } from "./state.js";
import { addMedia, buildTile, notice, removeMedia, render, renderAll, report } from "./view.js";
import { onLobby } from "./lobby.js";

export class Room {
  constructor(index, token) {
    const claims = jwtClaims(token);
    this.index = index;
    this.token = token;
    this.roomId = typeof claims.room === "string" ? claims.room : null;
    this.label = this.roomId ?? t("roomN", { n: index + 1 });
    this.state = "connecting"; // connecting, active, reconnecting; then failed, closed or ended
    this.micMuted = false; // our microphone muted in this room only (kept across focus changes)
    this.resume = null; // a single-use token's resume secret, to join again after a drop
    this.confirmingEnd = false; // "End" pressed once: the next press ends the consultation
    this.session = null;
    this.lobby = []; // the latest `lobby` list
    this.seenWaiting = new Set(); // lobby ids we already notified about
    this.media = new Map(); // remote trackId -> {kind, element, participantId}
    this.sentMuted = new Map(); // our trackId -> muted state told to the server
    this.sentHold = false; // the `on_hold` state told to the server (false when joining)
    this.sentPaused = new Map(); // remote video trackId -> paused state told to the server
    this.serverPaused = new Map(); // remote video trackId -> paused, from `track_paused`
    this.chain = Promise.resolve(); // applyState() calls never overlap
    this.el = buildTile(this);
  }

  get held() {
    return this.index !== focusedIndex;
  }

  /** Ids of the remote video tracks we receive (or are about to). */
  remoteVideoIds() {
    const ids = new Set();
    for (const participant of this.session?.participants.values() ?? []) {
      for (const track of participant.producers ?? []) if (track.kind === "video") ids.add(track.id);
    }
    for (const [id, info] of this.session?.remoteTracks ?? []) if (info.kind === "video") ids.add(id);
    return ids;
  }

  /** Our publisher transceivers with their track id and kind. */
  ourSenders() {
    const pc = this.session?.publisherPc;
    if (!pc || pc.connectionState === "closed") return [];
    const byMid = new Map([...this.session.published.values()].map((entry) => [entry.mid, entry]));
    return pc.getTransceivers()
      .filter((tr) => byMid.has(tr.mid) && !tr.stopped)
      .map((tr) => ({ sender: tr.sender, kind: tr.receiver.track.kind, trackId: byMid.get(tr.mid).trackId }));
  }
}

/**
 * A raw protocol request, for what ConsultSession has no method for
 * (`pause_video` in older versions) or whose method does more than we want:
 * `ConsultSession.mute()` also sets `track.enabled` on the published track,
 * and the console must only tell the server. `_request` is the library's
 * request helper: it matches the reply by `ref` and rejects on an `error`.
 */
function request(session, type, fields) {
  return session._request(type, fields);
}

function pauseVideo(session, trackId, paused) {
  if (typeof session.pauseVideo === "function") return session.pauseVideo(trackId, paused);
  return request(session, "pause_video", { track_id: trackId, paused });
}

/**
 * Bring one room's media in line with focus: local tracks or none on our
 * senders, `mute` and `pause_video` as needed. Only differences are sent.
 * Resolves to the time (ms) at which the local media change was done.
 */
function applyState(room) {
  const run = room.chain.then(async () => {
    const session = room.session;
    if (!session || session.state !== "active") return performance.now();
    const held = room.held;
    const media = [];
    const signals = [];
    if (room.sentHold !== held) {
      // first, so the others' widgets say "on hold" rather than "camera off" (docs/console.md)
      room.sentHold = held;
      signals.push(request(session, "on_hold", { enabled: held }).catch((err) => {
        room.sentHold = undefined; // retried by the next applyState
        report(room, err);
      }));
    }
    for (const { sender, kind, trackId } of room.ourSenders()) {
      const silent = held || (kind === "audio" && room.micMuted);
      const wanted = silent ? null : api.local[kind] ?? null;
      if (sender.track !== wanted) media.push(sender.replaceTrack(wanted));
      if (room.sentMuted.get(trackId) !== silent) {
        room.sentMuted.set(trackId, silent);
        signals.push(request(session, "mute", { track_id: trackId, muted: silent }).catch((err) => {
          room.sentMuted.delete(trackId); // retried by the next applyState
          report(room, err);
        }));
      }
    }
    for (const trackId of room.remoteVideoIds()) {
      if (room.sentPaused.get(trackId) === held) continue;
      room.sentPaused.set(trackId, held);
      signals.push(pauseVideo(session, trackId, held).catch((err) => {
        room.sentPaused.delete(trackId);
        if (err.code !== "not_found") report(room, err); // unpublished meanwhile
      }));
    }
    for (const entry of room.media.values()) if (entry.kind === "audio") entry.element.muted = held;
    await Promise.all(media);
    const mediaDone = performance.now();
    await Promise.all(signals);
    return mediaDone;
  });
  room.chain = run.catch((err) => {
    report(room, err);
    return performance.now();
  });
  return room.chain;
}

export async function focusRoom(index, how = "click") {
  const next = api.rooms[index];
  if (!next || index === focusedIndex) return null;
  const started = performance.now();
  const previous = api.rooms[focusedIndex];
  setFocused(index);
  renderAll();
  const [a, b] = await Promise.all([applyState(previous), applyState(next)]);
  const done = performance.now();
  const result = {
    from: previous.index, to: index, how,
    mediaMs: Math.round((Math.max(a, b) - started) * 10) / 10,
    totalMs: Math.round((done - started) * 10) / 10,
  };
  api.switches.push(result);
  $("announce").textContent = t("switched", { room: next.label, ms: Math.round(result.totalMs) });
  return result;
}

/** Our microphone in this room only: muted or not (the other rooms are unaffected). */
export function toggleRoomMute(room) {
  room.micMuted = !room.micMuted;
  render(room);
  return applyState(room);
}

/** End the consultation in this room for everyone (`end_consult`; the admit grant). */
export async function endRoom(room) {
  try {
    await request(room.session, "end_consult", {});
  } catch (err) {
    report(room, err);
  }
}

/** A room whose connection could not be restored: join it again (same token, resume secret). */
export function rejoinRoom(room) {
  room.resume = room.session?.resume ?? room.resume;
  for (const trackId of [...room.media.keys()]) removeMedia(room, trackId);
  room.sentMuted.clear();
  room.sentPaused.clear();
  room.serverPaused.clear();
  room.sentHold = false;
  room.state = "connecting";
  render(room);
  return startRoom(room);
}

export async function startRoom(room) {
  // reconnect: a lost WebSocket or connection rejoins by itself (client/reconnect.js)
  const session = new ConsultSession({
    url: serverUrl, token: room.token, reconnect: true, resume: room.resume,
  });
  room.session = session;
  session.addEventListener("lobby", ({ detail }) => onLobby(room, detail.waiting));
  session.addEventListener("track", ({ detail }) => { addMedia(room, detail); applyState(room); });
  session.addEventListener("track-removed", ({ detail }) => removeMedia(room, detail.trackId));
  session.addEventListener("track-published", () => applyState(room));
  session.addEventListener("track-unpublished", ({ detail }) => {
    room.sentPaused.delete(detail.track_id);
    room.serverPaused.delete(detail.track_id);
  });
  for (const type of ["participant-joined", "participant-left", "track-muted"]) {
    session.addEventListener(type, () => render(room));
  }
  session.addEventListener("message", ({ detail }) => {
    if (detail.type === "track_paused") room.serverPaused.set(detail.track_id, detail.paused);
  });
  session.addEventListener("error", ({ detail }) => report(room, detail));
  session.addEventListener("reconnecting", () => {
    room.state = "reconnecting";
    render(room);
  });
  session.addEventListener("reconnected", () => {
    // a new participant on the server: nothing we told the old one holds
    room.sentMuted.clear();
    room.sentPaused.clear();
    room.serverPaused.clear();
    room.sentHold = false;
    room.state = "active";
    render(room);
    applyState(room);
  });
  session.addEventListener("closed", ({ detail }) => {
    if (session !== room.session) return; // an earlier session, replaced by rejoinRoom()
    if (detail?.reason === "room_closed") room.state = "ended";
    else if (room.state !== "failed") room.state = "closed";
    render(room);
  });
  try {
    const joined = await session.join();
    room.roomId = joined.room;
    room.label = joined.room;
    room.state = joined.state === "active" ? "active" : "failed"; // a specialist never waits
    render(room);
    if (room.state !== "active") return;
    await publishPlaceholders(room);
    await applyState(room);
  } catch (err) {
    room.state = "failed";
    report(room, err);
  }
  render(room);
}

/**
 * Publish in one room without sending anything yet: the transceivers are
 * created with *ended* clones of the local tracks, which produce no media.
 * applyState() then puts the real track on the focused room's senders and
 * null on the others, so no frame ever leaks to a room on hold.
 */
async function publishPlaceholders(room) {
  const tracks = [api.local.audio, api.local.video].filter(Boolean).map((track) => {
    const clone = track.clone();
    clone.stop();
    return clone;
  });
  if (tracks.length) await room.session.publish(new MediaStream(tracks));
}

export async function openLocalMedia() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true },
      video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
    });
    api.local.audio = stream.getAudioTracks()[0] ?? null;
    api.local.video = stream.getVideoTracks()[0] ?? null;
    if (api.local.video) api.local.video.contentHint = "detail"; // clinical detail over smoothness
    $("self-view").srcObject = stream;
    $("self").hidden = !api.local.video;
  } catch (err) {
    notice(t("noMedia"));
    api.errors.push({ room: null, code: "no_media", message: String(err?.message ?? err) });
  }
}
