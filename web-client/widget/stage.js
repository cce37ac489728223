// The call's stage: a tile per participant (video or initials, name, role,
// microphone state, quality slot, pin button), our own small self-view, the
// spotlight (a pinned camera, else a shared screen) and the notices above
// them (on hold, waiting for the others). Every remote video's render size
// is reported to the server (ConsultSession.watchRenderSize), so a small tile
// gets a small simulcast layer and a hidden one none. Drawn from the call
// state by render(); the quality badges are the QualityMonitor's.

import { h, icon, initials, replace } from "./dom.js";

/** @typedef {import("../digiclinic-client.js").ConsultSession} ConsultSession */
/** @typedef {import("./call-state.js").CallState} CallState */
/** @typedef {import("./ui.js").WidgetUi} WidgetUi */
/** @typedef {{renderTile: (tile: HTMLElement) => void}} TileQuality */

export class Stage {
  /**
   * @param {object} parts
   * @param {WidgetUi} parts.ui
   * @param {() => CallState} parts.call
   * @param {() => ConsultSession|null} parts.session
   */
  constructor({ ui, call, session }) {
    this.ui = ui;
    this._call = call;
    this._session = session;
    /** @type {TileQuality|null} draws a tile's quality badge (set by the element) */
    this.quality = null;
    /** @type {string|null} the active speaker's participant id ("self" for us) */
    this.speaker = null;
    /** @type {WeakMap<MediaStreamTrack, HTMLVideoElement>} a track's <video>, kept across renders */
    this._videos = new WeakMap();
    this.spotlight = h("div", { class: "dc-spotlight" });
    this.tiles = h("div", { class: "dc-tiles", role: "list" });
    this.alone = h("p", { class: "dc-alone dc-muted", hidden: true });
    this.onHold = h("p", { class: "dc-on-hold", hidden: true });
    this.selfView = h("div", { class: "dc-self-view", role: "list", hidden: true });
    this.element = h("div", { class: "dc-stage" }, this.onHold, this.spotlight, this.alone, this.tiles, this.selfView);
  }

  /** The texts that do not depend on who is there (after a language change too). */
  label() {
    const t = this.ui.t;
    this.tiles.setAttribute("aria-label", t("participantsLabel"));
    this.alone.textContent = t("waitingForOthers");
    this.selfView.setAttribute("aria-label", t("you"));
  }

  /** Outline the active speaker's tile. @param {string|null} id */
  highlightSpeaker(id) {
    this.speaker = id;
    for (const tile of this.element.querySelectorAll('.dc-tile[data-kind="camera"]')) {
      tile.classList.toggle("dc-speaking", /** @type {HTMLElement} */ (tile).dataset.participant === id);
    }
  }

  /** (Re)build every tile and the spotlight; cheap enough for a consult's few people. */
  render() {
    if (!this.element.isConnected) return;
    const t = this.ui.t;
    const call = this._call();
    const session = this._session();
    const me = session?.joined?.participant;
    const reconnecting = session?.state === "reconnecting";
    const root = /** @type {ShadowRoot} */ (this.element.getRootNode());
    const focusedPin = /** @type {HTMLElement|null} */ (root.activeElement)?.dataset?.pin ?? null; // keep keyboard focus
    const tiles = [];
    const selfVideo = !call.cameraOff && call.cam?.track ? call.cam.track : null;
    // alone, our own picture is the stage; with others, a small self-view below theirs
    const selfTile = this.tile({
      id: "self", name: t("youName", { name: me?.name ?? "" }), initialsOf: me?.name, role: me?.role,
      video: selfVideo, mirror: true,
      micOff: call.micMuted, note: call.cameraOff ? (call.audioOnly ? t("videoPausedAudioOnly") : t("cameraIsOff")) : null,
    });

    const screens = [];
    if (call.share) {
      screens.push({ id: "self-screen", name: t("screenOf", { name: t("you") }), video: call.share.stream.getVideoTracks()[0] });
    }
    let pinnedTile = null;
    const held = []; // names of the people who put the consultation on hold
    for (const [id, person] of call.people) {
      const { info } = person;
      const producers = session.participants.get(id)?.producers ?? info.producers ?? [];
      const camMuted = producers.find((p) => p.source === "camera")?.muted;
      const micMuted = producers.find((p) => p.source === "microphone")?.muted;
      const cameraId = person.camera?.trackId;
      const camera = this.videoState(cameraId);
      let note = camera.note;
      const audioOnly = session.participants.get(id)?.audio_only ?? info.audio_only;
      const onHold = session.participants.get(id)?.on_hold ?? info.on_hold;
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
      const weak = !note && person.camera && call.weakUplinks.has(id);
      if (weak) note = t("peerConnectionWeak", { name: info.name });
      const dimmed = camera.serverPaused || weak;
      // paused by the server: keep the last picture (and its size report) under the message
      const video = person.camera && (!note || dimmed) ? person.camera.track : null;
      const pinned = call.pinned === id;
      const tile = this.tile({
        id, name: info.name, role: info.role, video, micOff: micMuted, note, trackId: cameraId,
        paused: dimmed, pinnable: true, pinned, listed: !pinned,
      });
      if (pinned) pinnedTile = tile;
      else tiles.push(tile);
      if (person.screen) {
        const sid = person.screen.trackId;
        const screen = this.videoState(sid);
        screens.unshift({
          id: `${id}-screen`, name: t("screenOf", { name: info.name }), trackId: sid,
          video: screen.note && !screen.serverPaused ? null : person.screen.track,
          note: screen.note, paused: screen.serverPaused,
        });
      }
    }
    // a pinned camera takes the spotlight; a screen share then joins the strip
    let spotlight = pinnedTile;
    if (pinnedTile) tiles.push(...screens.map((s) => this.tile({ ...s, screen: true, listed: true })));
    else if (screens[0]) spotlight = this.tile({ ...screens[0], screen: true });
    // with a spotlight (a screen, a pinned camera) the strip is already small: we join it
    const selfApart = call.people.size > 0 && !spotlight;
    if (!selfApart) tiles.unshift(selfTile);
    replace(this.selfView, selfApart ? selfTile : null);
    this.selfView.hidden = !selfApart;
    replace(this.tiles, tiles);
    this.alone.hidden = call.people.size > 0 || reconnecting;
    this.onHold.hidden = held.length === 0;
    this.onHold.textContent = held.length ? t("onHoldBanner", { name: held.join(", ") }) : "";
    replace(this.spotlight, spotlight);
    this.element.classList.toggle("dc-has-screen", Boolean(spotlight));
    this.element.classList.toggle("dc-has-pin", Boolean(pinnedTile));
    this.tiles.dataset.count = String(tiles.length);
    this.highlightSpeaker(this.speaker);
    if (focusedPin) {
      /** @type {HTMLElement|null} */ (root.querySelector(`button[data-pin="${CSS.escape(focusedPin)}"]`))?.focus();
    }
    session?.refreshRenderSizes?.(); // videos no longer shown report 0x0
  }

