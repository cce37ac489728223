// The <digiclinic-consult> widget's local controls: microphone, camera,
// audio-only mode, screen sharing, and the call's control bar that drives
// them. A mixin of the element (digiclinic-consult.js).

import { h, icon, replace } from "./dom.js";

// 720p: published as three simulcast layers (320x180, 640x360, 1280x720), so a
// weak link or a small tile gets a small layer while a pinned tile can be sharp.
export const CAMERA_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 24 } };

export const Controls = (Base) => class Controls extends Base {
  async _setMicMuted(muted) {
    // before the call (pre-call screen, lobby) this mutes the capture; publishing follows it
    const track = this.mic?.track ?? this.localStream?.getAudioTracks()[0];
    if (!track) return;
    this.micMuted = muted;
    track.enabled = !muted;
    this._updateControls();
    this._updateTile("self");
    this._say(this.t(muted ? "statusMuted" : "statusUnmuted"));
    this._fire("mute-state", { muted });
    if (this.mic?.trackId && this.session?.state === "active") {
      await this.session.mute(this.mic.trackId, muted).catch((err) => this._error(err));
    }
  }

  async _setCamera(on) {
    if (!this.cam || this.session?.state !== "active") return;
    const s = this.session;
    if (!on) {
      this.cameraOff = true;
      const track = this.cam.track;
      this.cam.track = null;
      this._updateControls();
      this._renderTiles();
      if (this.cam.trackId) {
        await s.mute(this.cam.trackId, true).catch((err) => this._error(err));
        await s.replaceTrack(this.cam.trackId, null).catch((err) => this._error(err));
      }
      track?.stop(); // the camera light goes off
      if (track) this.localStream.removeTrack(track);
      return;
    }
    let track;
    try {
      [track] = (await navigator.mediaDevices.getUserMedia({ video: CAMERA_CONSTRAINTS })).getVideoTracks();
    } catch (err) {
      this._say(this.t("statusMediaFailed", { reason: err.name }));
      return;
    }
    this.localStream.addTrack(track);
    this.cam.track = track;
    this.cameraOff = false;
    if (this.cam.trackId) {
      await s.replaceTrack(this.cam.trackId, track).catch((err) => this._error(err));
      await s.mute(this.cam.trackId, false).catch((err) => this._error(err));
    } else {
      await s.publish(new MediaStream([track])).catch((err) => this._error(err));
      this._learnPublished();
    }
    this._updateControls();
    this._renderTiles();
  }

  async _setAudioOnly(enabled) {
    if (this.session?.state !== "active" || enabled === this.audioOnly) return;
    this.audioOnly = enabled;
    this._updateControls();
    // the others' tiles say "Audio only" rather than "Camera off"
    this.session.setAudioOnly(enabled).catch(() => {});
    if (enabled) {
      this._cameraBeforeAudioOnly = !this.cameraOff || this._camWantedAtJoin;
      this._camWantedAtJoin = false;
      if (!this.cameraOff) await this._setCamera(false);
      for (const person of this.people.values()) {
        for (const entry of [person.camera, person.screen]) if (entry) await this._pause(entry.trackId, true);
      }
      this._say(this.t("statusAudioOnly"));
    } else {
      for (const trackId of [...this.pausedByUs]) await this._pause(trackId, false);
      if (this._cameraBeforeAudioOnly) await this._setCamera(true);
      this._say(this.t("statusVideoBack"));
    }
    this._renderTiles();
    this._fire("audio-only", { enabled });
  }

  async _pause(trackId, paused) {
    if (paused) this.pausedByUs.add(trackId);
    else this.pausedByUs.delete(trackId);
    try {
      await this.session.pauseVideo(trackId, paused);
    } catch (err) {
      if (err.code !== "not_found") this._error(err);
    }
  }

  async _toggleShare() {
    const s = this.session;
    if (s?.state !== "active") return;
    if (this.share) {
      const { stream, trackIds } = this.share;
      this.share = null;
      stream.getTracks().forEach((track) => track.stop());
      for (const trackId of trackIds) await s.unpublish(trackId).catch(() => {});
      this._updateControls();
      this._renderTiles();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    } catch (err) {
      if (err.name !== "NotAllowedError") this._say(this.t("statusShareFailed", { reason: err.name }));
      return;
    }
    this.share = { stream, trackIds: [] };
    const [video] = stream.getVideoTracks();
    video.contentHint = "detail";
    video.addEventListener("ended", () => { if (this.share?.stream === stream) this._toggleShare(); });
    this._updateControls();
    this._renderTiles();
    try {
      const published = await s.publish(stream, { screen: true });
      if (this.share?.stream === stream) this.share.trackIds = published.map((e) => e.trackId);
      this._say(this.t("statusYouShare"));
    } catch (err) {
      this._say(this.t("statusShareFailed", { reason: err.code ?? err.name }));
      stream.getTracks().forEach((track) => track.stop());
      if (this.share?.stream === stream) this.share = null;
      this._updateControls();
      this._renderTiles();
    }
  }

  _buildControls() {
    const button = (action, onclick) => h("button", {
      type: "button", class: "dc-button dc-control", dataset: { action }, onclick,
    });
    this._buttons = {
      mic: button("mic", () => this._setMicMuted(!this.micMuted)),
      camera: button("camera", () => this._setCamera(this.cameraOff)),
      share: button("share", () => this._toggleShare()),
      audioOnly: button("audio-only", () => this._setAudioOnly(!this.audioOnly)),
      chat: button("chat", () => this._toggleChat()),
      leave: button("leave", () => this.leave()),
    };
    this._buttons.leave.classList.add("dc-danger");
    this._buttons.chat.setAttribute("aria-controls", "dc-chat");
    replace(this._controls, ...Object.values(this._buttons).slice(0, -1), this._recording.control,
      this._buttons.leave);
    this._recording.render();
    this._updateControls();
  }

  _updateControls() {
    const b = this._buttons;
    if (!b || this.screen !== "call") return;
    const t = this.t;
    const active = this.session?.state === "active";
    const set = (btn, iconName, text, label, pressed = null, disabled = false) => {
      replace(btn, icon(iconName), h("span", { class: "dc-label" }, text));
      btn.setAttribute("aria-label", label);
      if (pressed === null) btn.removeAttribute("aria-pressed");
      else btn.setAttribute("aria-pressed", String(pressed));
      btn.disabled = disabled;
    };
    set(b.mic, this.micMuted ? "micOff" : "mic", t(this.micMuted ? "unmute" : "mute"),
      t(this.micMuted ? "unmuteLabel" : "muteLabel"), this.micMuted, !this.mic || !active);
    set(b.camera, this.cameraOff ? "cameraOff" : "camera", t(this.cameraOff ? "cameraOn" : "cameraOff"),
      t(this.cameraOff ? "cameraOnLabel" : "cameraOffLabel"), this.cameraOff, !this.cam || !active || this.audioOnly);
    const canShare = Boolean(navigator.mediaDevices?.getDisplayMedia) && this.session?.joined?.participant.grants?.publish;
    set(b.share, "screen", t(this.share ? "stopShare" : "share"), t(this.share ? "stopShareLabel" : "shareLabel"),
      Boolean(this.share), !canShare || !active);
    set(b.audioOnly, this.audioOnly ? "video" : "audio", t(this.audioOnly ? "videoBack" : "audioOnly"),
      t(this.audioOnly ? "videoBackLabel" : "audioOnlyLabel"), this.audioOnly, !active);
    set(b.chat, "chat", t("chat"), t(this.chatOpen ? "chatHide" : "chatLabel"));
    b.chat.setAttribute("aria-expanded", String(this.chatOpen));
    if (this.unread && !this.chatOpen) {
      b.chat.append(h("span", { class: "dc-badge" }, String(this.unread)));
      b.chat.setAttribute("aria-label", `${t("chatLabel")} (${t("chatUnread", { count: this.unread })})`);
    }
    set(b.leave, "leave", t("leave"), t("leaveLabel"));
  }
};
