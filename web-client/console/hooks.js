// Test and debugging helpers, read through `window.digiclinicConsole`.

import { api } from "./state.js";
import { tileState } from "./view.js";

/** A JSON-able view of every room. */
export function summary() {
  return api.rooms.map((room) => ({
    index: room.index,
    room: room.roomId,
    state: room.state,
    tileState: tileState(room),
    held: room.held,
    participantId: room.session?.participantId ?? null,
    lobby: room.lobby,
    senders: room.ourSenders().map(({ sender, kind, trackId }) => ({
      kind, trackId, track: sender.track?.id ?? null, live: sender.track?.readyState === "live",
    })),
    muted: Object.fromEntries(room.sentMuted),
    paused: Object.fromEntries(room.sentPaused),
    serverPaused: Object.fromEntries(room.serverPaused),
    remote: [...room.media].map(([trackId, m]) => ({
      trackId, kind: m.kind, participantId: m.participantId, renderSize: m.watcher?.lastSent ?? null,
    })),
  }));
}

/** Frames decoded / packets received per remote track of one room (its subscriber connection). */
export async function inbound(index) {
  const room = api.rooms[index];
  const pc = room?.session?.subscriberPc;
  const out = [];
  if (!pc) return out;
  const byMid = new Map([...room.session.remoteTracks.values()].map((info) => [info.mid, info]));
  for (const report of (await pc.getStats()).values()) {
    if (report.type !== "inbound-rtp") continue;
    const info = byMid.get(report.mid);
    out.push({
      kind: report.kind, trackId: info?.trackId ?? null, participantId: info?.participantId ?? null,
      packetsReceived: report.packetsReceived ?? 0, framesDecoded: report.framesDecoded ?? 0,
      frameWidth: report.frameWidth ?? 0, frameHeight: report.frameHeight ?? 0,
    });
  }
  return out;
}

/** The RTCPeerConnections and WebSockets of every room (the ones the console holds). */
export function connections() {
  const pcs = api.rooms.flatMap((r) => [r.session?.publisherPc, r.session?.subscriberPc]).filter(Boolean);
  return {
    peerConnections: pcs.length,
    open: pcs.filter((pc) => pc.connectionState !== "closed").length,
    states: pcs.map((pc) => pc.connectionState),
    websockets: api.rooms.filter((r) => r.session?._ws?.readyState === WebSocket.OPEN).length,
  };
}
