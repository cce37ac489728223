// Our own media in the call: the microphone, the camera, audio-only mode,
// the screen share; publishing them when the call starts and bringing the
// server in line after a reconnection. Reads and writes the call state's
// mic/cam/share/micMuted/cameraOff/audioOnly/pausedByUs; tells the element
// through `changed()` when the controls and tiles need drawing again.

/** @typedef {import("../digiclinic-client.js").ConsultSession} ConsultSession */
/** @typedef {import("./call-state.js").CallState} CallState */
/** @typedef {import("./ui.js").WidgetUi} WidgetUi */

// 720p: published as three simulcast layers (320x180, 640x360, 1280x720), so a
// weak link or a small tile gets a small layer while a pinned tile can be sharp.
export const CAMERA_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 24 } };

export class LocalMedia {
  /**
   * @param {object} parts
   * @param {WidgetUi} parts.ui
   * @param {() => CallState} parts.call
   * @param {() => ConsultSession|null} parts.session
   * @param {() => MediaStream|null} parts.stream our capture (camera and microphone)
   * @param {() => void} parts.changed the controls and tiles need drawing again
   */
  constructor({ ui, call, session, stream, changed }) {
    this.ui = ui;
    this._call = call;
    this._session = session;
    this._stream = stream;
    this.changed = changed;
  }

  get call() { return this._call(); }

  get session() { return this._session(); }

  /** Mute or unmute; before the call (pre-call screen, lobby) this mutes the capture. @param {boolean} muted */
  async setMicMuted(muted) {
    const call = this.call;
    const track = call.mic?.track ?? this._stream()?.getAudioTracks()[0];
    if (!track) return;
    call.micMuted = muted;
    track.enabled = !muted;
    this.changed();
    this.ui.say(this.ui.t(muted ? "statusMuted" : "statusUnmuted"));
    this.ui.fire("mute-state", { muted });
    const s = this.session;
    if (call.mic?.trackId && s?.state === "active") {
      await s.mute(call.mic.trackId, muted).catch((err) => this.ui.error(err));
    }
  }

  /** Turn the camera off (the capture stops: its light goes off) or on again. @param {boolean} on */
  async setCamera(on) {
    const call = this.call;
    const s = this.session;
    if (!call.cam || s?.state !== "active") return;
    const stream = this._stream();
    if (!on) {
      call.cameraOff = true;
      const track = call.cam.track;
      call.cam.track = null;
      this.changed();
      if (call.cam.trackId) {
        await s.mute(call.cam.trackId, true).catch((err) => this.ui.error(err));
        await s.replaceTrack(call.cam.trackId, null).catch((err) => this.ui.error(err));
      }
      track?.stop();
      if (track) stream?.removeTrack(track);
      return;
    }
    let track;
    try {
      [track] = (await navigator.mediaDevices.getUserMedia({ video: CAMERA_CONSTRAINTS })).getVideoTracks();
    } catch (err) {
      this.ui.say(this.ui.t("statusMediaFailed", { reason: err.name }));
      return;
    }
    stream?.addTrack(track);
    call.cam.track = track;
    call.cameraOff = false;
    if (call.cam.trackId) {
      await s.replaceTrack(call.cam.trackId, track).catch((err) => this.ui.error(err));
      await s.mute(call.cam.trackId, false).catch((err) => this.ui.error(err));
    } else {
      await s.publish(new MediaStream([track])).catch((err) => this.ui.error(err));
      this.learnPublished();
    }
    this.changed();
  }

  /** Audio only: no video sent or received (the others are told), or video back. @param {boolean} enabled */
  async setAudioOnly(enabled) {
    const call = this.call;
    const s = this.session;
    if (s?.state !== "active" || enabled === call.audioOnly) return;
    call.audioOnly = enabled;
    this.changed();
    // the others' tiles say "Audio only" rather than "Camera off"
    s.setAudioOnly(enabled).catch(() => {});
    if (enabled) {
      call.cameraBeforeAudioOnly = !call.cameraOff || call.camWantedAtJoin;
      call.camWantedAtJoin = false;
      if (!call.cameraOff) await this.setCamera(false);
      for (const person of call.people.values()) {
        for (const entry of [person.camera, person.screen]) if (entry) await this.pause(entry.trackId, true);
      }
      this.ui.say(this.ui.t("statusAudioOnly"));
    } else {
      for (const trackId of [...call.pausedByUs]) await this.pause(trackId, false);
      if (call.cameraBeforeAudioOnly) await this.setCamera(true);
      this.ui.say(this.ui.t("statusVideoBack"));
    }
    this.changed();
    this.ui.fire("audio-only", { enabled });
  }

