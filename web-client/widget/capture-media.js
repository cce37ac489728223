// Clinical captures on the patient's side (docs/capture.md): a still photo at
// the camera's full native resolution, not the size being sent, and a short
// clip. Media only: no DOM of the widget, no session; captures.js shows them
// and the client library sends them.
//
// Full resolution. The live camera track is sent small (640x360 or 1280x720,
// then simulcast layers below), so a frame of it is not a clinical photo. We
// clone the track and raise the clone to the camera's largest size
// (getCapabilities(), applyConstraints) and grab a frame of the clone. The
// browser delivers at most the size its camera *source* runs at: a camera
// that runs at its native size (Chromium's file-backed fake camera, many
// phones) gives it at once. A source opened smaller cannot be restarted while
// another track uses it, so two more steps follow when the clone stayed
// smaller: ImageCapture.takePhoto() (the camera's own still pipeline, full
// size on Android and Windows), and last, for a moment, the live track
// itself raised (the only track on its source, so the browser may restart
// the source at its largest size; the others see a short pause) and put back
// as it was.

export const PHOTO_MIME = "image/jpeg";
export const PHOTO_QUALITY = 0.92;
/** a clip's video: modest, so that it reaches a specialist over a thin link */
export const CLIP_VIDEO_BPS = 1_000_000;
export const CLIP_AUDIO_BPS = 32_000;
/** a clip is recorded at most this size (the camera's full size, capped: 1 Mbit/s is thin for more) */
export const CLIP_MAX_WIDTH = 1920;
export const CLIP_MAX_HEIGHT = 1080;
/**
 * how long to wait for the first frame at a new size after applyConstraints (a
 * camera switching to its largest size may take seconds on a slow or busy machine;
 * the wait ends as soon as the frame comes)
 */
const SETTLE_MS = 6000;

/**
 * @typedef {{blob: Blob, width: number, height: number, mime: string, via?: "clone"|"still"|"live"}} Photo
 *   `via`: the step that gave the largest picture (see above)
 */
/** @typedef {{blob: Blob, width: number, height: number, durationMs: number, mime: string}} Clip */
/** @typedef {{width: number, height: number}} Size */
/** @typedef {{source: CanvasImageSource, width: number, height: number, close: () => void}} Frame */
/**
 * @typedef {object} PhotoOptions
 * @property {number} [quality] JPEG quality (0.92)
 * @property {number} [maxBytes] the largest photo the server takes: lower quality, then size, until it fits
 * @property {boolean} [raiseLive] the last step above (true): the live track raised for a moment
 */

/**
 * The largest size the camera of `track` can deliver (getCapabilities), capped; null if unknown.
 * @param {MediaStreamTrack} track
 * @param {number} [maxWidth]
 * @param {number} [maxHeight]
 * @returns {Size|null}
 */
export function largestSize(track, maxWidth = Infinity, maxHeight = Infinity) {
  const caps = typeof track.getCapabilities === "function" ? track.getCapabilities() : null;
  const width = caps?.width?.max;
  const height = caps?.height?.max;
  if (!(width > 0) || !(height > 0)) return null;
  // capped: keep the camera's aspect ratio
  const scale = Math.min(1, maxWidth / width, maxHeight / height);
  return { width: Math.round(width * scale), height: Math.round(height * scale) };
}

/**
 * Constraints asking for `size` (and nothing else the track had: the frame rate stays free).
 * @param {Size} size
 * @param {boolean} [native] the camera's own frames, never scaled or cropped (resizeMode "none")
 * @returns {MediaTrackConstraints}
 */
function sizeConstraints(size, native = false) {
  /** @type {MediaTrackConstraints & {resizeMode?: string}} */
  const constraints = { width: { ideal: size.width }, height: { ideal: size.height } };
  if (native) constraints.resizeMode = "none";
  return constraints;
}

/** @param {{width: number, height: number}|null} frame @param {Size|null} target */
const smallerThan = (frame, target) => Boolean(target && frame && frame.width * frame.height < target.width * target.height);

