// Test page for digiclinic-client.js: joins a consult, publishes the camera
// and microphone, shows every remote track, and exposes its state to
// browser tests as `window.digiclinicTest`.
//
// Query string: token (required), server (WebSocket URL; default: this
// page's server), relay=1 (iceTransportPolicy "relay"), video=WxH (the
// camera size asked for; default 640x360), simulcast=0 (one encoding),
// reconnect=1 (rejoin automatically), fallback (comma-separated other entry
// URLs of a cluster). The fragment's e2ee=<key id>.<base64url> is the consult
// key of an end-to-end encrypted room (a fragment never reaches the server).

import { ConsultSession } from "../digiclinic-client.js";

const params = new URLSearchParams(location.search);
const defaultServer = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws?v=1`;
const relay = ["1", "true", "yes"].includes(params.get("relay") ?? "");
const [videoWidth, videoHeight] = (params.get("video") ?? "640x360").split("x").map(Number);

const session = new ConsultSession({
  url: params.get("server") || defaultServer,
  token: params.get("token") ?? "",
  iceTransportPolicy: relay ? "relay" : "all",
  simulcast: !["0", "false", "no"].includes(params.get("simulcast") ?? ""),
  reconnect: params.get("reconnect") === "1" ? { delay: 250, maxDelay: 2000, attempts: 30 } : false,
  fallbackUrls: (params.get("fallback") ?? "").split(",").filter(Boolean),
  e2eeKey: new URLSearchParams(location.hash.slice(1)).get("e2ee"),
});

const test = {
  session,
  state: "starting", // starting, joining, lobby, publishing, published, failed, closed
  joined: null,
  published: [],
  localStream: null,
  remoteVideos: [], // <video> elements of remote tracks
  remoteAudios: [],
  events: [], // {type, detail} of every session event but `message`
  errors: [], // error events, failures, CSP violations
  stats,
};
/** @type {any} */ (window).digiclinicTest = test;

const $ = (id) => document.getElementById(id);

function setState(state, text = state) {
  test.state = state;
  $("status").textContent = `${text} (relay: ${relay})`;
}

function log(line) {
  $("log").textContent += `${new Date().toISOString().slice(11, 23)} ${line}\n`;
}

/** A captioned tile holding a <video>, styled through the CSSOM (CSP-safe). */
function videoTile(parent, caption, stream, muted) {
  const figure = document.createElement("figure");
  Object.assign(figure.style, { display: "inline-block", margin: "4px", font: "12px sans-serif" });
  const video = document.createElement("video");
  Object.assign(video, { autoplay: true, playsInline: true, muted, width: 320, height: 180 });
  video.style.background = "#000";
  video.srcObject = stream;
  const label = document.createElement("figcaption");
  label.textContent = caption;
  figure.append(video, label);
  parent.append(figure);
  return video;
}

const elements = new Map(); // remote trackId -> element

session.addEventListener("track", ({ detail }) => {
  const { track, trackId, participantId, kind, source } = detail;
  const name = session.participants.get(participantId)?.name ?? participantId;
  const stream = new MediaStream([track]);
  let element;
  if (kind === "video") {
    element = videoTile($("remote"), `${name} · ${source}`, stream, true);
    element.dataset.trackId = trackId;
    test.remoteVideos.push(element);
  } else {
    element = document.createElement("audio");
    element.autoplay = true;
    element.srcObject = stream;
    document.body.append(element);
    test.remoteAudios.push(element);
  }
  elements.set(trackId, element);
});

session.addEventListener("track-removed", ({ detail }) => {
  const element = elements.get(detail.trackId);
  if (!element) return;
  elements.delete(detail.trackId);
  test.remoteVideos = test.remoteVideos.filter((v) => v !== element);
  test.remoteAudios = test.remoteAudios.filter((a) => a !== element);
  (element.closest("figure") ?? element).remove();
});

const logged = [
  "lobby-wait", "lobby", "admitted", "denied", "participant-joined", "participant-left",
  "track-published", "track-unpublished", "track-muted", "subscriber-offer", "connection-failed",
  "room-closed", "error", "track", "track-removed", "connection-state", "closed",
  "publisher-layers", "layers-applied", "audio-cap-applied", "track-paused",
  "reconnecting", "reconnected", "reconnect", "e2ee-receive",
];
for (const type of logged) {
  session.addEventListener(type, ({ detail }) => {
    // keep events serialisable for the test: no SDP, no MediaStream objects
    const { sdp, track, stream, ...rest } = detail ?? {};
    test.events.push({ type, detail: rest });
    if (type === "error") test.errors.push(rest);
    log(`${type} ${JSON.stringify(rest).slice(0, 160)}`);
  });
}
session.addEventListener("closed", () => setState("closed"));
document.addEventListener("securitypolicyviolation", (e) => {
  test.errors.push({ code: "csp", message: `${e.violatedDirective} ${e.blockedURI}` });
});

/** Receive and send statistics of both connections, labelled with track ids. */
async function stats() {
  const result = { inbound: [], outbound: [] };
  const byMid = new Map([...session.remoteTracks.values()].map((t) => [t.mid, t]));
  const received = (await session.subscriberPc?.getStats()) ?? new Map();
  for (const report of received.values()) {
    if (report.type !== "inbound-rtp") continue;
    const track = byMid.get(report.mid);
    result.inbound.push({
      kind: report.kind, mid: report.mid, trackId: track?.trackId ?? null,
      participantId: track?.participantId ?? null, source: track?.source ?? null,
      packetsReceived: report.packetsReceived ?? 0, bytesReceived: report.bytesReceived ?? 0,
      packetsLost: report.packetsLost ?? 0, framesDecoded: report.framesDecoded ?? 0,
      frameWidth: report.frameWidth ?? 0, frameHeight: report.frameHeight ?? 0,
      totalSamplesReceived: report.totalSamplesReceived ?? 0, codecId: report.codecId ?? null,
      codec: received.get(report.codecId)?.mimeType ?? null,
      concealedSamples: report.concealedSamples ?? 0,
    });
  }
  const ours = new Map([...session.published.values()].map((t) => [t.mid, t]));
  const sent = (await session.publisherPc?.getStats()) ?? new Map();
  for (const report of sent.values()) {
    if (report.type !== "outbound-rtp") continue;
    result.outbound.push({
      kind: report.kind, mid: report.mid, trackId: ours.get(report.mid)?.trackId ?? null,
      rid: report.rid ?? null, active: report.active ?? null, bytesSent: report.bytesSent ?? 0,
      packetsSent: report.packetsSent ?? 0, framesEncoded: report.framesEncoded ?? 0,
      frameWidth: report.frameWidth ?? 0, frameHeight: report.frameHeight ?? 0,
      codec: sent.get(report.codecId)?.mimeType ?? null,
    });
  }
  return result;
}

async function main() {
  if (!params.get("token")) throw new Error("no token in the query string");
  // getUserMedia first: with capture permission Chrome offers real host
  // addresses as ICE candidates instead of mDNS names.
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: videoWidth, height: videoHeight }, audio: true,
  });
  test.localStream = stream;
  videoTile($("local"), "me (local preview)", stream, true);
  setState("joining");
  test.joined = await session.join();
  log(`joined ${test.joined.participant.id} as ${test.joined.participant.role}, ${test.joined.state}`);
  if (test.joined.state === "lobby") {
    setState("lobby", "waiting in the lobby");
    await session.admitted();
  }
  setState("publishing");
  test.published = (await session.publish(stream)).map(({ track, ...rest }) => rest);
  setState("published", `in the consult as ${test.joined.participant.name}`);
}

main().catch((err) => {
  test.errors.push({ code: err.code ?? err.name, message: err.message });
  log(`failed: ${err.message}`);
  setState("failed", `failed: ${err.message}`);
});
