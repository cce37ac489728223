// One consult room of the console (class Room): its session (joined with the
// room's token, reconnecting by itself, joined again on request), its lobby
// list and remote tracks, whether it is focused or on hold (`held`, set by
// the controller; hold.js applies it to the session), and its own actions:
// our microphone in this room, end the consultation, admit / deny.
//
// A Room knows nothing of the page. It reports through events (Room.on):
// `change` (re-render), `track` / `untrack` (a remote track to show or drop),
// `lobby` (people new in its lobby), `session` (a new session: the tile's
// captures follow it) and `error`. Its session comes from the
// factory it is given (console.js: ConsultSession).

import { jwtClaims } from "./config.js";
import { Emitter } from "./emitter.js";
import { HoldSync, ourSenders, publishPlaceholders, sessionRequest } from "./hold.js";

/** @typedef {import("./types.js").RoomSession} RoomSession */
/** @typedef {import("./types.js").ErrorEntry} ErrorEntry */
/** @typedef {import("./types.js").Waiting} Waiting */
/** @typedef {import("./types.js").Participant} Participant */
/** @typedef {import("./types.js").RemoteTrackInfo} RemoteTrackInfo */
/** @typedef {import("./types.js").RemoteMedia} RemoteMedia */
/** @typedef {import("./types.js").RoomEvents} RoomEvents */
/** @typedef {import("./types.js").RoomOptions} RoomOptions */
/** @typedef {import("./types.js").RoomState} RoomState */
/** @typedef {import("./types.js").TileState} TileState */

/**
 * An error entry for `digiclinicConsole.errors`.
 * @param {number | null} room  the room's index, null for the page
 * @param {unknown} err
 * @returns {ErrorEntry}
 */
export function errorEntry(room, err) {
  const { code, message } = /** @type {{code?: string, message?: string}} */ (err ?? {});
  return { room, code: code ?? "error", message: String(message ?? err) };
}

/** @extends {Emitter<RoomEvents>} */
export class Room extends Emitter {
  /** @param {RoomOptions} options */
  constructor({ index, token, label, held, serverUrl, local, createSession, e2eeKey = null }) {
    super();
    const claims = jwtClaims(token);
    this.index = index;
    this.token = token;
    /** @type {string | null} */
    this.roomId = typeof claims.room === "string" ? claims.room : null;
    this.label = this.roomId ?? label;
    /** @type {RoomState} */
    this.state = "connecting";
    this.held = held;
    this.micMuted = false; // our microphone muted in this room only (kept across focus changes)
    /** @type {string | null} a single-use token's resume secret, to join again after a drop */
    this.resume = null;
    /** @type {RoomSession | null} */
    this.session = null;
    /** @type {Waiting[]} the latest `lobby` list */
    this.lobby = [];
    /** @type {Map<string, RemoteMedia>} remote trackId -> what we receive */
    this.media = new Map();
    /** @type {ErrorEntry | null} */
    this.lastError = null;
    /** what we told the server about focus and hold (sentMuted, sentPaused, …) */
    this.hold = new HoldSync((err) => this.report(err));
    this.local = local;
    this.serverUrl = serverUrl;
    this.createSession = createSession;
    /** @type {string | null} the consult key (end-to-end encrypted rooms); kept in memory only */
    this.e2eeKey = e2eeKey;
    /** @type {Set<string>} participantId/kind of remote streams that do not decrypt (a wrong key) */
    this.undecryptable = new Set();
    /** @type {Set<string>} lobby ids already reported through `lobby` */
    this.seenWaiting = new Set();
    /** @type {AbortController | null} removes our listeners from the current session */
    this.listening = null;
  }

  // -- events (Emitter: on, emit) -----------------------------------------------------

  changed() {
    this.emit("change", null);
  }

  /** @param {unknown} err */
  report(err) {
    this.lastError = errorEntry(this.index, err);
    this.emit("error", this.lastError);
    this.changed();
  }

  // -- what it shows ------------------------------------------------------------------