/** @param {{width: number, height: number}|null} a @param {{width: number, height: number}|null} b */
const larger = (a, b) => Boolean(a && (!b || a.width * a.height > b.width * b.height));

const sleep = (/** @type {number} */ ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/**
 * One frame of `track`, waiting (up to SETTLE_MS) for one as large as the track's settings say.
 * @param {MediaStreamTrack} track
 * @returns {Promise<Frame>}
 */
export async function grabFrame(track) {
  const want = track.getSettings();
  const deadline = performance.now() + SETTLE_MS;
  const ImageCaptureClass = /** @type {any} */ (globalThis).ImageCapture;
  if (ImageCaptureClass) {
    const capture = new ImageCaptureClass(track);
    /** @type {ImageBitmap|null} */
    let best = null;
    for (;;) {
      /** @type {ImageBitmap|null} */
      let bitmap = null;
      try {
        bitmap = await capture.grabFrame();
      } catch (err) {
        if (performance.now() > deadline) throw err;
        await sleep(100);
        continue;
      }
      if (larger(bitmap, best)) {
        best?.close();
        best = bitmap;
      } else {
        bitmap.close();
      }
      if (!smallerThan(best, { width: want.width ?? 0, height: want.height ?? 0 }) || performance.now() > deadline) break;
      await sleep(60);
    }
    const frame = best;
    return { source: frame, width: frame.width, height: frame.height, close: () => frame.close() };
  }
  // no ImageCapture (Firefox, Safari): a <video> of the track, drawn once it has the size
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.srcObject = new MediaStream([track]);
  try {
    await video.play();
    while (video.videoWidth * video.videoHeight < (want.width ?? 0) * (want.height ?? 0) && performance.now() < deadline) {
      await sleep(60);
    }
    if (!video.videoWidth) throw new DOMException("the camera gives no picture", "NotReadableError");
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    return { source: canvas, width: canvas.width, height: canvas.height, close: () => {} };
  } finally {
    video.pause();
    video.srcObject = null;
  }
}

/**
 * Encode a picture as JPEG (or `mime`), smaller only if it must fit `maxBytes`.
 * @param {CanvasImageSource} source
 * @param {number} width
 * @param {number} height
 * @param {{quality?: number, maxBytes?: number, mime?: string}} [options]
 * @returns {Promise<Photo>}
 */
export async function encodeImage(source, width, height, { quality = PHOTO_QUALITY, maxBytes = Infinity, mime = PHOTO_MIME } = {}) {
  const qualities = [quality, 0.85, 0.75, 0.6].filter((q, i) => i === 0 || q < quality);
  let scale = 1;
  /** @type {Photo|null} */
  let photo = null;
  for (let round = 0; round < 6; round += 1) {
    const w = Math.max(1, Math.round(width * scale));
    const h = Math.max(1, Math.round(height * scale));
    const canvas = typeof OffscreenCanvas === "function"
      ? new OffscreenCanvas(w, h)
      : Object.assign(document.createElement("canvas"), { width: w, height: h });
    const ctx = /** @type {CanvasRenderingContext2D|OffscreenCanvasRenderingContext2D} */ (canvas.getContext("2d"));
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(source, 0, 0, w, h);
    for (const q of qualities) {
      const blob = canvas instanceof HTMLCanvasElement
        ? await new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("toBlob failed"))), mime, q))
        : await canvas.convertToBlob({ type: mime, quality: q });
      photo = { blob, width: w, height: h, mime: blob.type || mime };
      if (blob.size <= maxBytes) return photo;
    }
    scale *= 0.75; // even the lowest quality is too large: a smaller picture
  }
  return photo;
}

/**
 * ImageCapture.takePhoto() at the largest size the camera's still pipeline offers; null if it cannot.
 * @param {MediaStreamTrack} track
 * @returns {Promise<{blob: Blob, bitmap: ImageBitmap, width: number, height: number}|null>}
 */
