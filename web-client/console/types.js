// Types only (JSDoc, no code), shared by the console's modules: the part of
// ConsultSession (../digiclinic-client.js) that the console uses, the shapes
// the session reports, the local tracks and the error entries. room.js talks
// to a session through RoomSession; console.js hands it the real
// ConsultSession, so tsc checks that the library fits. Modules refer to these
// with `import("./types.js")` in JSDoc: nothing imports this file at run time.

/**
 * Another participant of the room, as the session keeps it (`participants`).
 * @typedef {object} Participant
 * @property {string} id
 * @property {string} [name]  the display name (shown as "" when missing)
 * @property {{id: string, kind: string}[]} [producers]  their published tracks
 * @property {boolean} [e2ee]  its frames are end-to-end encrypted
 */

/**
 * Someone in the room's lobby (the `lobby` event's `waiting` list).
 * @typedef {object} Waiting
 * @property {string} id
 * @property {string} name
 */

/**
 * A remote track (the `track` event's detail, kept in `remoteTracks`).
 * @typedef {object} RemoteTrackInfo
 * @property {MediaStreamTrack} track
 * @property {string} trackId
 * @property {string} participantId
 * @property {string} kind  "audio" or "video"
 * @property {string | null} [mid]  its m-line on the subscriber connection
 */

/**
 * One of our published tracks (`published`).
 * @typedef {object} PublishedEntry
 * @property {string} trackId
 * @property {string | null} mid  its m-line on the publisher connection
 */

/**
 * A remote video's render-size reporting (`watchRenderSize`).
 * @typedef {object} RenderWatcher
 * @property {unknown} lastSent  the last `track_settings` size sent, or null
 * @property {() => void} unwatch
 */

/**
 * A remote track a room receives (Room.media), with its render-size reporting.
 * @typedef {object} RemoteMedia
 * @property {MediaStreamTrack} track
 * @property {string} trackId
 * @property {string} participantId
 * @property {string} kind  "audio" or "video"
 * @property {RenderWatcher | null} watcher  set by Room.watchRenderSize() (video)
 */

/**
 * The `joined` reply.
 * @typedef {object} JoinedReply
 * @property {string} room
 * @property {string} state  "active", or "lobby" (never for a specialist)
 */

/**
 * What a room creates its session with.
 * @typedef {object} SessionOptions
 * @property {string} url  the signalling WebSocket
 * @property {string} token  the room's join token
 * @property {boolean} reconnect  rejoin by itself after a lost connection
 * @property {string | null} resume  a single-use token's resume secret
 * @property {string | null} [e2eeKey]  the consult key of an end-to-end encrypted room
 */

/**
 * The part of ConsultSession a room uses. `request` is the library's public
 * raw request (newer versions), `_request` the helper every version has.
 * @typedef {EventTarget & {
 *   state: string,
 *   participantId: string | null,
 *   resume: string | null,
 *   participants: Map<string, Participant>,
 *   remoteTracks: Map<string, RemoteTrackInfo>,
 *   published: Map<string, PublishedEntry>,
 *   publisherPc: RTCPeerConnection | null,
 *   subscriberPc: RTCPeerConnection | null,
 *   _ws: WebSocket | null,
 *   join: () => Promise<JoinedReply>,
 *   publish: (stream: MediaStream) => Promise<unknown>,
 *   admit: (participantId: string) => Promise<unknown>,
 *   deny: (participantId: string) => Promise<unknown>,
 *   leave: () => Promise<unknown>,
 *   _request: (type: string, fields: Record<string, unknown>) => Promise<unknown>,
 *   request?: (type: string, fields: Record<string, unknown>) => Promise<unknown>,
 *   pauseVideo?: (trackId: string, paused: boolean) => Promise<unknown>,
 *   watchRenderSize?: (trackId: string, element: HTMLVideoElement) => RenderWatcher,
 *   joined?: any,
 *   captures?: import("../widget/capture-util.js").CaptureApi,
 *   e2ee?: {mode: string, encrypting: boolean},
 *   setE2eeKey?: (key: string) => void,
 * }} RoomSession
 */

/** @typedef {(options: SessionOptions) => RoomSession} CreateSession */

/**
 * The specialist's camera and microphone (one each for the whole page), or null.
 * @typedef {object} LocalTracks
 * @property {MediaStreamTrack | null} audio
 * @property {MediaStreamTrack | null} video
 */

/**
 * An error, as `digiclinicConsole.errors` lists it.
 * @typedef {object} ErrorEntry
 * @property {number | null} room  the room's index, null for the page
 * @property {string} code
 * @property {string} message
 */

/** @typedef {"connecting" | "active" | "reconnecting" | "failed" | "closed" | "ended"} RoomState  room.js */
/**
 * A tile's `data-state` (docs/console.md).
 * @typedef {"connecting" | "waiting" | "in-call" | "on-hold" | "reconnecting" | "failed" | "closed" | "ended"} TileState
 */

/**
 * What a Room reports (Room.on): each event's name and its detail.
 * @typedef {object} RoomEvents
 * @property {null} change  anything shown about the room changed
 * @property {RemoteMedia} track  a remote track arrived (already in `media`)
 * @property {RemoteMedia} untrack  a remote track ended (already out of `media`)
 * @property {Waiting[]} lobby  people new in its lobby (`lobby` is the whole list)
 * @property {ErrorEntry} error  a failed request or a server error
 * @property {{session: RoomSession, signal: AbortSignal}} session  a new session (joining, or joining again);
 *   `signal` aborts when it is replaced
 */

/**
 * @typedef {object} RoomOptions
 * @property {number} index  0-based; its key is index + 1 (0 for the tenth)
 * @property {string} token  its join token
 * @property {string} label  shown until the token or `joined` names the room
 * @property {boolean} held  on hold at start
 * @property {string} serverUrl  the signalling WebSocket
 * @property {LocalTracks} local  the page's camera and microphone (filled before start())
 * @property {CreateSession} createSession
 * @property {string | null} [e2eeKey]  its consult key, for an end-to-end encrypted room
 */

export {};
