// ConsultSession's publisher connection (our tracks; we offer): publishing,
// unpublishing, muting and replacing local tracks, one negotiation at a time.
// A mixin of ConsultSession (../digiclinic-client.js).

import { DigiclinicError } from "./protocol.js";

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
    const added = items.map((item) => ({
      ...item,
      transceiver: pc.addTransceiver(item.track ?? item.kind, {
        direction: "sendonly", streams: item.stream ? [item.stream] : [],
      }),
    }));
    const mids = [];
    try {
      await this._negotiatePublisher(pc, () => { // mids exist once the offer is set
        for (const { transceiver: { mid }, track, kind, source, stream, muted } of added) {
          if (track && muted) track.enabled = false;
          this._labels.set(mid, { source, track, kind, stream, muted: Boolean(muted) });
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
      return [trackId, {
        trackId, mid, source, track: label?.track ?? null, muted: label?.muted ?? false,
      }];
    }));
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