  /** Why a remote video is not shown: {note, serverPaused}. */
  videoState(trackId) {
    const call = this._call();
    if (!trackId) return { note: null, serverPaused: false };
    const reason = call.pausedByServer.get(trackId);
    if (reason) {
      return { note: this.ui.t(reason === "bandwidth" ? "videoPausedWeak" : "videoPausedBandwidth"), serverPaused: true };
    }
    if (call.pausedByUs.has(trackId)) return { note: this.ui.t("videoPausedAudioOnly"), serverPaused: false };
    return { note: null, serverPaused: false };
  }

  /** Pin (or unpin) a participant's camera: shown large, and favoured by the server. */
  togglePin(id) {
    const call = this._call();
    const person = call.people.get(id);
    if (!person) return;
    call.pinned = call.pinned === id ? null : id;
    this.render();
    this.ui.say(this.ui.t(call.pinned ? "statusPinned" : "statusUnpinned", { name: person.info.name }));
    this.ui.fire("pin", { participantId: id, pinned: call.pinned === id });
  }

  /**
   * One tile: a video (kept across renders) or initials, a caption, a pin button, a quality slot.
   * @param {object} spec
   * @param {string} spec.id participant id ("self", "<id>-screen" for a screen)
   * @param {string} spec.name
   * @param {string} [spec.initialsOf]
   * @param {string} [spec.role]
   * @param {MediaStreamTrack|null} [spec.video]
   * @param {boolean} [spec.mirror]
   * @param {boolean} [spec.micOff]
   * @param {string|null} [spec.note] why there is no picture, or what is wrong with it
   * @param {boolean} [spec.screen]
   * @param {string|null} [spec.trackId] the remote video's track id (its render size is reported)
   * @param {boolean} [spec.paused] dimmed: the last picture under the note
   * @param {boolean} [spec.pinnable]
   * @param {boolean} [spec.pinned]
   * @param {boolean} [spec.listed] a list item of the tiles' list
   */
  tile({
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
        this._session()?.watchRenderSize?.(trackId, el, { pinned });
      }
    } else {
      figure.append(h("div", { class: "dc-avatar", aria: { hidden: "true" } }, initials(initialsOf)));
    }
    if (note) figure.append(h("p", { class: "dc-note" }, note));
    const caption = h("figcaption", { class: "dc-caption" },
      micOff ? h("span", { class: "dc-mic-off", role: "img", aria: { label: this.ui.t("micIsOff") } }, icon("micOff")) : null,
      h("span", { class: "dc-name" }, name),
      role && !screen ? h("span", { class: "dc-role" }, this.ui.role(role)) : null);
    figure.append(caption);
    if (pinnable) {
      // a real button (keyboard, screen readers); a click anywhere else on the tile does the same
      figure.append(h("button", {
        type: "button", class: "dc-pin", dataset: { pin: id },
        aria: { pressed: String(pinned), label: this.ui.t(pinned ? "unpinLabel" : "pinLabel", { name }) },
        title: this.ui.t(pinned ? "unpinLabel" : "pinLabel", { name }),
        onclick: () => this.togglePin(id),
      }, icon("pin")));
      figure.addEventListener("click", (event) => {
        if (!/** @type {HTMLElement} */ (event.target).closest?.("button")) this.togglePin(id);
      });
    }
    if (!screen) {
      const slot = h("span", { class: "dc-quality-slot" });
      figure.append(slot);
      this.quality?.renderTile(figure);
    }
    return figure;
  }
}
