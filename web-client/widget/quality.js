// The <digiclinic-consult> widget's statistics: the active speaker (audio
// energy) and each participant's connection quality (loss, jitter, round-trip
// time) from getStats, combined with the server's `quality` events (our
// downlink estimate, the layer forwarded per video, paused for bandwidth),
// and the quality badges in the header and on tiles.
// One QualityMonitor per widget: it owns its polling timers (start/stop).

import { h, replace } from "./dom.js";

/** @typedef {import("../digiclinic-client.js").ConsultSession} ConsultSession */
/** @typedef {import("./call-state.js").CallState} CallState */
/** @typedef {import("./ui.js").WidgetUi} WidgetUi */
/** @typedef {import("./stage.js").Stage} Stage */

const STATS_EVERY_MS = 2000;
// `quality` events come every ~2 s: older than this, the server's view is stale
const SERVER_QUALITY_FRESH_MS = 7000;
const LEVELS = ["good", "fair", "poor"];
const SPEAKER_EVERY_MS = 400;
// Level (0..1, linear, as RTP audioLevel; Chrome derives it from 10 ms peaks) above which
// someone speaks: -26 dBov. Room noise with noise suppression stays well below; speech peaks above.
const SPEAKING_LEVEL = 0.05;

/** good / fair / poor from packet loss (0..1), jitter (s) and round-trip time (s). */
export function qualityLevel({ loss = 0, jitter = 0, rtt = 0 }) {
  if (loss > 0.08 || jitter > 0.1 || rtt > 0.8) return "poor";
  if (loss > 0.02 || jitter > 0.03 || rtt > 0.3) return "fair";
  return "good";
}

/**
 * good / fair / poor from the video a viewer sees: frames decoded per second
 * over the last poll and freezes (libwebrtc: a frame late by 3x the usual
 * interval) started meanwhile; null when no video was received.
 */
export function videoLevel(fps, freezes = 0) {
  if (fps == null) return null;
  if (fps < 5 || freezes >= 2) return "poor";
  if (fps < 12 || freezes >= 1) return "fair";
  return "good";
}

/** The worse of two levels (null: not measured). */
export function worseLevel(a, b) {
  if (!a || !b) return a ?? b ?? null;
  return LEVELS.indexOf(a) >= LEVELS.indexOf(b) ? a : b;
}

/**
 * The level the server's view of one forwarded video implies: paused (our
 * link cannot carry even the lowest layer) is poor, a layer held down by
 * bandwidth is fair; a small layer chosen for a small tile is not a problem.
 */
export function serverLevel(track) {
  if (!track) return null;
  if (track.paused && track.reason === "bandwidth") return "poor";
  if (track.reason === "bandwidth") return "fair";
  return null;
}

export class QualityMonitor {
  /**
   * @param {object} parts
   * @param {WidgetUi} parts.ui
   * @param {() => CallState} parts.call
   * @param {() => ConsultSession|null} parts.session
   * @param {Stage} parts.stage its tiles get the badges, its speaker the outline
   * @param {HTMLElement} parts.header where our own link's badge goes
   * @param {() => boolean} parts.inCall
   */
  constructor({ ui, call, session, stage, header, inCall }) {
    this.ui = ui;
    this._call = call;
    this._session = session;
    this.stage = stage;
    this.header = header;
    this.inCall = inCall;
    /** @type {{estimate: number|null, tracks: Map<string, object>, at: number}|null} the latest `quality` event */
    this.serverQuality = null;
    /** @type {Map<string, {energy: number, duration: number}>} audio energy counters, for deltas */
    this._energy = new Map();
    /** @type {Map<string, number>} the latest audio level per participant */
    this.levels = new Map();
    /** @type {{id: string, until: number}|null} */
    this._speaker = null;
    this._speakerBusy = false;
    /** @type {ReturnType<typeof setInterval>|undefined} */
    this._statsTimer = undefined;
    /** @type {ReturnType<typeof setInterval>|undefined} */
    this._speakerTimer = undefined;
  }

  /** A new call: nothing measured yet. */
  reset() {
    this.serverQuality = null;
    this._energy = new Map();
    this.levels = new Map();
    this._speaker = null;
    this.stage.speaker = null;
  }

  /** Start polling getStats (each call restarts the timers). */
  start() {
    this.stop();
    this._statsTimer = setInterval(() => this.pollStats().catch(() => {}), STATS_EVERY_MS);
    this._speakerTimer = setInterval(() => this.pollSpeakers().catch(() => {}), SPEAKER_EVERY_MS);
  }

  stop() {
    clearInterval(this._statsTimer);
    clearInterval(this._speakerTimer);
  }