async function cameraStill(track) {
  const ImageCaptureClass = /** @type {any} */ (globalThis).ImageCapture;
  if (!ImageCaptureClass) return null;
  try {
    const capture = new ImageCaptureClass(track);
    /** @type {Record<string, unknown>} */
    const settings = {};
    const caps = await capture.getPhotoCapabilities().catch(() => null);
    if (caps?.imageWidth?.max > 0 && caps?.imageHeight?.max > 0) {
      settings.imageWidth = caps.imageWidth.max;
      settings.imageHeight = caps.imageHeight.max;
    }
    /** @type {Blob} */
    const blob = await capture.takePhoto(settings).catch(() => capture.takePhoto());
    const bitmap = await createImageBitmap(blob);
    return { blob, bitmap, width: bitmap.width, height: bitmap.height };
  } catch {
    return null;
  }
}

/**
 * A still photo at the camera's full native resolution (see the top of this file).
 * The track given is left as it was (same constraints, still live).
 * @param {MediaStreamTrack} track the camera (e.g. the one being sent)
 * @param {PhotoOptions} [options]
 * @returns {Promise<Photo>}
 */
export async function takeFullResolutionPhoto(track, { quality = PHOTO_QUALITY, maxBytes = Infinity, raiseLive = true } = {}) {
  if (!track || track.kind !== "video" || track.readyState !== "live") {
    throw new DOMException("no live camera", "InvalidStateError");
  }
  const target = largestSize(track);
  /** @type {Frame|null} */
  let best = null;
  /** @type {Blob|null} the camera's own JPEG, kept as it is when it is the largest */
  let still = null;
  /** @type {Photo["via"]} */
  let via = "clone";
  const keep = (/** @type {Frame} */ frame, /** @type {Photo["via"]} */ step) => {
    if (larger(frame, best)) {
      best?.close();
      best = frame;
      still = null;
      via = step;
    } else {
      frame.close();
    }
  };
  // 1. a clone, raised to the camera's largest size
  const clone = track.clone();
  clone.enabled = true;
  try {
    if (target) await clone.applyConstraints(sizeConstraints(target)).catch(() => {});
    keep(await grabFrame(clone), "clone");
  } finally {
    clone.stop();
  }
  // 2. the camera's still pipeline
  if (smallerThan(best, target)) {
    const photo = await cameraStill(track);
    if (photo && larger(photo, best)) {
      best?.close();
      const bitmap = photo.bitmap;
      best = { source: bitmap, width: bitmap.width, height: bitmap.height, close: () => bitmap.close() };
      still = photo.blob.type === PHOTO_MIME && photo.blob.size <= maxBytes ? photo.blob : null;
      via = "still";
    } else {
      photo?.bitmap.close();
    }
  }
  // 3. the live track itself, raised for a moment and put back
  if (raiseLive && smallerThan(best, target)) {
    const before = track.getConstraints();
    try {
      await track.applyConstraints(sizeConstraints(target));
      keep(await grabFrame(track), "live");
    } catch {
      // the camera refused: the largest frame so far will do
    } finally {
      await track.applyConstraints(before).catch(() => {});
    }
  }
  const frame = /** @type {Frame} */ (best);
  try {
    if (still) return { blob: still, width: frame.width, height: frame.height, mime: PHOTO_MIME, via };
    return { ...(await encodeImage(frame.source, frame.width, frame.height, { quality, maxBytes })), via };
  } finally {
    frame.close();
  }
}

/**
 * The MediaRecorder type for a clip: WebM with VP8 (and Opus), else what the browser has.
 * @param {boolean} withAudio
 * @returns {string}
 */
export function clipMimeType(withAudio) {
  const candidates = withAudio
    ? ["video/webm;codecs=vp8,opus", "video/webm;codecs=vp9,opus", "video/webm", "video/mp4"]
    : ["video/webm;codecs=vp8", "video/webm;codecs=vp9", "video/webm", "video/mp4"];
  return candidates.find((type) => globalThis.MediaRecorder?.isTypeSupported?.(type)) ?? "";
}

/**
 * @typedef {object} ClipOptions
 * @property {number} [videoBitsPerSecond] 1 Mbit/s
 * @property {number} [maxWidth] the clip's largest size (1920x1080)
 * @property {number} [maxHeight]
 * @property {AbortSignal} [signal] aborting stops the recording early (the clip is kept)
 */

