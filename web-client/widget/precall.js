// Pre-call check: camera and microphone preview with a live level meter,
// the connection to the digiclinic server (WebSocket ping round trips), the
// network path (ICE candidates a throwaway RTCPeerConnection gathers), a
// download throughput estimate (timing the widget's own probe.bin), and a
// plain-language verdict. Only the digiclinic server is contacted.

import { websocketUrl } from "../digiclinic-client.js";
import { h, icon, replace } from "./dom.js";

/** Thresholds of the verdict: below this throughput or above this RTT, audio only. */
export const MIN_VIDEO_KBPS = 300;
export const MAX_VIDEO_RTT_MS = 600;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : null;
};

/**
 * Open a WebSocket to the server, send `count` protocol `ping`s one after
 * another and time their `pong`s. Resolves to {rtts, median} (ms); rejects
 * when the server cannot be reached.
 */
export function measureRtt(url, { count = 5, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(websocketUrl(url));
    const rtts = [];
    let sentAt = 0;
    const timer = setTimeout(() => finish(new Error("no answer from the server")), timeout);
    const finish = (error) => {
      clearTimeout(timer);
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000);
      if (error && rtts.length === 0) reject(error);
      else resolve({ rtts, median: median(rtts) });
    };
    const ping = () => {
      sentAt = performance.now();
      ws.send(JSON.stringify({ type: "ping", id: `precall-${rtts.length}` }));
    };
    ws.onopen = ping;
    ws.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      if (msg.type !== "pong") return;
      rtts.push(performance.now() - sentAt);
      if (rtts.length >= count) finish();
      else ping();
    };
    ws.onerror = () => finish(new Error("cannot connect to the server"));
    ws.onclose = () => finish(new Error("the server closed the connection"));
  });
}

/**
 * Gather ICE candidates with a throwaway RTCPeerConnection (one data
 * channel, never connected) and count them by type: host (a direct path
 * is possible), srflx (STUN), relay (TURN reachable).
 */
export async function gatherCandidates(iceServers = [], { timeout = 4000 } = {}) {
  const pc = new RTCPeerConnection({ iceServers });
  const counts = { host: 0, srflx: 0, prflx: 0, relay: 0 };
  try {
    pc.createDataChannel("precall-probe");
    const done = new Promise((resolve) => {
      const timer = setTimeout(resolve, timeout);
      pc.onicecandidate = ({ candidate }) => {
        if (!candidate) { clearTimeout(timer); resolve(); return; }
        const type = candidate.type ?? / typ (\w+)/.exec(candidate.candidate)?.[1];
        if (type in counts) counts[type] += 1;
      };
    });
    await pc.setLocalDescription(await pc.createOffer());
    await done;
  } finally {
    pc.close();
  }
  return counts;
}

/**
 * Download `url` (the widget's probe.bin, ~256 KB) once, bypassing caches,
 * and return {bytes, ms, kbps}.
 */
