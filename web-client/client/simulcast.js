// Simulcast publishing for ConsultSession: the camera is sent as up to three
// rid-based layers, lowest first (rids q, h, f: the server relies on these
// names and on the order of `a=simulcast:send q;h;f`), so the server can
// forward to each subscriber the layer that fits its link and the size at
// which it shows the video. A screen share is sent as one encoding tuned for
// detail. Pure functions on tracks, SDP and RTCRtpSenders, used by
// client/publisher.js (sendEncodingsFor, answerHasSimulcast, tuneSender) and
// client/publisher-control.js (applyLayers).

/** The full ladder, lowest first, for a camera whose longer side is >= 960 px. */
export const SIMULCAST_LAYERS = Object.freeze([
  Object.freeze({ rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 }),
  Object.freeze({ rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 }),
  Object.freeze({ rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 }),
]);

// Smaller cameras: fewer layers, so that the lowest is still about 320 px
// wide (Chrome itself sends two layers at 640x360 and one at 320x180).
const TWO_LAYERS = Object.freeze([
  Object.freeze({ rid: "q", scaleResolutionDownBy: 2, maxBitrate: 150_000 }),
  Object.freeze({ rid: "h", scaleResolutionDownBy: 1, maxBitrate: 500_000 }),
]);

/** Longer side (px) from which a camera gets three layers, and two. */
export const THREE_LAYERS_FROM = 960;
export const TWO_LAYERS_FROM = 480;

/** One encoding for a screen share: no simulcast (text must stay sharp). */
export const SCREEN_ENCODING = Object.freeze({ maxBitrate: 1_500_000 });

/**
 * The `sendEncodings` for a camera track, lowest layer first, or null for a
 * single plain encoding (small cameras). A null track (nothing to send yet,
 * a later replaceTrack brings the camera) or one whose size is not known
 * gets the full ladder: Chrome drops the layers a smaller picture cannot fill.
 */
export function cameraEncodings(track) {
  let settings = {};
  try { settings = track?.getSettings?.() ?? {}; } catch { settings = {}; }
  const longer = Math.max(settings.width ?? 0, settings.height ?? 0);
  /** @type {readonly {rid: string, scaleResolutionDownBy: number, maxBitrate: number}[]|null} */
  let ladder = SIMULCAST_LAYERS;
  if (longer > 0 && longer < THREE_LAYERS_FROM) ladder = longer >= TWO_LAYERS_FROM ? TWO_LAYERS : null;
  return ladder ? ladder.map((layer) => ({ ...layer, active: true })) : null;
}

/**
 * The `sendEncodings` of a new sender: the camera as simulcast layers
 * (unless `simulcast` is false or the camera is small), a screen share as one
 * encoding with `contentHint = "detail"`; null (one default encoding) else.
 * @param {{kind: string, source: string, track: MediaStreamTrack|null}} item
 * @param {boolean} simulcast  the session's `simulcast` option
 * @returns {RTCRtpEncodingParameters[]|null}
 */
export function sendEncodingsFor({ kind, source, track }, simulcast) {
  if (kind !== "video") return null;
  if (source === "screen_share") {
    if (track && !track.contentHint) track.contentHint = "detail";
    return [{ ...SCREEN_ENCODING }];
  }
  if (source === "camera" && simulcast) {
    const encodings = cameraEncodings(track);
    return encodings && encodings.length > 1 ? encodings : null;
  }
  return null;
}

/**
 * After a negotiation, one of our video senders: a server that refuses
 * simulcast leaves one encoding, the lowest layer's: send it at full
 * resolution instead (fixRefusedSimulcast). A screen share keeps its
 * resolution (text stays readable) and drops frames when the link is short
 * (`degradationPreference`, set once: `tuned`).
 * @param {RTCRtpSender} sender
 * @param {{source: string, encodings: RTCRtpEncodingParameters[]|null, tuned?: boolean}} label
 */
export async function tuneSender(sender, label) {
  if (label.encodings?.length > 1) await fixRefusedSimulcast(sender, label.encodings);
  if (label.source === "screen_share" && !label.tuned) {
    label.tuned = true;
    const params = sender.getParameters();
    params.degradationPreference = "maintain-resolution";
    await sender.setParameters(params);
  }
}

/**
 * Whether the answer accepted simulcast on the m-line `mid` (an
 * `a=simulcast:recv` line in that media section).
 */
export function answerHasSimulcast(sdp, mid) {
  for (const section of String(sdp).split(/\r?\nm=/).slice(1)) {
    const lines = section.split(/\r?\n/);
    if (!lines.some((line) => line === `a=mid:${mid}`)) continue;
    return lines.some((line) => line.startsWith("a=simulcast:"));
  }
  return false;
}

/**
 * After a negotiation: a sender that offered several layers but whose
 * answer refused simulcast keeps one encoding — the lowest layer's, scaled
 * down — so give it the full resolution and the top layer's bitrate again.
 * (Chrome then still offers simulcast on that m-line and fails to apply its
 * own re-offer, for want of a negotiated RID header extension: against such
 * a server, publish with `simulcast: false`. The digiclinic server serves
 * this client, so the two always match.)
 * Resolves to true if the parameters were changed.
 */
export async function fixRefusedSimulcast(sender, offered) {
  if (!offered || offered.length < 2) return false;
  const params = sender.getParameters();
  const encodings = params.encodings ?? [];
  if (encodings.length !== 1) return false;
  const [encoding] = encodings;
  const top = offered[offered.length - 1];
  if ((encoding.scaleResolutionDownBy ?? 1) === 1 && encoding.maxBitrate === top.maxBitrate) return false;
  encoding.scaleResolutionDownBy = 1;
  encoding.maxBitrate = top.maxBitrate;
  encoding.active = true;
  await sender.setParameters(params);
  return true;
}

/**
 * Apply a server's `publisher_layers` ({rid, active} per layer) to a
 * sender's encodings: only `active` changes, never the track. A single
 * layer with rid null is the one encoding of a camera sent without
 * simulcast (turned off while our uplink is too weak for video). Resolves to
 * the resulting {rid: active} map ("" for that one), or null if nothing matched.
 */
export async function applyLayers(sender, layers) {
  const wanted = new Map();
  for (const layer of Array.isArray(layers) ? layers : []) {
    const rid = layer?.rid ?? "";
    if (typeof rid === "string" && typeof layer.active === "boolean") wanted.set(rid, layer.active);
  }
  const params = sender.getParameters();
  const all = params.encodings ?? [];
  const single = all.length === 1 && !all[0].rid;
  const encodings = all.filter((e) => wanted.has(e.rid ?? "") && (e.rid || single));
  if (encodings.length === 0) return null;
  let changed = false;
  for (const encoding of encodings) {
    const active = wanted.get(encoding.rid ?? "");
    if (encoding.active !== active) {
      encoding.active = active;
      changed = true;
    }
  }
  if (changed) await sender.setParameters(params);
  return Object.fromEntries(encodings.map((e) => [e.rid ?? "", e.active !== false]));
}