  /** @returns {TileState} the tile's `data-state` */
  get tileState() {
    if (this.state === "connecting") return "connecting";
    if (this.state !== "active") return this.state;
    if (this.lobby.length) return "waiting";
    return this.held ? "on-hold" : "in-call";
  }

  /** @returns {Participant[]} the other participants in the room */
  get others() {
    return [...(this.session?.participants.values() ?? [])];
  }

  /** @param {string} participantId @returns {string} their display name, "" if unknown */
  participantName(participantId) {
    return this.session?.participants.get(participantId)?.name ?? "";
  }

  /** @returns {import("./hold.js").OurSender[]} our publisher transceivers */
  ourSenders() {
    return ourSenders(this.session);
  }

  // -- focus, hold and this room's own actions ----------------------------------------

  /**
   * Focus this room (false) or put it on hold (true), then apply it.
   * @param {boolean} held
   * @returns {Promise<number>} when the local media change was done (HoldSync.apply())
   */
  setHeld(held) {
    this.held = held;
    this.changed();
    return this.apply();
  }

  /** @returns {Promise<number>} focus / hold applied to the session, only differences sent */
  apply() {
    return this.hold.apply(this);
  }

  /** Our microphone in this room only: muted or not (the other rooms are unaffected). */
  toggleMute() {
    this.micMuted = !this.micMuted;
    this.changed();
    return this.apply();
  }

  /** End the consultation in this room for everyone (`end_consult`; the admit grant). */
  end() {
    return this.attempt(() => sessionRequest(this.session, "end_consult", {}));
  }

  /** @param {string} participantId  someone in the lobby */
  admit(participantId) {
    return this.attempt(() => this.session.admit(participantId));
  }

  /** @param {string} participantId  someone in the lobby */
  deny(participantId) {
    return this.attempt(() => this.session.deny(participantId));
  }

  /**
   * A request whose failure is reported (on the tile and in `errors`), not thrown.
   * @param {() => Promise<unknown>} call
   * @returns {Promise<void>}
   */
  async attempt(call) {
    try {
      await call();
    } catch (err) {
      this.report(err);
    }
  }

  /**
   * Report the size at which a remote video is shown (`track_settings`): a room
   * on hold is a thumbnail and gets the lowest simulcast layer. Ends with the track.
   * @param {string} trackId
   * @param {HTMLVideoElement} element
   */
  watchRenderSize(trackId, element) {
    const entry = this.media.get(trackId);
    if (entry) entry.watcher = this.session?.watchRenderSize?.(trackId, element) ?? null;
  }

  /** A room whose connection could not be restored: join it again (same token, resume secret). */
  rejoin() {
    this.resume = this.session?.resume ?? this.resume;
    for (const trackId of [...this.media.keys()]) this.removeMedia(trackId);
    this.hold.forget();
    this.state = "connecting";
    this.changed();
    return this.start();
  }

  /** Stop listening to the session and leave the room. */
  close() {
    this.listening?.abort();
    for (const trackId of [...this.media.keys()]) this.removeMedia(trackId);
    this.session?.leave().catch(() => {});
  }

  // -- joining ------------------------------------------------------------------------

  /** Join with a new session, publish placeholders (hold.js) and apply focus / hold. */
  async start() {
    this.listening?.abort(); // an earlier session, replaced by rejoin()
    this.listening = new AbortController();
    // reconnect: a lost WebSocket or connection rejoins by itself (client/reconnect.js)
    const session = this.createSession({
      url: this.serverUrl, token: this.token, reconnect: true, resume: this.resume, e2eeKey: this.e2eeKey,
    });
    this.session = session;
    this.listen(session, this.listening.signal);
    this.emit("session", { session, signal: this.listening.signal }); // the tile's captures follow it
    try {
      const joined = await session.join();
      this.roomId = joined.room;
      this.label = joined.room;
      this.state = joined.state === "active" ? "active" : "failed"; // a specialist never waits
      this.changed();
      if (this.state !== "active") return;
      await publishPlaceholders(session, this.local);
      await this.apply();
    } catch (err) {
      this.state = "failed";
      this.report(err);
    }
    this.changed();
  }

