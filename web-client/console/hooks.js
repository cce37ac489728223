// The test and debugging API, `window.digiclinicConsole` (testApi()): live
// views of the controller's state (ready, rooms, focused, switches,
// notifications, errors, local), focus(i), and JSON-able summaries: summary()
// per room, inbound(i) (getStats of room i's subscriber connection),
// connections(), captures(i) (room i's clinical captures). Reads only; the actions are focus(i)
// and setE2eeKey(i, key) (the portal rotates a room's consult key: docs/e2ee.md).

/** @typedef {import("./controller.js").ConsoleController} ConsoleController */
/** @typedef {import("./room.js").Room} Room */

/**
 * @typedef {object} RoomSummary
 * @property {number} index
 * @property {string | null} room  the room id
 * @property {string} state  the Room's state
 * @property {string} tileState  the tile's data-state
 * @property {boolean} held
 * @property {string | null} participantId
 * @property {{id: string, name: string}[]} lobby
 * @property {{kind: string, trackId: string, track: string | null, live: boolean}[]} senders  our senders
 * @property {Record<string, boolean>} muted  `mute` states sent, per track id
 * @property {Record<string, boolean>} paused  `pause_video` states sent
 * @property {Record<string, boolean>} serverPaused  `track_paused` states confirmed by the server
 * @property {{mode: string, encrypted: boolean, failing: boolean}} e2ee  end-to-end encryption
 * @property {{trackId: string, kind: string, participantId: string, renderSize: unknown}[]} remote
 */

/**
 * @typedef {object} InboundStats  one inbound-rtp report of a room's subscriber connection
 * @property {string} kind
 * @property {string | null} trackId
 * @property {string | null} participantId
 * @property {number} packetsReceived
 * @property {number} framesDecoded
 * @property {number} frameWidth
 * @property {number} frameHeight
 */

/**
 * @param {Room} room
 * @returns {RoomSummary}
 */
function summarise(room) {
  return {
    index: room.index,
    room: room.roomId,
    state: room.state,
    tileState: room.tileState,
    held: room.held,
    participantId: room.session?.participantId ?? null,
    lobby: room.lobby,
    senders: room.ourSenders().map(({ sender, kind, trackId }) => ({
      kind, trackId, track: sender.track?.id ?? null, live: sender.track?.readyState === "live",
    })),
    muted: Object.fromEntries(room.hold.sentMuted),
    paused: Object.fromEntries(room.hold.sentPaused),
    serverPaused: Object.fromEntries(room.hold.serverPaused),
    e2ee: room.e2ee,
    remote: [...room.media.values()].map((m) => ({
      trackId: m.trackId, kind: m.kind, participantId: m.participantId, renderSize: m.watcher?.lastSent ?? null,
    })),
  };
}

/**
 * Frames decoded / packets received per remote track of one room (its subscriber connection).
 * @param {Room | undefined} room
 * @returns {Promise<InboundStats[]>}
 */
async function inbound(room) {
  const pc = room?.session?.subscriberPc;
  /** @type {InboundStats[]} */
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

/**
 * The RTCPeerConnections and WebSockets of every room (the ones the console holds).
 * @param {Room[]} rooms
 */
function connections(rooms) {
  const pcs = rooms.flatMap((r) => [r.session?.publisherPc, r.session?.subscriberPc]).filter(Boolean);
  return {
    peerConnections: pcs.length,
    open: pcs.filter((pc) => pc.connectionState !== "closed").length,
    states: pcs.map((pc) => pc.connectionState),
    websockets: rooms.filter((r) => r.session?._ws?.readyState === WebSocket.OPEN).length,
  };
}

/**
 * What tests (and curious developers) can read: `window.digiclinicConsole`.
 * @param {ConsoleController} controller
 * @param {string} lang
 */
export function testApi(controller, lang) {
  return {
    /** every room has joined (or failed) and applied its focus / hold state */
    get ready() { return controller.ready; },
    lang,
    /** Room objects (not serialisable: use summary()) */
    get rooms() { return controller.rooms; },
    get focused() { return controller.focused; },
    switches: controller.switches,
    notifications: controller.alerts.notifications,
    errors: controller.errors,
    local: controller.local,
    /** @param {number} index */
    focus: (index) => controller.focus(index, "api"),
    summary: () => controller.rooms.map(summarise),
    /** A new consult key for room `index` (the portal rotates it). @param {number} index @param {string} key */
    setE2eeKey: (index, key) => controller.rooms[index]?.setE2eeKey(key),
    /** @param {number} index */
    inbound: (index) => inbound(controller.rooms[index]),
    connections: () => connections(controller.rooms),
    /** @param {number} index  room i's captures, as its gallery shows them */
    captures: (index) => [...(controller.tiles[index]?.gallery.items.values() ?? [])].map((item) => ({
      id: item.id, kind: item.kind, state: item.state, mine: item.mine, name: item.name, size: item.size,
      offset: item.offset, width: item.width, height: item.height, stored: item.stored, received: Boolean(item.blob),
    })),
  };
}