/**
 * Record a clip of `seconds` seconds (or until stop()) from clones of the
 * camera (raised to its largest size up to 1920x1080) and the microphone.
 * The returned promise has a `stop()` that ends the clip early.
 * @param {MediaStreamTrack} videoTrack
 * @param {MediaStreamTrack|null} audioTrack
 * @param {number} seconds
 * @param {((elapsedMs: number, totalMs: number) => void)|null} [onTick] about 4 times a second
 * @param {ClipOptions} [options]
 * @returns {Promise<Clip> & {stop: () => void}}
 */
export function recordClip(videoTrack, audioTrack, seconds, onTick = null, options = {}) {
  const {
    videoBitsPerSecond = CLIP_VIDEO_BPS, maxWidth = CLIP_MAX_WIDTH, maxHeight = CLIP_MAX_HEIGHT, signal,
  } = options;
  let stopRequested = false;
  /** @type {(() => void)|null} */
  let stopNow = null;
  const stop = () => {
    stopRequested = true;
    stopNow?.();
  };
  signal?.addEventListener("abort", stop, { once: true });
  const promise = (async () => {
    if (!videoTrack || videoTrack.readyState !== "live") throw new DOMException("no live camera", "InvalidStateError");
    if (typeof MediaRecorder !== "function") throw new DOMException("no MediaRecorder", "NotSupportedError");
    const video = videoTrack.clone();
    video.enabled = true;
    const audio = audioTrack?.readyState === "live" ? audioTrack.clone() : null;
    /** @type {ReturnType<typeof setInterval>|undefined} */
    let ticker;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    let timer;
    try {
      const target = largestSize(videoTrack, maxWidth, maxHeight);
      if (target) {
        await video.applyConstraints(sizeConstraints(target)).catch(() => {});
        (await grabFrame(video).catch(() => null))?.close(); // frames at the new size before the first one recorded
      }
      const mimeType = clipMimeType(Boolean(audio));
      const recorder = new MediaRecorder(new MediaStream(audio ? [video, audio] : [video]), {
        mimeType, videoBitsPerSecond, audioBitsPerSecond: CLIP_AUDIO_BPS,
      });
      /** @type {Blob[]} */
      const chunks = [];
      recorder.addEventListener("dataavailable", (e) => { if (e.data.size) chunks.push(e.data); });
      const stopped = new Promise((resolve, reject) => {
        recorder.addEventListener("stop", resolve, { once: true });
        recorder.addEventListener("error", (e) => reject(/** @type {any} */ (e).error ?? new Error("recording failed")), { once: true });
      });
      let startedAt = 0;
      let endedAt = 0;
      const total = seconds * 1000;
      stopNow = () => {
        if (recorder.state === "inactive") return;
        endedAt = performance.now();
        recorder.stop();
      };
      recorder.start(1000);
      startedAt = performance.now(); // the media's timestamps count from here (the "start" event comes later)
      if (stopRequested) stopNow();
      timer = setTimeout(() => stopNow(), total);
      ticker = setInterval(() => onTick?.(Math.min(total, performance.now() - startedAt), total), 250);
      await stopped;
      const durationMs = Math.max(0, Math.round((endedAt || performance.now()) - startedAt));
      const type = (recorder.mimeType || mimeType || "video/webm").split(";")[0];
      const settings = video.getSettings();
      let blob = new Blob(chunks, { type });
      if (type === "video/webm") blob = await withWebmDuration(blob, durationMs);
      return { blob, width: settings.width ?? 0, height: settings.height ?? 0, durationMs, mime: type };
    } finally {
      clearTimeout(timer);
      clearInterval(ticker);
      signal?.removeEventListener("abort", stop);
      video.stop();
      audio?.stop();
    }
  })();
  return Object.assign(promise, { stop });
}

// -- WebM duration -----------------------------------------------------------------
// MediaRecorder writes a live WebM: no Duration in its Segment Info, so players
// show no length and seek poorly, and an exported clip says nothing of its
// length. We write it in: Info is rewritten with a Duration element (its size
// grows by 11 bytes); nothing else moves but what follows Info, which nothing
// in a live WebM points to (no SeekHead, no Cues). Anything unexpected: the
// blob is returned as it was.