  /**
   * Follow one session's events (until `signal` aborts).
   * @param {RoomSession} session
   * @param {AbortSignal} signal
   */
  listen(session, signal) {
    /**
     * @template T
     * @param {string} type
     * @param {(detail: T) => void} handler
     */
    const on = (type, handler) => session.addEventListener(
      type, (event) => handler(/** @type {CustomEvent<T>} */ (event).detail), { signal });
    on("lobby", (/** @type {{waiting: Waiting[]}} */ { waiting }) => this.updateLobby(waiting));
    on("track", (/** @type {RemoteTrackInfo} */ info) => { this.addMedia(info); this.apply(); });
    on("track-removed", (/** @type {{trackId: string}} */ { trackId }) => this.removeMedia(trackId));
    on("track-published", () => this.apply());
    on("track-unpublished", (/** @type {{track_id: string}} */ { track_id }) => this.hold.dropRemote(track_id));
    for (const type of ["participant-joined", "participant-left", "track-muted"]) on(type, () => this.changed());
    on("message", (/** @type {{type: string, track_id?: string, paused?: boolean}} */ msg) => {
      if (msg.type === "track_paused") this.hold.serverPaused.set(msg.track_id, msg.paused);
    });
    on("error", (/** @type {unknown} */ err) => this.report(err));
    on("e2ee-receive", (/** @type {{participantId: string, kind: string, state: string}} */ d) => {
      const at = `${d.participantId}/${d.kind}`;
      if (d.state === "wrong-key") this.undecryptable.add(at);
      else this.undecryptable.delete(at);
      this.changed();
    });
    on("reconnecting", () => { this.state = "reconnecting"; this.changed(); });
    on("reconnected", () => {
      this.hold.forget(); // a new participant on the server
      this.state = "active";
      this.changed();
      this.apply();
    });
    on("closed", (/** @type {{reason?: string} | null} */ detail) => {
      if (detail?.reason === "room_closed") this.state = "ended";
      else if (this.state !== "failed") this.state = "closed";
      this.changed();
    });
  }

  /** A new consult key from the portal (a rotation). @param {string} key */
  setE2eeKey(key) {
    this.e2eeKey = key;
    this.session?.setE2eeKey?.(key);
  }

  /**
   * End-to-end encryption as the tile shows it: the room's mode, whether everyone's
   * frames (and ours) are encrypted, and whether a remote stream does not decrypt here.
   */
  get e2ee() {
    const session = this.session;
    const mode = session?.e2ee?.mode ?? "off";
    const others = [...(session?.participants?.values() ?? [])];
    const present = new Set(others.map((p) => p.id));
    return {
      mode,
      encrypted: mode !== "off" && Boolean(session?.e2ee?.encrypting) && others.every((p) => p.e2ee),
      failing: [...this.undecryptable].some((at) => present.has(at.split("/")[0])),
    };
  }

  /** @param {Waiting[]} waiting  the room's whole lobby */
  updateLobby(waiting) {
    this.lobby = waiting;
    const fresh = waiting.filter((w) => !this.seenWaiting.has(w.id));
    for (const w of waiting) this.seenWaiting.add(w.id);
    const ids = new Set(waiting.map((w) => w.id));
    for (const id of this.seenWaiting) if (!ids.has(id)) this.seenWaiting.delete(id);
    this.emit("lobby", fresh);
    this.changed();
  }

  /** @param {RemoteTrackInfo} info */
  addMedia({ track, trackId, participantId, kind }) {
    this.removeMedia(trackId);
    /** @type {RemoteMedia} */
    const entry = { track, trackId, participantId, kind, watcher: null };
    this.media.set(trackId, entry);
    this.emit("track", entry);
    this.changed();
  }

  /** @param {string} trackId */
  removeMedia(trackId) {
    const entry = this.media.get(trackId);
    if (!entry) return;
    this.media.delete(trackId);
    entry.watcher?.unwatch();
    this.emit("untrack", entry);
    this.changed();
  }
}