  /**
   * Active speaker: the audio energy each audio track carried since the last
   * poll (getStats `totalAudioEnergy` / `totalSamplesDuration`: the RMS of the
   * audio level over the interval, so short words are not missed between
   * polls); remote tracks from the subscriber connection, ours from the
   * publisher's `media-source`.
   */
  async pollSpeakers() {
    const s = this._session();
    const call = this._call();
    if (!this.inCall() || s?.state !== "active" || this._speakerBusy) return;
    this._speakerBusy = true;
    try {
      const levels = new Map();
      const measure = (key, who, report) => {
        const energy = report.totalAudioEnergy;
        const duration = report.totalSamplesDuration;
        if (energy == null || duration == null) return;
        const prev = this._energy.get(key);
        this._energy.set(key, { energy, duration });
        if (!prev || duration <= prev.duration) return;
        const rms = Math.sqrt(Math.max(0, energy - prev.energy) / (duration - prev.duration));
        levels.set(who, Math.max(levels.get(who) ?? 0, rms));
      };
      const byMid = new Map([...s.remoteTracks.values()].map((info) => [info.mid, info]));
      for (const report of (await s.subscriberPc?.getStats())?.values() ?? []) {
        if (report.type !== "inbound-rtp" || report.kind !== "audio") continue;
        const info = byMid.get(report.mid);
        if (info && info.source === "microphone") measure(`in:${report.id}`, info.participantId, report);
      }
      const mic = call.mic?.track;
      for (const report of (await s.publisherPc?.getStats())?.values() ?? []) {
        if (report.type === "media-source" && report.kind === "audio" && report.trackIdentifier === mic?.id) {
          measure("self", "self", report);
        }
      }
      if (call.micMuted) levels.set("self", 0);
      let loudest = null;
      let max = SPEAKING_LEVEL;
      for (const [id, level] of levels) if (level > max) { max = level; loudest = id; }
      this.levels = levels;
      const now = performance.now();
      if (loudest) this._speaker = { id: loudest, until: now + 1500 };
      const active = this._speaker && this._speaker.until > now ? this._speaker.id : null;
      if (active !== this.stage.speaker) this.stage.highlightSpeaker(active);
    } finally {
      this._speakerBusy = false;
    }
  }

