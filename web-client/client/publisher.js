// The publisher of a ConsultSession (../digiclinic-client.js): our tracks on
// the publisher connection (we offer). The camera goes as rid-based simulcast
// (simulcast.js), a screen share as one encoding.
//
// Owns: the publisher RTCPeerConnection (`pc`), `published` (our trackId ->
// PublishedTrack), the label of each of our m-lines (source, track, mute
// state, encodings), and the queue that keeps negotiations and sender changes
// one at a time (reset() drops what is queued for the old connection).
// Interface: publish(stream, options), takeRepublish(), republish(items),
// unpublish(trackId), mute(trackId, muted), replaceTrack(trackId, track),
// sendEncodings(trackId), reset() (a lost connection), close() (the end);
// for publisher-control.js: queue(task), senderOf(trackId), renegotiate().
// It gets `request`, the PeerFactory, `requireActive` (throws unless we may
// publish) and the `simulcast` option from its constructor.

import { DigiclinicError } from "./protocol.js";
import { answerHasSimulcast, sendEncodingsFor, tuneSender } from "./simulcast.js";

/** @typedef {import("./protocol.js").Request} Request */
/** @typedef {import("./peer.js").PeerFactory} PeerFactory */

/**
 * One of our published tracks (the entries of `ConsultSession.published`).
 * @typedef {object} PublishedTrack
 * @property {string} trackId  the server's id
 * @property {string} mid
 * @property {string} source  camera, microphone, screen_share, screen_share_audio
 * @property {MediaStreamTrack|null} track
 * @property {boolean} muted
 * @property {boolean} simulcast  sent as several layers
 */

/**
 * A track to publish: `track` null sends nothing until replaceTrack().
 * @typedef {object} PublishItem
 * @property {MediaStreamTrack|null} track
 * @property {string} kind  "audio" or "video"
 * @property {string} source
 * @property {MediaStream|null} stream
 * @property {boolean} muted
 */

/**
 * What we know of one of our m-lines: the item, its encodings as offered, and
 * whether a screen share's degradationPreference is set (`tuned`).
 * @typedef {PublishItem & {encodings: RTCRtpEncodingParameters[]|null, tuned?: boolean}} Label
 */

/**
 * @typedef {object} PublisherOptions
 * @property {Request} request
 * @property {PeerFactory} peers
 * @property {() => void} requireActive  throws unless we are active
 * @property {boolean} simulcast  send the camera as simulcast layers
 * @property {(transceiver: RTCRtpTransceiver, kind: "audio"|"video") => void} [onTransceiver]
 *   a new sending m-line, before it is negotiated (end-to-end encryption, e2ee.js)
 */

/**
 * The protocol's `source` label for a local track, or null to leave it out.
 * @param {string} kind
 * @param {{camera?: boolean, microphone?: boolean, screen?: boolean}} options
 */
function sourceFor(kind, { camera = true, microphone = true, screen = false }) {
  if (kind === "video") return screen ? "screen_share" : camera ? "camera" : null;
  if (kind === "audio") return screen ? "screen_share_audio" : microphone ? "microphone" : null;
  return null;
}

/**
 * Chrome's `stopped` of a transceiver (deprecated, so not in TypeScript's DOM types).
 * @param {RTCRtpTransceiver & {stopped?: boolean}} transceiver
 */
const isStopped = (transceiver) => Boolean(transceiver.stopped);

/** @param {string} source */
const kindOf = (source) => (source === "camera" || source === "screen_share" ? "video" : "audio");

export class Publisher {
  /** @type {RTCPeerConnection|null} */
  pc = null;
  /** @type {Map<string, PublishedTrack>} our trackId -> what we publish */
  published = new Map();
  /** @type {Map<string, Label>} our mid -> label */
  #labels = new Map();
  /** @type {Promise<unknown>} the queue: each task waits for the previous */
  #chain = Promise.resolve();
  #generation = 0; // bumped by reset(): queued tasks of an older connection fail
  #options;

  /** @param {PublisherOptions} options */
  constructor(options) {
    this.#options = options;
  }

