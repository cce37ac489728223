// ConsultSession's publisher connection (our tracks; we offer): publishing
// (the camera as rid-based simulcast, see simulcast.js), unpublishing, muting
// and replacing local tracks, one negotiation at a time, and the server's
// `publisher_layers` requests. A mixin of ConsultSession (../digiclinic-client.js).

import { DigiclinicError } from "./protocol.js";
import {
  SCREEN_ENCODING, answerHasSimulcast, applyLayers, cameraEncodings, fixRefusedSimulcast,
} from "./simulcast.js";

/** The protocol's `source` label for a local track, or null to leave it out. */
function sourceFor(kind, { camera = true, microphone = true, screen = false }) {
  if (kind === "video") return screen ? "screen_share" : camera ? "camera" : null;
  if (kind === "audio") return screen ? "screen_share_audio" : microphone ? "microphone" : null;
  return null;
}

export const Publishing = (Base) => class Publishing extends Base {
  /**
   * Publish the tracks of `stream`. By default its video is the camera and
   * its audio the microphone; `{camera: false}` / `{microphone: false}`
   * leaves one out, `{screen: true}` labels the stream a screen share.
   * Each call renegotiates the one publisher connection with a complete
   * offer. Resolves to the tracks added, as in `published`.
   */
  publish(stream, options = {}) {
    const items = [];
    for (const track of stream.getTracks()) {
      const source = sourceFor(track.kind, options);
      if (source) items.push({ track, kind: track.kind, source, stream, muted: false });
    }
    return this._onPublisher(() => this._publishItems(items));
  }

  /**
   * Add sending m-lines for `items` ({track or null, kind, source, stream,
   * muted}) and renegotiate; a null track sends nothing until replaceTrack().
   * Muted items are announced muted right after.
   */
  async _publishItems(items) {
    this._requireActive();
    if (items.length === 0) throw new TypeError("publish: no track of the stream selected");
    const pc = (this.publisherPc ??= this._createPc("publisher"));
    const added = items.map((item) => {
      const init = { direction: "sendonly", streams: item.stream ? [item.stream] : [] };
      const encodings = this._encodingsFor(item);
      if (encodings) init.sendEncodings = encodings;
      return { ...item, encodings, transceiver: pc.addTransceiver(item.track ?? item.kind, init) };
    });
    const mids = [];
    try {
      await this._negotiatePublisher(pc, () => { // mids exist once the offer is set
        for (const { transceiver: { mid }, track, kind, source, stream, muted, encodings } of added) {
          if (track && muted) track.enabled = false;
          this._labels.set(mid, { source, track, kind, stream, muted: Boolean(muted), encodings });
          mids.push(mid);
        }
      });
    } catch (err) { // rolled back: forget the new tracks
      mids.forEach((mid) => this._labels.delete(mid));
      added.forEach(({ transceiver }) => transceiver.stop());
      throw err;
    }
    const mine = [...this.published.values()].filter((entry) => mids.includes(entry.mid));
    for (const entry of mine) {
      if (entry.muted) await this._request("mute", { track_id: entry.trackId, muted: true });
    }
    return mine;
  }

  /**
   * The `sendEncodings` of a new sender: the camera as simulcast layers
   * (unless `simulcast: false` or the camera is small), a screen share as one
   * encoding with `contentHint = "detail"`; null (one default encoding) else.
   */
  _encodingsFor({ kind, source, track }) {
    if (kind !== "video") return null;
    if (source === "screen_share") {
      if (track && !track.contentHint) track.contentHint = "detail";
      return [{ ...SCREEN_ENCODING }];
    }
    if (source === "camera" && this.simulcast) {
      const encodings = cameraEncodings(track);
      return encodings && encodings.length > 1 ? encodings : null;
    }
    return null;
  }

  /**
   * The encodings one of our video tracks is sent with now:
   * [{rid, active, scaleResolutionDownBy, maxBitrate}] (one entry without a
   * rid when not simulcast), or null if we do not publish it.
   */
  sendEncodings(trackId) {
    const sender = this._senderOf(trackId);
    if (!sender) return null;
    return (sender.getParameters().encodings ?? []).map(({ rid, active, scaleResolutionDownBy, maxBitrate }) => ({
      rid: rid ?? null, active: active !== false, scaleResolutionDownBy: scaleResolutionDownBy ?? 1,
      maxBitrate: maxBitrate ?? null,
    }));
  }

  _senderOf(trackId) {
    const entry = this.published.get(trackId);
    if (!entry || !this.publisherPc) return null;
    return this.publisherPc.getTransceivers().find((t) => t.mid === entry.mid && !t.stopped)?.sender ?? null;
  }

  /**
   * The server's `publisher_layers`: no subscriber needs the inactive layers,
   * so stop encoding them (`encodings[i].active` through setParameters; the
   * camera track itself is never touched), and start them again when told.
   */
  _onPublisherLayers({ track_id: trackId, layers }) {
    return this._onPublisher(async () => {
      const sender = this._senderOf(trackId);
      if (!sender) return null;
      const applied = await applyLayers(sender, layers);
      if (applied) this._emit("layers-applied", { trackId, layers: applied });
      return applied;
    }).catch((err) => {
      if (err.code === "reconnecting") return null; // the server tells the new connection again
      const code = err.code ?? err.name ?? "layers_failed";
      this._emit("error", { code, message: `publisher_layers: ${err.message}` });
      return null;
    });
  }

  /**
   * The server's `publisher_audio`: a link is too thin for our audio, so cap
   * the Opus encoder at `max_bitrate_bps` (`maxBitrate` of the sender's
   * encodings; null lifts it). When its `packet_ms` differs from what our
   * connection was last answered with, renegotiate: the server's answer then
   * asks for Opus packets that long (thin-link audio), or for the usual ones
   * again (null). No sender parameter changes the packet duration.
   */
  _onPublisherAudio({ track_id: trackId, max_bitrate_bps: maxBitrate, packet_ms: packetMs = null }) {
    return this._onPublisher(async () => {
      const sender = this._senderOf(trackId);
      if (!sender) return null;
      const params = sender.getParameters();
      if (!params.encodings?.length) return null;
      for (const encoding of params.encodings) {
        if (maxBitrate) encoding.maxBitrate = maxBitrate;
        else delete encoding.maxBitrate;
      }
      await sender.setParameters(params);
      const pc = this.publisherPc;
      if (pc && (this._audioPackets.get(pc) ?? null) !== packetMs) {
        this._audioPackets.set(pc, packetMs);
        await this._negotiatePublisher(pc);
      }
      this._emit("audio-cap-applied", { trackId, maxBitrate: maxBitrate ?? null, packetMs });
      return maxBitrate ?? null;
    }).catch((err) => {
      if (err.code === "reconnecting") return null; // the server tells the new connection again
      const code = err.code ?? err.name ?? "audio_cap_failed";
      this._emit("error", { code, message: `publisher_audio: ${err.message}` });
      return null;
    });
  }

  /** Stop publishing one of our tracks (its m-line becomes inactive). */
  unpublish(trackId) {
    return this._onPublisher(async () => {
      const entry = this.published.get(trackId);
      const pc = this.publisherPc;
      const transceiver = pc?.getTransceivers().find((t) => t.mid === entry?.mid);
      if (!transceiver) throw new DigiclinicError("not_found", `not publishing ${trackId}`);
      await transceiver.sender.replaceTrack(null);
      transceiver.direction = "inactive";
      await this._negotiatePublisher(pc);
    });
  }

  /** Mark one of our tracks muted for everyone (and stop sending its media). */
  async mute(trackId, muted = true) {
    const entry = this.published.get(trackId);
    if (entry) {
      // the server stops forwarding; we stop capturing
      if (entry.track) entry.track.enabled = !muted;
      entry.muted = muted;
      const label = this._labels.get(entry.mid);
      if (label) label.muted = muted; // kept when republishing after a reconnection
    }
    await this._request("mute", { track_id: trackId, muted });
  }

  /**
   * Send `track` (or nothing, with null) on one of our published m-lines,
   * without renegotiating: e.g. a new camera track after the camera was
   * switched off. A reconnection republishes the current one.
   */
  replaceTrack(trackId, track) {
    return this._onPublisher(async () => {
      const entry = this.published.get(trackId);
      const transceiver = this.publisherPc?.getTransceivers().find((t) => t.mid === entry?.mid);
      if (!transceiver) throw new DigiclinicError("not_found", `not publishing ${trackId}`);
      const label = this._labels.get(entry.mid);
      if (track && (label?.muted ?? entry.muted)) track.enabled = false;
      await transceiver.sender.replaceTrack(track);
      entry.track = track;
      if (label) label.track = track;
    });
  }

  /** Offer, wait for ICE gathering, send `publish`, apply `publish_answer`. */
  async _negotiatePublisher(pc, onOffer = () => {}) {
    await pc.setLocalDescription(); // an offer, in state "stable"
    onOffer();
    await this._gathered(pc);
    let reply;
    try {
      const tracks = [...this._labels].map(([mid, { source }]) => ({ mid, source }));
      reply = await this._request("publish", { sdp: pc.localDescription.sdp, tracks });
    } catch (err) {
      if (pc.signalingState === "have-local-offer") await pc.setLocalDescription({ type: "rollback" });
      throw err;
    }
    await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
    // `tracks` lists everything we publish now
    this.published = new Map(reply.tracks.map(({ mid, track_id: trackId, source }) => {
      const label = this._labels.get(mid);
      const simulcast = (label?.encodings?.length ?? 0) > 1 && answerHasSimulcast(reply.sdp, mid);
      return [trackId, {
        trackId, mid, source, track: label?.track ?? null, muted: label?.muted ?? false, simulcast,
      }];
    }));
    await this._tuneSenders(pc);
  }

  /**
   * A server that refuses simulcast leaves one encoding, the lowest layer's:
   * send it at full resolution instead. A screen share keeps its resolution
   * (text stays readable) and drops frames when the link is short.
   */
  async _tuneSenders(pc) {
    for (const transceiver of pc.getTransceivers()) {
      const label = this._labels.get(transceiver.mid);
      if (!label || transceiver.stopped || label.kind !== "video") continue;
      try {
        if (label.encodings?.length > 1) await fixRefusedSimulcast(transceiver.sender, label.encodings);
        if (label.source === "screen_share" && !label.tuned) {
          label.tuned = true;
          const params = transceiver.sender.getParameters();
          params.degradationPreference = "maintain-resolution";
          await transceiver.sender.setParameters(params);
        }
      } catch (err) {
        console.warn("digiclinic: could not tune a sender", err);
      }
    }
  }

  _onPublisher(task, generation = this._generation) {
    const run = this._publisherChain.then(() => {
      if (generation !== this._generation) {
        throw new DigiclinicError("reconnecting", "the connection was replaced");
      }
      return task();
    });
    this._publisherChain = run.catch(() => {});
    return run;
  }
};
