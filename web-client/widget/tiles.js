// The <digiclinic-consult> widget's stage: a tile per participant (video or
// initials, name, role, microphone state, quality slot) and the spotlight of
// a shared screen. A mixin of the element (digiclinic-consult.js).

import { h, icon, initials, replace } from "./dom.js";

export const Tiles = (Base) => class Tiles extends Base {
  /** (Re)build every tile and the spotlight; cheap enough for a consult's few people. */
  _renderTiles() {
    if (this.screen !== "call" || !this._tiles) return;
    const t = this.t;
    const me = this.session?.joined?.participant;
    const reconnecting = this.session?.state === "reconnecting";
    const tiles = [];
    const selfVideo = !this.cameraOff && this.cam?.track ? this.cam.track : null;
    tiles.push(this._tile({
      id: "self", name: t("youName", { name: me?.name ?? "" }), initialsOf: me?.name, role: me?.role,
      video: selfVideo, mirror: true,
      micOff: this.micMuted, note: this.cameraOff ? (this.audioOnly ? t("videoPausedAudioOnly") : t("cameraIsOff")) : null,
    }));
    const screens = [];
    if (this.share) {
      screens.push({ id: "self-screen", name: t("screenOf", { name: t("you") }), video: this.share.stream.getVideoTracks()[0] });
    }
    for (const [id, person] of this.people) {
      const { info } = person;
      const producers = this.session.participants.get(id)?.producers ?? info.producers ?? [];
      const camMuted = producers.find((p) => p.source === "camera")?.muted;
      const micMuted = producers.find((p) => p.source === "microphone")?.muted;
      const cameraId = person.camera?.trackId;
      let note = null;
      if (cameraId && this.pausedByServer.has(cameraId)) note = t("videoPausedBandwidth");
      else if (cameraId && this.pausedByUs.has(cameraId)) note = t("videoPausedAudioOnly");
      else if (camMuted || !person.camera) note = producers.some((p) => p.source === "camera") ? t("cameraIsOff") : null;
      const video = person.camera && !note ? person.camera.track : null;
      tiles.push(this._tile({ id, name: info.name, role: info.role, video, micOff: micMuted, note }));
      if (person.screen) {
        const sid = person.screen.trackId;
        const paused = this.pausedByUs.has(sid) || this.pausedByServer.has(sid);
        screens.unshift({
          id: `${id}-screen`, name: t("screenOf", { name: info.name }), video: paused ? null : person.screen.track,
          note: paused ? (this.pausedByServer.has(sid) ? t("videoPausedBandwidth") : t("videoPausedAudioOnly")) : null,
        });
      }
    }
    replace(this._tiles, tiles);
    this._alone.hidden = this.people.size > 0 || reconnecting;
    const spotlight = screens[0];
    replace(this._spotlight, spotlight ? this._tile({ ...spotlight, screen: true }) : null);
    this._stage.classList.toggle("dc-has-screen", Boolean(spotlight));
    this._tiles.dataset.count = String(tiles.length);
    for (const tile of this._tiles.querySelectorAll(".dc-tile")) {
      tile.classList.toggle("dc-speaking", tile.dataset.participant === this._activeSpeaker);
    }
  }

  _updateTile() { this._renderTiles(); }

  _tile({ id, name, initialsOf = name, role, video, mirror = false, micOff = false, note = null, screen = false }) {
    const figure = h("figure", {
      class: screen ? "dc-tile dc-screen" : "dc-tile", role: screen ? null : "listitem",
      dataset: { participant: screen ? id.replace(/-screen$/, "") : id, kind: screen ? "screen" : "camera" },
    });
    if (video) {
      // keep the <video> of a track across re-renders (no flicker, playback continues)
      this._videos ??= new WeakMap();
      let el = this._videos.get(video);
      if (!el) {
        el = h("video", { class: "dc-video", autoplay: true, playsInline: true, muted: true });
        el.srcObject = new MediaStream([video]);
        this._videos.set(video, el);
      }
      el.dataset.trackKind = screen ? "screen" : "camera";
      el.classList.toggle("dc-mirror", mirror);
      figure.append(el);
      el.play?.().catch(() => {});
    } else {
      figure.append(h("div", { class: "dc-avatar", aria: { hidden: "true" } }, initials(initialsOf)));
    }
    if (note) figure.append(h("p", { class: "dc-note" }, note));
    const caption = h("figcaption", { class: "dc-caption" },
      micOff ? h("span", { class: "dc-mic-off", role: "img", aria: { label: this.t("micIsOff") } }, icon("micOff")) : null,
      h("span", { class: "dc-name" }, name),
      role && !screen ? h("span", { class: "dc-role" }, this._role(role)) : null);
    figure.append(caption);
    if (!screen) {
      const slot = h("span", { class: "dc-quality-slot" });
      figure.append(slot);
      this._renderQuality(figure);
    }
    return figure;
  }
};
