// Protocol basics shared by the ConsultSession modules (../digiclinic-client.js
// re-exports the values): the protocol version, the error type, the
// WebSocket URL, and the JSDoc types of the messages (docs/protocol.md) and
// of the two callbacks most collaborators get: `request` and `emit`.

export const PROTOCOL_VERSION = 1;

/**
 * A message from the server: a reply (carrying our request's id as `ref`) or
 * an event. Its other fields depend on `type` (docs/protocol.md).
 * @typedef {{type: string, ref?: number, [field: string]: any}} ServerMessage
 */

/**
 * One track in a participant info (`producers`) or a `track_published`.
 * @typedef {{id: string, kind: string, source: string, muted: boolean}} ProducerInfo
 */

/**
 * A participant info, as the server sends it (our copies keep `producers`,
 * `audio_only` and `on_hold` up to date from the events). Our own (in
 * `joined`) also has `grants`.
 * @typedef {object} ParticipantInfo
 * @property {string} id
 * @property {string} name
 * @property {string} [identity]  ours, in `joined` (the token's sub)
 * @property {string} role
 * @property {string} [state]
 * @property {Record<string, boolean>} [grants]
 * @property {ProducerInfo[]} producers
 * @property {boolean} [audio_only]
 * @property {boolean} [on_hold]
 * @property {boolean} [e2ee]  its frames are end-to-end encrypted (docs/e2ee.md)
 */

/**
 * An ICE server as the server lists it (`ice_servers`; it may add e.g. `ttl`).
 * @typedef {{urls: string|string[], username?: string, credential?: string, [field: string]: any}} ServerIceServer
 */

/**
 * The reply to `join`.
 * @typedef {object} Joined
 * @property {"joined"} type
 * @property {number} [ref]
 * @property {number} [protocol]
 * @property {string} room
 * @property {"active"|"lobby"} state
 * @property {ParticipantInfo} participant  ourselves
 * @property {ParticipantInfo[]} [participants]  the other active participants
 * @property {ServerIceServer[]} [ice_servers]
 * @property {string} [resume]  single-use tokens: the secret a rejoin presents
 * @property {"off"|"optional"|"required"} [e2ee]  the room's end-to-end encryption
 */

/**
 * The fields of a `join` request.
 * @typedef {object} JoinRequest
 * @property {string} [token]
 * @property {string} [ticket]  a cluster's redirect ticket, instead of the token
 * @property {boolean} auto_subscribe
 * @property {string} [room]
 * @property {string} [resume]
 * @property {boolean} [e2ee]  we encrypt our frames (we have the consult key)
 */

/**
 * One m-line of a `subscriber_offer`.
 * @typedef {{mid: string, track_id: string, participant_id: string, kind: string, source: string}} OfferedTrack
 */

/** @typedef {ServerMessage & {sdp: string, tracks: OfferedTrack[]}} SubscriberOffer  a `subscriber_offer` */

/**
 * A `publisher_layers`: the simulcast layers of our track `track_id` to switch on or off.
 * @typedef {ServerMessage & {track_id: string, layers: {rid: string|null, active: boolean}[]}} PublisherLayers
 */

/**
 * A `publisher_audio`: the Opus bitrate cap (and packet duration) for our track `track_id`.
 * @typedef {ServerMessage & {track_id: string, max_bitrate_bps: number|null, packet_ms?: number|null}} PublisherAudio
 */

/**
 * Send a request (a message with a fresh `id`); resolves to the reply that
 * carries that id as `ref`, rejects with a DigiclinicError on an `error`
 * reply, a timeout (ms) or a lost connection.
 * @callback Request
 * @param {string} type
 * @param {Record<string, any>} [fields]
 * @param {number} [timeout]
 * @returns {Promise<ServerMessage>}
 */

/**
 * Dispatch one of ConsultSession's events (a CustomEvent, `detail` its payload).
 * @callback Emit
 * @param {string} type
 * @param {any} [detail]
 * @returns {void}
 */

/** A request refused by the server (its error `code`) or failed locally. */
export class DigiclinicError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {ServerMessage|null} [reply]  the server's `error` message, if any
   */
  constructor(code, message, reply = null) {
    super(`${code}: ${message}`);
    this.name = "DigiclinicError";
    this.code = code;
    this.reply = reply;
  }
}

/**
 * `ws[s]://host:port/ws?v=1` from a ws(s) or http(s) URL.
 * @param {string} url
 * @returns {string}
 */
export function websocketUrl(url) {
  const u = new URL(url, globalThis.location?.href);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  if (u.pathname === "/") u.pathname = "/ws";
  if (!u.searchParams.has("v")) u.searchParams.set("v", String(PROTOCOL_VERSION));
  return u.href;
}