export async function measureThroughput(url, { timeout = 15000 } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  try {
    const probe = new URL(url);
    probe.searchParams.set("nocache", `${Date.now()}-${Math.random().toString(36).slice(2)}`);
    const started = performance.now();
    const response = await fetch(probe, {
      cache: "no-store", credentials: "omit", signal: controller.signal,
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const bytes = (await response.arrayBuffer()).byteLength;
    const ms = Math.max(1, performance.now() - started);
    return { bytes, ms, kbps: Math.round((bytes * 8) / ms) }; // bits per ms = kbit/s
  } finally {
    clearTimeout(timer);
  }
}

/** "video", "audio" (audio only recommended) or "failed" (server unreachable). */
export function verdict({ rttMs, kbps, serverOk = true }) {
  if (!serverOk) return "failed";
  if ((kbps != null && kbps < MIN_VIDEO_KBPS) || (rttMs != null && rttMs > MAX_VIDEO_RTT_MS)) {
    return "audio";
  }
  return "video";
}

/**
 * The level of an audio track, 0..1, from a WebAudio AnalyserNode (RMS of
 * the waveform, -60..0 dBFS mapped to 0..1). `read()` returns the latest.
 */
export class LevelMeter {
  constructor(track, audioContext) {
    this.context = audioContext;
    this.source = audioContext.createMediaStreamSource(new MediaStream([track]));
    this.analyser = audioContext.createAnalyser();
    this.analyser.fftSize = 1024;
    this.buffer = new Float32Array(this.analyser.fftSize);
    this.source.connect(this.analyser);
  }

  read() {
    this.analyser.getFloatTimeDomainData(this.buffer);
    let sum = 0;
    for (const x of this.buffer) sum += x * x;
    const rms = Math.sqrt(sum / this.buffer.length);
    const db = 20 * Math.log10(rms || 1e-8);
    return Math.min(1, Math.max(0, (db + 60) / 60));
  }

  stop() {
    this.source.disconnect();
  }
}

/**
 * The pre-call screen. `onJoin({audioOnly})` is called when the user joins
 * (the Join buttons work at once: the check is skippable).
 */
export class PreCallCheck {
  /**
   * @param {object} options
   * @param {import("../i18n/catalogue.js").Translate} options.t
   * @param {string} [options.language]
   * @param {MediaStream|null} options.stream our capture
   * @param {string|null} options.mediaError why the camera or microphone could not be opened
   * @param {string} options.serverUrl the signalling WebSocket (pinged)
   * @param {string} options.probeUrl the file whose download measures the throughput
   * @param {RTCIceServer[]} [options.iceServers]
   * @param {AudioContext|null} options.audioContext for the microphone level
   * @param {(choice: {audioOnly: boolean}) => void} options.onJoin
   */
  constructor({ t, language = "en", stream, mediaError, serverUrl, probeUrl, iceServers = [], audioContext, onJoin }) {
    this.t = t;
    this.language = language;
    this.stream = stream;
    this.mediaError = mediaError;
    this.serverUrl = serverUrl;
    this.probeUrl = probeUrl;
    this.iceServers = iceServers;
    this.audioContext = audioContext;
    this.onJoin = onJoin;
    this.results = { camera: null, microphone: null, rttMs: null, kbps: null, ice: null, verdict: null, micLevel: 0 };
    this._timers = [];
    this._meter = null;
    this._stopped = false;
  }

  /** Build the screen into `container` and start the checks. */
  render(container) {
    const { t } = this;
    const rows = {};
    const row = (key, label) => {
      const result = h("span", { class: "dc-check-result" }, t("checking"));
      const li = h("li", { class: "dc-check", dataset: { check: key, state: "pending" } },
        h("span", { class: "dc-check-icon" }, icon("dots")),
        h("span", { class: "dc-check-name" }, label), result);
      rows[key] = { li, result };
      return li;
    };
    this.rows = rows;
    this.video = h("video", {
      class: "dc-preview-video dc-mirror", autoplay: true, playsInline: true, muted: true,
      aria: { label: t("previewLabel") },
    });
    this.meter = h("meter", {
      id: "dc-mic-meter", class: "dc-meter", min: "0", max: "1", low: "0.15", high: "0.85",
      optimum: "0.5", value: "0",
    });
    this.verdictEl = h("p", { class: "dc-verdict", role: "status", dataset: { verdict: "pending" } },
      t("verdictPending"));
    this.joinButton = h("button", {
      type: "button", class: "dc-button dc-primary", dataset: { action: "join" },
      onclick: () => this._join(false),
    }, icon("video"), h("span", {}, t("join")));
    this.audioButton = h("button", {
      type: "button", class: "dc-button", dataset: { action: "join-audio-only" },
      onclick: () => this._join(true),
    }, icon("audio"), h("span", {}, t("joinAudioOnly")));
    const headingId = "dc-precall-heading";
    this.element = h("section", { class: "dc-precall", aria: { labelledby: headingId } },
      h("h3", { id: headingId, class: "dc-screen-title" }, t("precallHeading")),
      h("p", { class: "dc-muted" }, t("precallIntro")),
      h("div", { class: "dc-precall-grid" },
        h("div", { class: "dc-preview" }, this.video,
          h("div", { class: "dc-meter-row" },
            h("label", { for: "dc-mic-meter" }, t("micLevel")), this.meter),
          h("p", { class: "dc-muted dc-small" }, t("speakHint"))),
        // the decision before the details on a phone (see consult.css)
        h("div", { class: "dc-decision" }, this.verdictEl,
          h("div", { class: "dc-actions" }, this.joinButton, this.audioButton)),
        h("ul", { class: "dc-checks" },
          row("camera", t("camera")), row("microphone", t("microphone")),
          row("server", t("server")), row("network", t("network")), row("speed", t("speed")))));
    replace(container, this.element);
    this._run();
    return this.element;
  }

  _set(key, state, text) {
    const row = this.rows[key];
    row.li.dataset.state = state;
    row.li.querySelector(".dc-check-icon").replaceChildren(
      icon(state === "ok" ? "check" : state === "warn" ? "warn" : state === "fail" ? "cross" : "dots"));
    row.result.textContent = text;
  }

  async _run() {
    const { t, stream } = this;
    const video = stream?.getVideoTracks()[0];
    const audio = stream?.getAudioTracks()[0];
    this.results.camera = Boolean(video);
    this.results.microphone = Boolean(audio);
    const why = this.mediaError ? ` (${this.mediaError})` : "";
    this._set("camera", video ? "ok" : "fail", video ? video.label || t("available") : t("notAvailable") + why);
    this._set("microphone", audio ? "ok" : "fail",
      audio ? audio.label || t("available") : t("notAvailable") + why);
    if (video) this.video.srcObject = new MediaStream([video]);
    else this.video.hidden = true;
    if (audio && this.audioContext) {
      this._meter = new LevelMeter(audio, this.audioContext);
      this._timers.push(setInterval(() => {
        const level = this._meter.read();
        this.results.micLevel = Math.max(this.results.micLevel, level);
        this.meter.value = level;
      }, 100));
    }

    const server = measureRtt(this.serverUrl).then((r) => {
      this.results.rttMs = Math.round(r.median);
      this._set("server", r.median > MAX_VIDEO_RTT_MS ? "warn" : "ok", t("rtt", { ms: this.results.rttMs }));
      return true;
    }, (err) => {
      this._set("server", "fail", `${t("notAvailable")} (${err.message})`);
      return false;
    });
    const network = gatherCandidates(this.iceServers).then((counts) => {
      this.results.ice = counts;
      const direct = counts.host + counts.srflx + counts.prflx > 0;
      const relay = counts.relay > 0;
      const text = direct && relay ? t("directAndRelay") : direct ? t("direct") : relay ? t("relay") : t("noPath");
      this._set("network", direct || relay ? "ok" : "fail", text);
    }, (err) => this._set("network", "fail", `${t("notAvailable")} (${err.message})`));
    const speed = measureThroughput(this.probeUrl).then((r) => {
      this.results.kbps = r.kbps;
      this._set("speed", r.kbps < MIN_VIDEO_KBPS ? "warn" : "ok", t("kbps", { kbps: new Intl.NumberFormat(this.language).format(r.kbps) }));
    }, (err) => this._set("speed", "fail", `${t("notAvailable")} (${err.message})`));

    const [serverOk] = await Promise.all([server, network, speed]);
    if (this._stopped) return;
    const v = verdict({ rttMs: this.results.rttMs, kbps: this.results.kbps, serverOk });
    this.results.verdict = v;
    this.verdictEl.dataset.verdict = v;
    replace(this.verdictEl, icon(v === "video" ? "check" : v === "audio" ? "warn" : "cross"),
      h("span", {}, t(v === "video" ? "verdictVideo" : v === "audio" ? "verdictAudio" : "verdictFailed")));
    if (v === "audio") { // make the recommended choice the prominent one
      this.audioButton.classList.add("dc-primary");
      this.joinButton.classList.remove("dc-primary");
    }
  }

  _join(audioOnly) {
    this.stop();
    this.onJoin?.({ audioOnly });
  }

  stop() {
    this._stopped = true;
    this._timers.forEach(clearInterval);
    this._timers = [];
    this._meter?.stop();
    this._meter = null;
    if (this.video) this.video.srcObject = null;
  }
}
