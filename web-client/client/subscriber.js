// ConsultSession's subscriber connection (everyone else's tracks; the server
// offers): answering `subscriber_offer` and reporting remote tracks as they
// come and go. A mixin of ConsultSession (../digiclinic-client.js).

const isScreen = (source) => source.startsWith("screen_share");

export const Receiving = (Base) => class Receiving extends Base {
  /** Answer a `subscriber_offer`: set it, answer, wait for ICE gathering, send. */
  async _answerSubscriber(offer) {
    if (this.state !== "active") return;
    if (!this.subscriberPc) {
      this.subscriberPc = this._createPc("subscriber");
      this.subscriberPc.ontrack = (event) => this._onRemoteTrack(event);
    }
    const pc = this.subscriberPc;
    const previous = this._offerMeta;
    this._offerMeta = new Map(offer.tracks.map((meta) => [meta.mid, meta]));
    for (const [mid, meta] of previous) {
      if (!this._offerMeta.has(mid)) this._removeRemoteTrack(meta.track_id);
    }
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp }); // fires `track`
    await pc.setLocalDescription(); // the answer
    await this._gathered(pc);
    await this._request("subscriber_answer", { sdp: pc.localDescription.sdp });
  }

  _onRemoteTrack({ track, transceiver }) {
    const meta = this._offerMeta.get(transceiver.mid);
    if (!meta) return; // not in the offer's `tracks`: nothing to label it with
    const key = `${meta.participant_id}/${isScreen(meta.source) ? "screen" : "camera"}`;
    let stream = this._streams.get(key);
    if (!stream) this._streams.set(key, (stream = new MediaStream()));
    stream.addTrack(track);
    const info = {
      track, stream, trackId: meta.track_id, participantId: meta.participant_id,
      kind: meta.kind, source: meta.source, mid: transceiver.mid,
    };
    this.remoteTracks.set(meta.track_id, info);
    this._emit("track", info);
  }

  _removeRemoteTrack(trackId) {
    this._renderSizes?.unwatch(trackId);
    this._trackSettings?.delete(trackId);
    const info = this.remoteTracks.get(trackId);
    if (!info) return;
    this.remoteTracks.delete(trackId);
    info.stream.removeTrack(info.track);
    this._emit("track-removed", info);
  }
};
