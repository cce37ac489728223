// Focus and hold applied to one room's session (class HoldSync), and the
// session helpers it needs. A room is *focused* or *on hold*:
//   - focused: our senders carry the local tracks, the server knows them as
//     unmuted (`mute` false), every video we receive there is forwarded
//     (`pause_video` false);
//   - on hold: `on_hold` first (the others' widgets then say "on hold" rather
//     than "camera off"), our senders carry no track (replaceTrack(null): no
//     renegotiation, nothing encoded or sent), `mute` true for each of our
//     tracks, `pause_video` true for every video we receive there.
// Rooms publish ended placeholders first (publishPlaceholders()).
// HoldSync remembers what it told the server, sends only differences, and
// runs one transition at a time (a promise chain), so quick key presses
// cannot interleave two transitions in a room. See docs/console.md.

/** @typedef {import("./types.js").RoomSession} RoomSession */
/** @typedef {import("./types.js").LocalTracks} LocalTracks */

/**
 * What HoldSync.apply() reads, when the transition runs (a Room).
 * @typedef {object} HoldTarget
 * @property {RoomSession | null} session
 * @property {boolean} held  on hold (true) or focused
 * @property {boolean} micMuted  our microphone muted in this room only
 * @property {LocalTracks} local  the page's camera and microphone
 */

/** @typedef {{sender: RTCRtpSender, kind: string, trackId: string}} OurSender */
/** @typedef {RTCRtpTransceiver & {stopped?: boolean}} Transceiver  `stopped`: older browsers */

/**
 * A raw protocol request, for what ConsultSession has no method for or whose
 * method does more than we want: `ConsultSession.mute()` also sets
 * `track.enabled` on the published track, and the console must only tell the
 * server. The library matches the reply by `ref` and rejects on an `error`;
 * `request` is its public name in newer versions, `_request` in every one.
 * @param {RoomSession | null} session
 * @param {string} type
 * @param {Record<string, unknown>} fields
 * @returns {Promise<unknown>}
 */
export function sessionRequest(session, type, fields) {
  if (!session) return Promise.reject(new Error(`${type}: not joined`));
  return typeof session.request === "function" ? session.request(type, fields) : session._request(type, fields);
}

/**
 * `pause_video`: ConsultSession.pauseVideo() when the library has it, the raw request otherwise.
 * @param {RoomSession} session
 * @param {string} trackId
 * @param {boolean} paused
 * @returns {Promise<unknown>}
 */
function pauseVideo(session, trackId, paused) {
  if (typeof session.pauseVideo === "function") return session.pauseVideo(trackId, paused);
  return sessionRequest(session, "pause_video", { track_id: trackId, paused });
}

/**
 * Our publisher transceivers with their track id and kind.
 * @param {RoomSession | null} session
 * @returns {OurSender[]}
 */
export function ourSenders(session) {
  const pc = session?.publisherPc;
  if (!pc || pc.connectionState === "closed") return [];
  const byMid = new Map([...session.published.values()].map((entry) => [entry.mid, entry]));
  return pc.getTransceivers()
    .filter((/** @type {Transceiver} */ tr) => byMid.has(tr.mid) && !tr.stopped)
    .map((tr) => ({ sender: tr.sender, kind: tr.receiver.track.kind, trackId: byMid.get(tr.mid).trackId }));
}

/**
 * Ids of the remote video tracks we receive (or are about to).
 * @param {RoomSession | null} session
 * @returns {Set<string>}
 */
function remoteVideoIds(session) {
  const ids = new Set();
  for (const participant of session?.participants.values() ?? []) {
    for (const track of participant.producers ?? []) if (track.kind === "video") ids.add(track.id);
  }
  for (const [id, info] of session?.remoteTracks ?? []) if (info.kind === "video") ids.add(id);
  return ids;
}

/**
 * Publish in a room without sending anything yet: the transceivers are created
 * with *ended* clones of the local tracks, which produce no media. HoldSync
 * then puts the real track on the focused room's senders and null on the
 * others, so no frame ever leaks to a room on hold.
 * @param {RoomSession} session
 * @param {LocalTracks} local
 */
export async function publishPlaceholders(session, local) {
  const tracks = [local.audio, local.video].filter(Boolean).map((track) => {
    const clone = track.clone();
    clone.stop();
    return clone;
  });
  if (tracks.length) await session.publish(new MediaStream(tracks));
}

export class HoldSync {
  /** @param {(err: unknown) => void} report  a refused request (it is retried on the next change) */
  constructor(report) {
    this.report = report;
    /** @type {Map<string, boolean>} our trackId -> muted state told to the server */
    this.sentMuted = new Map();
    /** @type {boolean | undefined} the `on_hold` state told to the server (undefined: unknown, resend) */
    this.sentHold = false;
    /** @type {Map<string, boolean>} remote video trackId -> paused state told to the server */
    this.sentPaused = new Map();
    /** @type {Map<string, boolean>} remote video trackId -> paused, from the server's `track_paused` */
    this.serverPaused = new Map();
    /** @type {Promise<number>} apply() calls never overlap */
    this.chain = Promise.resolve(0);
  }

  /** A new participant on the server (reconnected, joined again): nothing told to the old one holds. */
  forget() {
    this.sentMuted.clear();
    this.sentPaused.clear();
    this.serverPaused.clear();
    this.sentHold = false;
  }

  /** @param {string} trackId  a remote track that was unpublished */
  dropRemote(trackId) {
    this.sentPaused.delete(trackId);
    this.serverPaused.delete(trackId);
  }

  /**
   * Bring the session's media in line with `target`, after any transition
   * still running. Resolves to the time (performance.now()) at which the local
   * media change (replaceTrack) was done; the requests are acknowledged then too.
   * @param {HoldTarget} target
   * @returns {Promise<number>}
   */
  apply(target) {
    const run = this.chain.then(() => this.transition(target));
    this.chain = run.catch((err) => {
      this.report(err);
      return performance.now();
    });
    return this.chain;
  }

  /**
   * @param {HoldTarget} target
   * @returns {Promise<number>}
   */
  async transition({ session, held, micMuted, local }) {
    if (!session || session.state !== "active") return performance.now();
    const media = [];
    const signals = [];
    if (this.sentHold !== held) {
      this.sentHold = held;
      signals.push(sessionRequest(session, "on_hold", { enabled: held }).catch((err) => {
        this.sentHold = undefined; // retried by the next apply()
        this.report(err);
      }));
    }
    for (const { sender, kind, trackId } of ourSenders(session)) {
      const silent = held || (kind === "audio" && micMuted);
      const wanted = silent ? null : (kind === "audio" ? local.audio : local.video);
      if (sender.track !== wanted) media.push(sender.replaceTrack(wanted));
      if (this.sentMuted.get(trackId) !== silent) {
        this.sentMuted.set(trackId, silent);
        signals.push(sessionRequest(session, "mute", { track_id: trackId, muted: silent }).catch((err) => {
          this.sentMuted.delete(trackId); // retried by the next apply()
          this.report(err);
        }));
      }
    }
    for (const trackId of remoteVideoIds(session)) {
      if (this.sentPaused.get(trackId) === held) continue;
      this.sentPaused.set(trackId, held);
      signals.push(pauseVideo(session, trackId, held).catch((err) => {
        this.sentPaused.delete(trackId);
        if (err?.code !== "not_found") this.report(err); // unpublished meanwhile
      }));
    }
    await Promise.all(media);
    const mediaDone = performance.now();
    await Promise.all(signals);
    return mediaDone;
  }
}