const EBML_ID = 0x1a45dfa3;
const SEGMENT_ID = 0x18538067;
const SEEK_HEAD_ID = 0x114d9b74;
const INFO_ID = 0x1549a966;
const TIMECODE_SCALE_ID = 0x2ad7b1;
const DURATION_ID = 0x4489;
const CLUSTER_ID = 0x1f43b675;

/**
 * An EBML variable-length integer at `pos`: {value, length, unknown}; null if it does not fit.
 * @param {Uint8Array} bytes
 * @param {number} pos
 * @param {boolean} keepMarker element ids keep their length marker bit
 */
function readVint(bytes, pos, keepMarker) {
  if (pos >= bytes.length) return null;
  const first = bytes[pos];
  let length = 1;
  while (length <= 8 && !(first & (0x80 >> (length - 1)))) length += 1;
  if (length > 8 || pos + length > bytes.length) return null;
  let value = keepMarker ? first : first & (0xff >> length);
  let allOnes = value === (0xff >> length);
  for (let i = 1; i < length; i += 1) {
    value = value * 256 + bytes[pos + i];
    allOnes &&= bytes[pos + i] === 0xff;
  }
  return { value, length, unknown: !keepMarker && allOnes };
}

/** An 8-byte EBML size. @param {number} value */
function vint8(value) {
  const out = new Uint8Array(8);
  out[0] = 0x01;
  let rest = value;
  for (let i = 7; i >= 1; i -= 1) {
    out[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  return out;
}

/**
 * The clip with its duration written in (see above).
 * @param {Blob} blob a WebM from MediaRecorder
 * @param {number} durationMs
 * @returns {Promise<Blob>}
 */
export async function withWebmDuration(blob, durationMs) {
  try {
    const head = new Uint8Array(await blob.slice(0, Math.min(blob.size, 65536)).arrayBuffer());
    const element = (/** @type {number} */ pos) => {
      const id = readVint(head, pos, true);
      const size = id && readVint(head, pos + id.length, false);
      return id && size ? { id: id.value, start: pos, body: pos + id.length + size.length, size } : null;
    };
    const ebml = element(0);
    if (ebml?.id !== EBML_ID || ebml.size.unknown) return blob;
    const segment = element(ebml.body + ebml.size.value);
    if (segment?.id !== SEGMENT_ID) return blob;
    let pos = segment.body;
    for (;;) {
      const child = element(pos);
      if (!child || child.id === SEEK_HEAD_ID || child.id === CLUSTER_ID || child.size.unknown) return blob;
      const end = child.body + child.size.value;
      if (child.id === INFO_ID) {
        if (end > head.length) return blob;
        let scale = 1_000_000; // ns per timecode unit: the default, ms
        for (let p = child.body; p < end;) {
          const item = element(p);
          if (!item) return blob;
          if (item.id === DURATION_ID) return blob; // already there
          if (item.id === TIMECODE_SCALE_ID) {
            scale = 0;
            for (let i = 0; i < item.size.value; i += 1) scale = scale * 256 + head[item.body + i];
          }
          p = item.body + item.size.value;
        }
        const duration = new Uint8Array(11);
        duration.set([0x44, 0x89, 0x88]);
        new DataView(duration.buffer).setFloat64(3, (durationMs * 1e6) / (scale || 1_000_000));
        const idBytes = head.slice(child.start, child.start + (child.body - child.start - child.size.length));
        const prefix = head.slice(0, child.start);
        if (!segment.size.unknown) { // a known Segment size grows by what Info grows by
          const grown = segment.size.value + (idBytes.length + 8 + child.size.value + 11) - (end - child.start);
          const at = segment.body - segment.size.length;
          if (segment.size.length !== 8) return blob;
          prefix.set(vint8(grown), at);
        }
        return new Blob([
          prefix, idBytes, vint8(child.size.value + 11), head.slice(child.body, end), duration, blob.slice(end),
        ], { type: blob.type });
      }
      pos = end;
    }
  } catch {
    return blob;
  }
}