  async pollStats() {
    const s = this._session();
    const call = this._call();
    if (!this.inCall() || s?.state !== "active") return;
    const byMid = new Map([...s.remoteTracks.values()].map((info) => [info.mid, info]));
    const sub = await s.subscriberPc?.getStats();
    let rtt = 0;
    const perPerson = new Map();
    for (const report of sub?.values() ?? []) {
      if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") {
        rtt = report.currentRoundTripTime ?? rtt;
      }
    }
    for (const report of sub?.values() ?? []) {
      if (report.type !== "inbound-rtp") continue;
      const info = byMid.get(report.mid);
      const person = info && call.people.get(info.participantId);
      if (!person) continue;
      const prev = person.loss.get(report.ssrc) ?? { lost: 0, received: 0 };
      const lost = Math.max(0, (report.packetsLost ?? 0) - prev.lost);
      const received = Math.max(0, (report.packetsReceived ?? 0) - prev.received);
      const agg = perPerson.get(person) ?? { lost: 0, received: 0, jitter: 0, fps: null, freezes: 0 };
      agg.lost += lost;
      agg.received += received;
      agg.jitter = Math.max(agg.jitter, report.jitter ?? 0);
      if (report.kind === "video" && info.source === "camera" && received > 0) {
        // what the viewer sees: frames decoded per second, and new freezes
        agg.fps = Math.max(0, (report.framesDecoded ?? 0) - (prev.frames ?? 0)) / (STATS_EVERY_MS / 1000);
        agg.freezes = Math.max(0, (report.freezeCount ?? 0) - (prev.freezes ?? 0));
      }
      person.loss.set(report.ssrc, {
        lost: report.packetsLost ?? 0, received: report.packetsReceived ?? 0,
        frames: report.framesDecoded ?? 0, freezes: report.freezeCount ?? 0,
      });
      perPerson.set(person, agg);
    }
    for (const [person, agg] of perPerson) {
      if (agg.received + agg.lost === 0) continue; // muted or paused: nothing to judge
      const loss = agg.lost / (agg.lost + agg.received);
      person.quality = worseLevel(
        qualityLevel({ loss, jitter: agg.jitter, rtt }), videoLevel(agg.fps, agg.freezes));
      person.metrics = { loss, jitter: agg.jitter, rtt, fps: agg.fps, freezes: agg.freezes };
    }
    // our own uplink, as the server reports it back (RTCP receiver reports)
    const pub = await s.publisherPc?.getStats();
    let selfLoss = 0;
    let selfJitter = 0;
    let selfRtt = 0;
    let sentFps = null;
    let seen = false;
    for (const report of pub?.values() ?? []) {
      if (report.type === "remote-inbound-rtp") {
        seen = true;
        selfLoss = Math.max(selfLoss, report.fractionLost ?? 0);
        selfJitter = Math.max(selfJitter, report.jitter ?? 0);
        selfRtt = Math.max(selfRtt, report.roundTripTime ?? 0);
      } else if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") {
        selfRtt = Math.max(selfRtt, report.currentRoundTripTime ?? 0);
        seen = true;
      } else if (report.type === "outbound-rtp" && report.kind === "video" && !call.cameraOff) {
        // what our camera manages to send (the browser lowers it on a thin uplink)
        sentFps = Math.max(sentFps ?? 0, report.framesPerSecond ?? 0);
      }
    }
    if (seen) {
      call.self.quality = worseLevel(
        qualityLevel({ loss: selfLoss, jitter: selfJitter, rtt: selfRtt }), videoLevel(sentFps));
      call.self.metrics = { loss: selfLoss, jitter: selfJitter, rtt: selfRtt, fps: sentFps };
    }
    this.renderAll();
  }

  renderAll() {
    for (const tile of this.stage.element.querySelectorAll(".dc-tile")) this.renderTile(/** @type {HTMLElement} */ (tile));
    this.renderHeader();
  }

  /** A `quality` event: the server's downlink estimate and what it forwards per video. */
  serverReport(msg) {
    const tracks = new Map();
    for (const track of Array.isArray(msg.tracks) ? msg.tracks : []) {
      if (typeof track?.track_id === "string") tracks.set(track.track_id, track);
    }
    this.serverQuality = { estimate: msg.estimate_bps ?? null, tracks, at: performance.now() };
    if (this.inCall()) this.renderAll();
  }

  /** The server's latest view of a remote video we receive, if fresh. */
  serverTrack(trackId) {
    const view = this.serverQuality;
    if (!trackId || !view || performance.now() - view.at > SERVER_QUALITY_FRESH_MS) return null;
    return view.tracks.get(trackId) ?? null;
  }

  _levelText(level) {
    return this.ui.t(level ? `quality${level[0].toUpperCase()}${level.slice(1)}` : "qualityUnknown");
  }

  /** {level, text} of a tile's indicator: getStats and the server's view combined. */
  qualityOf(id) {
    const call = this._call();
    if (id === "self") {
      const level = call.self.quality;
      const parts = [this._levelText(level)];
      const view = this.serverQuality;
      const estimate = view && performance.now() - view.at <= SERVER_QUALITY_FRESH_MS ? view.estimate : null;
      if (estimate > 0) parts.push(this.ui.t("qualityDownlink", { kbps: Math.round(estimate / 1000) }));
      return { level, text: parts.join(" · ") };
    }
    const person = call.people.get(id);
    const track = this.serverTrack(person?.camera?.trackId) ?? this.serverTrack(person?.screen?.trackId);
    const theirs = call.weakUplinks.has(id) || track?.publisher_weak ? "poor" : null;
    const level = worseLevel(worseLevel(person?.quality ?? null, serverLevel(track)), theirs);
    const parts = [this._levelText(level)];
    if (theirs) parts.push(this.ui.t("peerConnectionWeak", { name: person?.info.name ?? "" }));
    else if (track?.paused && track.reason === "bandwidth") parts.push(this.ui.t("videoPausedWeak"));
    else if (track && !track.paused && track.height > 0) {
      parts.push(this.ui.t("qualityReceiving", {
        res: `${track.height}p`, kbps: Math.round((track.bitrate_bps ?? 0) / 1000),
      }));
    }
    return { level, text: parts.join(" · "), layer: track?.layer ?? null };
  }

  renderHeader() {
    const { level, text } = this.qualityOf("self");
    replace(this.header, this.inCall() ? this.badge(level, text) : null);
  }

  badge(level, text) {
    return h("span", { class: "dc-quality", dataset: { level: level ?? "unknown" }, role: "img", aria: { label: text }, title: text },
      h("span", { class: "dc-bar" }), h("span", { class: "dc-bar" }), h("span", { class: "dc-bar" }));
  }

  renderTile(tile) {
    const slot = tile.querySelector(".dc-quality-slot");
    if (!slot) return;
    const { level, text, layer } = this.qualityOf(tile.dataset.participant);
    if (slot.dataset.level === (level ?? "unknown") && slot.dataset.text === text) return;
    slot.dataset.level = level ?? "unknown";
    slot.dataset.text = text;
    const badge = this.badge(level, text);
    if (layer) badge.dataset.layer = layer;
    replace(slot, badge);
  }
}
