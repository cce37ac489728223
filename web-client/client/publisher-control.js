// The server's control of a ConsultSession's publisher (../digiclinic-client.js):
// `publisher_layers` switches our camera's simulcast layers off and on, and
// `publisher_audio` caps our microphone's Opus (and its packet duration)
// while someone's link is too thin for it.
//
// Owns: the Opus packet duration each publisher connection was last
// answered for (a change needs a new offer), the layers the server last asked
// for, and whether our camera yields to a capture upload (yieldVideo).
// Interface: onLayers(msg), onAudio(msg), yieldVideo(on, trackIds); each emits what it applied
// (`layers-applied`, `audio-cap-applied`) or an `error`. It works on the
// Publisher (publisher.js) through its queue(task), senderOf(trackId), pc
// and renegotiate(), and gets `emit` from its constructor.

import { applyLayers } from "./simulcast.js";

/** @typedef {import("./protocol.js").Emit} Emit */
/** @typedef {import("./protocol.js").PublisherLayers} PublisherLayers */
/** @typedef {import("./protocol.js").PublisherAudio} PublisherAudio */

/**
 * What the control needs of the publisher.
 * @typedef {object} ControlledPublisher
 * @property {RTCPeerConnection|null} pc
 * @property {<T>(task: () => Promise<T>) => Promise<T>} queue  after the publisher's other changes
 * @property {(trackId: string) => RTCRtpSender|null} senderOf
 * @property {() => Promise<void>} renegotiate
 */

export class PublisherControl {
  /** @type {WeakMap<RTCPeerConnection, number|null>} pc -> packet_ms it was last answered for */
  #audioPackets = new WeakMap();
  /** the packet duration our audio was last renegotiated for (null: the usual) */
  #packetMs = /** @type {number|null} */ (null);
  /** @type {Array<() => void>} who waits for the thin-link packets (audioThinned) */
  #thinWaiters = [];
  /** @type {Map<string, any>} trackId -> the layers the server last asked for */
  #layers = new Map();
  /** our camera yields the uplink to a capture (client/captures.js) */
  #yielding = false;
  #publisher;
  #emit;

  /**
   * @param {ControlledPublisher} publisher
   * @param {Emit} emit
   */
  constructor(publisher, emit) {
    this.#publisher = publisher;
    this.#emit = emit;
  }

  /**
   * The server's `publisher_layers`: no subscriber needs the inactive layers,
   * so stop encoding them (`encodings[i].active` through setParameters; the
   * camera track itself is never touched), and start them again when told.
   * Resolves to the layers applied ({rid: active}), or null.
   * @param {PublisherLayers} msg
   */
  onLayers({ track_id: trackId, layers }) {
    this.#layers.set(trackId, layers);
    if (this.#yielding) return Promise.resolve(null); // applied when the capture is through
    return this.#publisher.queue(async () => {
      const sender = this.#publisher.senderOf(trackId);
      if (!sender) return null;
      const applied = await applyLayers(sender, layers);
      if (applied) this.#emit("layers-applied", { trackId, layers: applied });
      return applied;
    }).catch((err) => this.#failed(err, "layers_failed", "publisher_layers"));
  }

  /**
   * The server's `publisher_audio`: a link is too thin for our audio, so cap
   * the Opus encoder at `max_bitrate_bps` (`maxBitrate` of the sender's
   * encodings; null lifts it). When its `packet_ms` differs from what our
   * connection was last answered with, renegotiate: the server's answer then
   * asks for Opus packets that long (thin-link audio), or for the usual ones
   * again (null). No sender parameter changes the packet duration.
   * Resolves to the cap applied, or null.
   * @param {PublisherAudio} msg
   */
  onAudio({ track_id: trackId, max_bitrate_bps: maxBitrate, packet_ms: packetMs = null }) {
    return this.#publisher.queue(async () => {
      const sender = this.#publisher.senderOf(trackId);
      if (!sender) return null;
      const params = sender.getParameters();
      if (!params.encodings?.length) return null;
      for (const encoding of params.encodings) {
        if (maxBitrate) encoding.maxBitrate = maxBitrate;
        else delete encoding.maxBitrate;
      }
      await sender.setParameters(params);
      const pc = this.#publisher.pc;
      if (pc && (this.#audioPackets.get(pc) ?? null) !== packetMs) {
        this.#audioPackets.set(pc, packetMs);
        await this.#publisher.renegotiate();
      }
      this.#packetMs = packetMs;
      if (packetMs) for (const wake of this.#thinWaiters.splice(0)) wake();
      this.#emit("audio-cap-applied", { trackId, maxBitrate: maxBitrate ?? null, packetMs });
      return maxBitrate ?? null;
    }).catch((err) => this.#failed(err, "audio_cap_failed", "publisher_audio"));
  }

  /**
   * While a capture crosses a thin uplink (client/captures.js) our camera
   * stops sending (every encoding inactive; the track is untouched) so that
   * the capture gets what the audio leaves (the server thins the audio itself:
   * `thin_uplink` in capture_begin); afterwards the layers the server last
   * asked for (or all) are sent again. Emits `video-yield` {paused}.
   * @param {boolean} on
   * @param {string[]} trackIds  our camera tracks
   */
  yieldVideo(on, trackIds) {
    if (on === this.#yielding) return Promise.resolve();
    this.#yielding = on;
    return this.#publisher.queue(async () => {
      for (const trackId of trackIds) {
        const sender = this.#publisher.senderOf(trackId);
        if (!sender) continue;
        const rids = (sender.getParameters().encodings ?? []).map((e) => ({ rid: e.rid ?? "", active: !on }));
        await applyLayers(sender, on ? rids : (this.#layers.get(trackId) ?? rids));
      }
      this.#emit("video-yield", { paused: on });
    }).catch((err) => { this.#failed(err, "layers_failed", "capture yield"); });
  }

  /**
   * Resolves true once our audio is in thin-link packets (at once if it is),
   * false after `ms`.
   * @param {number} ms
   * @returns {Promise<boolean>}
   */
  audioThinned(ms) {
    if (this.#packetMs) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = () => { clearTimeout(timer); resolve(true); };
      const timer = setTimeout(() => {
        this.#thinWaiters = this.#thinWaiters.filter((w) => w !== wake);
        resolve(false);
      }, ms);
      this.#thinWaiters.push(wake);
    });
  }

  /**
   * A request we could not apply: an `error` event, unless the connection
   * was replaced (the server tells the new one again).
   * @param {any} err
   * @param {string} code  the default code
   * @param {string} what  the server's message type
   * @returns {null}
   */
  #failed(err, code, what) {
    if (err.code === "reconnecting") return null;
    this.#emit("error", { code: err.code ?? err.name ?? code, message: `${what}: ${err.message}` });
    return null;
  }
}