  /**
   * ConsultSession.publish(): the tracks of `stream`, labelled by `options`.
   * @param {MediaStream} stream
   * @param {{camera?: boolean, microphone?: boolean, screen?: boolean}} [options]
   * @returns {Promise<PublishedTrack[]>}
   */
  publish(stream, options = {}) {
    /** @type {PublishItem[]} */
    const items = [];
    for (const track of stream.getTracks()) {
      const source = sourceFor(track.kind, options);
      if (source) items.push({ track, kind: track.kind, source, stream, muted: false });
    }
    return this.queue(() => this.#publishItems(items));
  }

  /**
   * What to publish again after a lost connection: our current tracks, as
   * labelled, with their mute state. Forgets them (`published` is empty).
   * @returns {PublishItem[]}
   */
  takeRepublish() {
    const items = [...this.published.values()].map((entry) => {
      const label = this.#labels.get(entry.mid);
      const track = entry.track?.readyState === "live" ? entry.track : null;
      return {
        track, kind: label?.kind ?? kindOf(entry.source), source: entry.source,
        stream: label?.stream ?? null, muted: label?.muted ?? entry.muted ?? false,
      };
    }).filter((item) => item.track || item.source === "camera" || item.source === "microphone");
    this.published = new Map();
    this.#labels = new Map();
    return items;
  }

  /**
   * Publish `items` (from takeRepublish()) on the current connection.
   * @param {PublishItem[]} items
   * @returns {Promise<PublishedTrack[]>}
   */
  republish(items) {
    return this.queue(() => this.#publishItems(items));
  }

  /**
   * Add sending m-lines for `items` and renegotiate. Muted items are
   * announced muted right after.
   * @param {PublishItem[]} items
   * @returns {Promise<PublishedTrack[]>}
   */
  async #publishItems(items) {
    this.#options.requireActive();
    if (items.length === 0) throw new TypeError("publish: no track of the stream selected");
    const pc = (this.pc ??= this.#options.peers.create("publisher"));
    const added = items.map((item) => {
      /** @type {RTCRtpTransceiverInit} */
      const init = { direction: "sendonly", streams: item.stream ? [item.stream] : [] };
      const encodings = sendEncodingsFor(item, this.#options.simulcast);
      if (encodings) init.sendEncodings = encodings;
      const transceiver = pc.addTransceiver(item.track ?? item.kind, init);
      this.#options.onTransceiver?.(transceiver, /** @type {"audio"|"video"} */ (item.kind));
      return { ...item, encodings, transceiver };
    });
    /** @type {string[]} */
    const mids = [];
    try {
      await this.#negotiate(pc, () => { // mids exist once the offer is set
        for (const { transceiver: { mid }, track, kind, source, stream, muted, encodings } of added) {
          if (track && muted) track.enabled = false;
          this.#labels.set(mid, { source, track, kind, stream, muted: Boolean(muted), encodings });
          mids.push(mid);
        }
      });
    } catch (err) { // rolled back: forget the new tracks
      mids.forEach((mid) => this.#labels.delete(mid));
      added.forEach(({ transceiver }) => transceiver.stop());
      throw err;
    }
    const mine = [...this.published.values()].filter((entry) => mids.includes(entry.mid));
    for (const entry of mine) {
      if (entry.muted) await this.#options.request("mute", { track_id: entry.trackId, muted: true });
    }
    return mine;
  }

  /**
   * ConsultSession.sendEncodings(): our video track's encodings now, or null.
   * @param {string} trackId
   */
  sendEncodings(trackId) {
    const sender = this.senderOf(trackId);
    if (!sender) return null;
    return (sender.getParameters().encodings ?? []).map(({ rid, active, scaleResolutionDownBy, maxBitrate }) => ({
      rid: rid ?? null, active: active !== false, scaleResolutionDownBy: scaleResolutionDownBy ?? 1,
      maxBitrate: maxBitrate ?? null,
    }));
  }

  /**
   * The sender of one of our tracks, or null.
   * @param {string} trackId
   * @returns {RTCRtpSender|null}
   */
  senderOf(trackId) {
    const entry = this.published.get(trackId);
    if (!entry || !this.pc) return null;
    return this.pc.getTransceivers().find((t) => t.mid === entry.mid && !isStopped(t))?.sender ?? null;
  }

  /**
   * ConsultSession.unpublish(): its m-line becomes inactive.
   * @param {string} trackId
   * @returns {Promise<void>}
   */
  unpublish(trackId) {
    return this.queue(async () => {
      const entry = this.published.get(trackId);
      const pc = this.pc;
      const transceiver = pc?.getTransceivers().find((t) => t.mid === entry?.mid);
      if (!transceiver) throw new DigiclinicError("not_found", `not publishing ${trackId}`);
      await transceiver.sender.replaceTrack(null);
      transceiver.direction = "inactive";
      await this.#negotiate(pc);
    });
  }

  /**
   * ConsultSession.mute(): for everyone, and we stop sending its media.
   * @param {string} trackId
   * @param {boolean} [muted]
   * @returns {Promise<void>}
   */
  async mute(trackId, muted = true) {
    const entry = this.published.get(trackId);
    if (entry) {
      // the server stops forwarding; we stop capturing
      if (entry.track) entry.track.enabled = !muted;
      entry.muted = muted;
      const label = this.#labels.get(entry.mid);
      if (label) label.muted = muted; // kept when republishing after a reconnection
    }
    await this.#options.request("mute", { track_id: trackId, muted });
  }

  /**
   * ConsultSession.replaceTrack(): without renegotiating.
   * @param {string} trackId
   * @param {MediaStreamTrack|null} track
   * @returns {Promise<void>}
   */
  replaceTrack(trackId, track) {
    return this.queue(async () => {
      const entry = this.published.get(trackId);
      const transceiver = this.pc?.getTransceivers().find((t) => t.mid === entry?.mid);
      if (!transceiver) throw new DigiclinicError("not_found", `not publishing ${trackId}`);
      const label = this.#labels.get(entry.mid);
      if (track && (label?.muted ?? entry.muted)) track.enabled = false;
      await transceiver.sender.replaceTrack(track);
      entry.track = track;
      if (label) label.track = track;
    });
  }

  /**
   * Offer, wait for ICE gathering, send `publish`, apply `publish_answer`.
   * @param {RTCPeerConnection} pc
   * @param {() => void} [onOffer]  once the offer is set (the mids exist)
   */
  async #negotiate(pc, onOffer = () => {}) {
    await pc.setLocalDescription(); // an offer, in state "stable"
    onOffer();
    await this.#options.peers.gathered(pc);
    let reply;
    try {
      const tracks = [...this.#labels].map(([mid, { source }]) => ({ mid, source }));
      reply = await this.#options.request("publish", { sdp: pc.localDescription.sdp, tracks });
    } catch (err) {
      if (pc.signalingState === "have-local-offer") await pc.setLocalDescription({ type: "rollback" });
      throw err;
    }
    await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
    // `tracks` lists everything we publish now
    /** @type {{mid: string, track_id: string, source: string}[]} */
    const tracks = reply.tracks;
    this.published = new Map(tracks.map(({ mid, track_id: trackId, source }) => {
      const label = this.#labels.get(mid);
      const simulcast = (label?.encodings?.length ?? 0) > 1 && answerHasSimulcast(reply.sdp, mid);
      return [trackId, {
        trackId, mid, source, track: label?.track ?? null, muted: label?.muted ?? false, simulcast,
      }];
    }));
    await this.#tuneSenders(pc);
  }

  /**
   * After a negotiation: adjust our video senders to the answer (simulcast.js).
   * @param {RTCPeerConnection} pc
   */
  async #tuneSenders(pc) {
    for (const transceiver of pc.getTransceivers()) {
      const label = this.#labels.get(transceiver.mid);
      if (!label || isStopped(transceiver) || label.kind !== "video") continue;
      try {
        await tuneSender(transceiver.sender, label);
      } catch (err) {
        console.warn("digiclinic: could not tune a sender", err);
      }
    }
  }

  /**
   * Offer again (after a sender change that needs a new answer); only from a
   * queued task.
   */
  renegotiate() {
    return this.pc ? this.#negotiate(this.pc) : Promise.resolve();
  }

  /**
   * Run `task` after every task queued before it, unless the connection is
   * replaced meanwhile (then reject with `reconnecting`).
   * @template T
   * @param {() => Promise<T>} task
   * @returns {Promise<T>}
   */
  queue(task) {
    const generation = this.#generation;
    const run = this.#chain.then(() => {
      if (generation !== this.#generation) {
        throw new DigiclinicError("reconnecting", "the connection was replaced");
      }
      return task();
    });
    this.#chain = run.catch(() => {});
    return run;
  }

  /** The connection is lost: close it, drop queued tasks (what we publish stays listed). */
  reset() {
    this.#generation += 1;
    this.pc?.close();
    this.pc = null;
    this.#chain = Promise.resolve();
  }

  /** The session ends: close the connection (`pc` stays, closed). */
  close() {
    this.pc?.close();
  }
}
