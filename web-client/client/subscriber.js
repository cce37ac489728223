// The subscriber of a ConsultSession (../digiclinic-client.js): everyone
// else's tracks on the subscriber connection (the server offers, we answer).
//
// Owns: the subscriber RTCPeerConnection (`pc`), `remoteTracks` (trackId ->
// RemoteTrack, the `track` event's detail), the metadata of the latest
// offer's m-lines, one MediaStream per participant's camera and screen, and
// the queue that answers offers one at a time (a reset() drops it).
// Interface: onOffer(msg) (a `subscriber_offer`), removeTrack(trackId),
// mediaBytesReceived(), reset() (a lost connection), close() (the end). It
// emits `track`, `track-removed` and, when an answer fails, `error`; it gets
// `request`, `emit`, the PeerFactory, `isActive` and `onTrackGone` (called
// with each track id that goes away, known or not) from its constructor.

/** @typedef {import("./protocol.js").Request} Request */
/** @typedef {import("./protocol.js").Emit} Emit */
/** @typedef {import("./protocol.js").SubscriberOffer} SubscriberOffer */
/** @typedef {import("./protocol.js").OfferedTrack} OfferedTrack */
/** @typedef {import("./peer.js").PeerFactory} PeerFactory */

/**
 * A remote track (the `track` and `track-removed` events' detail): `stream`
 * groups a participant's camera and microphone (or screen share video and audio).
 * @typedef {object} RemoteTrack
 * @property {MediaStreamTrack} track
 * @property {MediaStream} stream
 * @property {string} trackId
 * @property {string} participantId
 * @property {string} kind
 * @property {string} source
 * @property {string} mid
 */

/**
 * @typedef {object} SubscriberOptions
 * @property {Request} request
 * @property {Emit} emit
 * @property {PeerFactory} peers
 * @property {() => boolean} isActive  whether we are in the call (else offers are ignored)
 * @property {(trackId: string) => void} onTrackGone
 * @property {(receiver: RTCRtpReceiver, kind: "audio"|"video", participantId: string) => void} [onReceiver]
 *   a new remote track, before its first frame (end-to-end encryption, e2ee.js)
 */

/** @param {string} source */
const isScreen = (source) => source.startsWith("screen_share");

export class Subscriber {
  /** @type {RTCPeerConnection|null} */
  pc = null;
  /** @type {Map<string, RemoteTrack>} trackId -> the `track` event's detail */
  remoteTracks = new Map();
  /** @type {Map<string, OfferedTrack>} mid -> track metadata of the latest offer */
  #offerMeta = new Map();
  /** @type {Map<string, MediaStream>} "participant/camera|screen" -> MediaStream */
  #streams = new Map();
  /** @type {Promise<unknown>} offers are answered one at a time */
  #chain = Promise.resolve();
  #generation = 0; // bumped by reset(): offers of an older connection are dropped
  #options;

  /** @param {SubscriberOptions} options */
  constructor(options) {
    this.#options = options;
  }

  /**
   * A `subscriber_offer`: answer it once the previous one is answered, unless
   * the connection was replaced meanwhile; a failure is an `error` event.
   * @param {SubscriberOffer} offer
   */
  onOffer(offer) {
    const generation = this.#generation;
    this.#chain = this.#chain
      .then(() => generation === this.#generation && this.#answer(offer))
      .catch((err) => {
        // we left or reconnected meanwhile
        if (!this.#options.isActive() || generation !== this.#generation) return;
        this.#options.emit("error", {
          code: err.code ?? "subscriber_failed", message: `subscriber answer: ${err.message}`,
        });
      });
  }

  /**
   * Set the offer, answer, wait for ICE gathering, send `subscriber_answer`.
   * @param {SubscriberOffer} offer
   */
  async #answer(offer) {
    if (!this.#options.isActive()) return;
    if (!this.pc) {
      this.pc = this.#options.peers.create("subscriber");
      this.pc.ontrack = (event) => this.#onTrack(event);
    }
    const pc = this.pc;
    const previous = this.#offerMeta;
    this.#offerMeta = new Map(offer.tracks.map((meta) => [meta.mid, meta]));
    for (const [mid, meta] of previous) {
      if (!this.#offerMeta.has(mid)) this.removeTrack(meta.track_id);
    }
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp }); // fires `track`
    await pc.setLocalDescription(); // the answer
    await this.#options.peers.gathered(pc);
    await this.#options.request("subscriber_answer", { sdp: pc.localDescription.sdp });
  }

  /** @param {RTCTrackEvent} event */
  #onTrack({ track, transceiver }) {
    const meta = this.#offerMeta.get(transceiver.mid);
    if (!meta) return; // not in the offer's `tracks`: nothing to label it with
    this.#options.onReceiver?.(transceiver.receiver, /** @type {"audio"|"video"} */ (meta.kind), meta.participant_id);
    const key = `${meta.participant_id}/${isScreen(meta.source) ? "screen" : "camera"}`;
    let stream = this.#streams.get(key);
    if (!stream) this.#streams.set(key, (stream = new MediaStream()));
    stream.addTrack(track);
    /** @type {RemoteTrack} */
    const info = {
      track, stream, trackId: meta.track_id, participantId: meta.participant_id,
      kind: meta.kind, source: meta.source, mid: transceiver.mid,
    };
    this.remoteTracks.set(meta.track_id, info);
    this.#options.emit("track", info);
  }

  /**
   * A remote track is gone (unpublished, no longer offered, or the
   * connection closed): `track-removed`, if we had it.
   * @param {string} trackId
   */
  removeTrack(trackId) {
    this.#options.onTrackGone(trackId);
    const info = this.remoteTracks.get(trackId);
    if (!info) return;
    this.remoteTracks.delete(trackId);
    info.stream.removeTrack(info.track);
    this.#options.emit("track-removed", info);
  }

  /** Bytes of media received so far on the connection (0 without a connected one). */
  async mediaBytesReceived() {
    const pc = this.pc;
    if (!pc || pc.connectionState !== "connected") return 0;
    let bytes = 0;
    try {
      (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp") bytes += s.bytesReceived ?? 0; });
    } catch { return 0; }
    return bytes;
  }

  #removeAll() {
    for (const trackId of [...this.remoteTracks.keys()]) this.removeTrack(trackId);
  }

  /** The connection is lost: close it, remove every remote track, drop queued offers. */
  reset() {
    this.#generation += 1;
    this.pc?.close();
    this.pc = null;
    this.#removeAll();
    this.#offerMeta = new Map();
    this.#streams = new Map();
    this.#chain = Promise.resolve();
  }

  /** The session ends: close the connection (`pc` stays, closed), remove every remote track. */
  close() {
    this.pc?.close();
    this.#removeAll();
  }
}