  /** Stop (or resume) receiving one remote video. @param {string} trackId @param {boolean} paused */
  async pause(trackId, paused) {
    if (paused) this.call.pausedByUs.add(trackId);
    else this.call.pausedByUs.delete(trackId);
    try {
      await this.session.pauseVideo(trackId, paused);
    } catch (err) {
      if (err.code !== "not_found") this.ui.error(err);
    }
  }

  /** Share the screen, or stop sharing it. */
  async toggleShare() {
    const call = this.call;
    const s = this.session;
    if (s?.state !== "active") return;
    if (call.share) {
      const { stream, trackIds } = call.share;
      call.share = null;
      stream.getTracks().forEach((track) => track.stop());
      for (const trackId of trackIds) await s.unpublish(trackId).catch(() => {});
      this.changed();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    } catch (err) {
      if (err.name !== "NotAllowedError") this.ui.say(this.ui.t("statusShareFailed", { reason: err.name }));
      return;
    }
    call.share = { stream, trackIds: [] };
    const [video] = stream.getVideoTracks();
    video.contentHint = "detail";
    video.addEventListener("ended", () => { if (this.call.share?.stream === stream) this.toggleShare(); });
    this.changed();
    try {
      const published = await s.publish(stream, { screen: true });
      if (call.share?.stream === stream) call.share.trackIds = published.map((e) => e.trackId);
      this.ui.say(this.ui.t("statusYouShare"));
    } catch (err) {
      this.ui.say(this.ui.t("statusShareFailed", { reason: err.code ?? err.name }));
      stream.getTracks().forEach((track) => track.stop());
      if (call.share?.stream === stream) call.share = null;
      this.changed();
    }
  }

  /**
   * Publish the microphone and camera as the call starts (no camera in audio-only mode).
   * @param {boolean} audioOnly
   */
  async publish(audioOnly) {
    const call = this.call;
    const s = this.session;
    const audio = call.mic?.track;
    const video = call.cam?.track;
    if (audioOnly && video) { // do not even start sending the camera
      video.stop();
      this._stream()?.removeTrack(video);
      call.cam.track = null;
      call.cameraOff = true;
      call.camWantedAtJoin = true; // leaving audio-only mode turns it on
    }
    const tracks = [audio, audioOnly ? null : video].filter(Boolean);
    if (tracks.length) {
      try {
        await s.publish(new MediaStream(tracks));
      } catch (err) {
        // lost the connection meanwhile: published when the call is restored
        if (err.code === "reconnecting" || s.state === "reconnecting") call.publishAfterReconnect = tracks;
        else this.ui.error(err);
      }
    }
    this.learnPublished();
    await this.reconcile(); // e.g. muted while publishing
  }

  /** Our track ids, from the session (they change after a reconnection). */
  learnPublished() {
    const call = this.call;
    const published = [...(this.session?.published.values() ?? [])];
    const by = (source) => published.find((entry) => entry.source === source);
    if (call.mic) call.mic.trackId = by("microphone")?.trackId ?? null;
    if (call.cam) call.cam.trackId = by("camera")?.trackId ?? null;
    if (call.share) {
      call.share.trackIds = published.filter((e) => e.source.startsWith("screen_share")).map((e) => e.trackId);
    }
  }

  /** After a reconnection: what changed locally while we were away reaches the server. */
  async reconcile() {
    const call = this.call;
    const s = this.session;
    if (s?.state !== "active") return;
    if (call.publishAfterReconnect) {
      const tracks = call.publishAfterReconnect.filter((track) => track.readyState === "live");
      call.publishAfterReconnect = null;
      if (tracks.length && !s.published.size) await s.publish(new MediaStream(tracks)).catch((err) => this.ui.error(err));
      this.learnPublished();
    }
    const entry = (trackId) => (trackId ? s.published.get(trackId) : null);
    if (call.audioOnly) await s.setAudioOnly(true).catch((err) => this.ui.error(err));
    const mic = entry(call.mic?.trackId);
    if (mic && mic.muted !== call.micMuted) await s.mute(mic.trackId, call.micMuted).catch((err) => this.ui.error(err));
    const cam = entry(call.cam?.trackId);
    if (cam && cam.muted !== call.cameraOff) await s.mute(cam.trackId, call.cameraOff).catch((err) => this.ui.error(err));
    this.changed();
  }

  /** The call ended: stop every capture (a new one next time). */
  stop() {
    this.call.share?.stream.getTracks().forEach((track) => track.stop());
    this._stream()?.getTracks().forEach((track) => track.stop());
  }
}
