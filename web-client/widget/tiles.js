// The <digiclinic-consult> widget's stage: a tile per participant (video or
// initials, name, role, microphone state, quality slot, pin button) and the
// spotlight: a pinned participant, else a shared screen. Every remote video's
// render size is reported to the server (ConsultSession.watchRenderSize), so
// a small tile gets a small simulcast layer and a hidden one none.
// A mixin of the element (digiclinic-consult.js).

import { h, icon, initials, replace } from "./dom.js";

export const Tiles = (Base) => class Tiles extends Base {
  /** (Re)build every tile and the spotlight; cheap enough for a consult's few people. */
  _renderTiles() {
    if (this.screen !== "call" || !this._tiles) return;
    const t = this.t;
    const me = this.session?.joined?.participant;
    const reconnecting = this.session?.state === "reconnecting";
    const focusedPin = this.shadowRoot.activeElement?.dataset?.pin ?? null; // keep keyboard focus
    const tiles = [];
    const selfVideo = !this.cameraOff && this.cam?.track ? this.cam.track : null;
    // alone, our own picture is the stage; with others, a small self-view below theirs
    const selfTile = this._tile({
      id: "self", name: t("youName", { name: me?.name ?? "" }), initialsOf: me?.name, role: me?.role,
      video: selfVideo, mirror: true,
      micOff: this.micMuted, note: this.cameraOff ? (this.audioOnly ? t("videoPausedAudioOnly") : t("cameraIsOff")) : null,
    });

    const screens = [];
    if (this.share) {
      screens.push({ id: "self-screen", name: t("screenOf", { name: t("you") }), video: this.share.stream.getVideoTracks()[0] });
    }
    let pinnedTile = null;
    const held = []; // names of the people who put the consultation on hold
    for (const [id, person] of this.people) {
      const { info } = person;
      const producers = this.session.participants.get(id)?.producers ?? info.producers ?? [];
      const camMuted = producers.find((p) => p.source === "camera")?.muted;
      const micMuted = producers.find((p) => p.source === "microphone")?.muted;
      const cameraId = person.camera?.trackId;
      const camera = this._videoState(cameraId);
      let note = camera.note;
      const audioOnly = this.session.participants.get(id)?.audio_only ?? info.audio_only;
      const onHold = this.session.participants.get(id)?.on_hold ?? info.on_hold;
      if (onHold) { // a specialist busy in another room: not a broken camera, not gone
        note = t("onHoldNote");
        held.push(info.name);
      }
      if (!note && (camMuted || !person.camera)) {
        // their choice, said so: "Audio only" rather than a camera that seems broken
        if (audioOnly) note = t("audioOnly");
        else note = producers.some((p) => p.source === "camera") ? t("cameraIsOff") : null;
      }
      // their own uplink is weak: the picture is stale, say so and dim it
      const weak = !note && person.camera && this.weakUplinks.has(id);
      if (weak) note = t("peerConnectionWeak", { name: info.name });
      const dimmed = camera.serverPaused || weak;
      // paused by the server: keep the last picture (and its size report) under the message
      const video = person.camera && (!note || dimmed) ? person.camera.track : null;
      const pinned = this.pinned === id;
      const tile = this._tile({
        id, name: info.name, role: info.role, video, micOff: micMuted, note, trackId: cameraId,
        paused: dimmed, pinnable: true, pinned, listed: !pinned,
      });
      if (pinned) pinnedTile = tile;
      else tiles.push(tile);
      if (person.screen) {
        const sid = person.screen.trackId;
        const screen = this._videoState(sid);
        screens.unshift({
          id: `${id}-screen`, name: t("screenOf", { name: info.name }), trackId: sid,
          video: screen.note && !screen.serverPaused ? null : person.screen.track,
          note: screen.note, paused: screen.serverPaused,
        });
      }
    }
    // a pinned camera takes the spotlight; a screen share then joins the strip
    let spotlight = pinnedTile;
    if (pinnedTile) tiles.push(...screens.map((s) => this._tile({ ...s, screen: true, listed: true })));
    else if (screens[0]) spotlight = this._tile({ ...screens[0], screen: true });
    // with a spotlight (a screen, a pinned camera) the strip is already small: we join it
    const selfApart = this.people.size > 0 && !spotlight;
    if (!selfApart) tiles.unshift(selfTile);
    replace(this._selfView, selfApart ? selfTile : null);
    this._selfView.hidden = !selfApart;
    replace(this._tiles, tiles);
    this._alone.hidden = this.people.size > 0 || reconnecting;
    this._onHold.hidden = held.length === 0;
    this._onHold.textContent = held.length ? t("onHoldBanner", { name: held.join(", ") }) : "";
    replace(this._spotlight, spotlight);
    this._stage.classList.toggle("dc-has-screen", Boolean(spotlight));
    this._stage.classList.toggle("dc-has-pin", Boolean(pinnedTile));
    this._tiles.dataset.count = String(tiles.length);
    for (const tile of this._stage.querySelectorAll('.dc-tile[data-kind="camera"]')) {
      tile.classList.toggle("dc-speaking", tile.dataset.participant === this._activeSpeaker);
    }
    if (focusedPin) this.shadowRoot.querySelector(`button[data-pin="${CSS.escape(focusedPin)}"]`)?.focus();
    this.session?.refreshRenderSizes?.(); // videos no longer shown report 0x0
  }

  /** Why a remote video is not shown: {note, serverPaused}. */
  _videoState(trackId) {
    if (!trackId) return { note: null, serverPaused: false };
    const reason = this.pausedByServer.get(trackId);
    if (reason) {
      return { note: this.t(reason === "bandwidth" ? "videoPausedWeak" : "videoPausedBandwidth"), serverPaused: true };
    }
    if (this.pausedByUs.has(trackId)) return { note: this.t("videoPausedAudioOnly"), serverPaused: false };
    return { note: null, serverPaused: false };
  }

  _updateTile() { this._renderTiles(); }

  /** Pin (or unpin) a participant's camera: shown large, and favoured by the server. */
  _togglePin(id) {
    const person = this.people.get(id);
    if (!person) return;
    this.pinned = this.pinned === id ? null : id;
    this._renderTiles();
    this._say(this.t(this.pinned ? "statusPinned" : "statusUnpinned", { name: person.info.name }));
    this._fire("pin", { participantId: id, pinned: this.pinned === id });
  }

  _tile({
    id, name, initialsOf = name, role, video, mirror = false, micOff = false, note = null, screen = false,
    trackId = null, paused = false, pinnable = false, pinned = false, listed = true,
  }) {
    const classes = ["dc-tile", screen && "dc-screen", paused && "dc-paused", pinned && "dc-pinned", pinnable && "dc-pinnable"];
    const figure = h("figure", {
      class: classes.filter(Boolean).join(" "), role: listed ? "listitem" : null,
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
      if (trackId) {
        el.dataset.trackId = trackId;
        this.session?.watchRenderSize?.(trackId, el, { pinned });
      }
    } else {
      figure.append(h("div", { class: "dc-avatar", aria: { hidden: "true" } }, initials(initialsOf)));
    }
    if (note) figure.append(h("p", { class: "dc-note" }, note));
    const caption = h("figcaption", { class: "dc-caption" },
      micOff ? h("span", { class: "dc-mic-off", role: "img", aria: { label: this.t("micIsOff") } }, icon("micOff")) : null,
      h("span", { class: "dc-name" }, name),
      role && !screen ? h("span", { class: "dc-role" }, this._role(role)) : null);
    figure.append(caption);
    if (pinnable) {
      // a real button (keyboard, screen readers); a click anywhere else on the tile does the same
      figure.append(h("button", {
        type: "button", class: "dc-pin", dataset: { pin: id },
        aria: { pressed: String(pinned), label: this.t(pinned ? "unpinLabel" : "pinLabel", { name }) },
        title: this.t(pinned ? "unpinLabel" : "pinLabel", { name }),
        onclick: () => this._togglePin(id),
      }, icon("pin")));
      figure.addEventListener("click", (event) => {
        if (!event.target.closest?.("button")) this._togglePin(id);
      });
    }
    if (!screen) {
      const slot = h("span", { class: "dc-quality-slot" });
      figure.append(slot);
      this._renderQuality(figure);
    }
    return figure;
  }
};
