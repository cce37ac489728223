// End-to-end encryption of a ConsultSession's frames (../digiclinic-client.js;
// docs/e2ee.md): the consult key from the portal, the transform worker
// (e2ee-worker.js) and the senders and receivers it protects.
//
// Owns: the worker, the keys given (by id) and which one we send with.
// Interface: setKey(key) (the first, or a rotation), joined(mode), roster(participants),
// protectSender(transceiver, kind), protectReceiver(receiver, kind, participantId),
// counts(), close(). In a room whose mode is "off" it does nothing. Tells the session `e2ee-receive` {participantId, kind, state}
// when a remote stream starts or stops decrypting ("ok", "no-key", "wrong-key").
//
// Rotation: a new key decrypts at once and encrypts ROTATE_SEND_DELAY_MS later,
// so that every page holds it before the first frame under it arrives; the
// previous key still decrypts for KEY_OVERLAP_MS (frames in flight, a page that
// switched a little earlier).

import { decryptCapture, deriveKey, encryptCapture, parseConsultKey } from "./e2ee-frames.js";

/** @typedef {import("./protocol.js").Emit} Emit */
/** @typedef {import("./e2ee-frames.js").ConsultKey} ConsultKey */

export const ROTATE_SEND_DELAY_MS = 1000;
const WORKER_URL = new URL("./e2ee-worker.js", import.meta.url).href;

/**
 * The URL the transform worker is started from. A worker must come from the
 * page's own origin: a portal page embedding the widget from the digiclinic
 * server gets a same-origin `blob:` shim whose one line imports the worker
 * module from the server (CORS, like the widget's other modules; the page's
 * policy needs `worker-src blob:`). Where the page requires Trusted Types, the
 * URL goes through the policy "digiclinic-e2ee", which lets exactly these through.
 * @returns {any}
 */
function workerUrl() {
  let url = WORKER_URL;
  if (new URL(WORKER_URL).origin !== globalThis.location?.origin) {
    shimUrl ??= URL.createObjectURL(new Blob([`import ${JSON.stringify(WORKER_URL)};\n`], { type: "text/javascript" }));
    url = shimUrl;
  }
  const tt = /** @type {any} */ (globalThis).trustedTypes;
  if (!tt?.createPolicy) return url;
  trustedPolicy ??= tt.createPolicy("digiclinic-e2ee", {
    createScriptURL: (/** @type {string} */ given) => {
      if (given !== WORKER_URL && given !== shimUrl) throw new TypeError("digiclinic-e2ee: not the transform worker");
      return given;
    },
  });
  return trustedPolicy.createScriptURL(url);
}
/** @type {string|null} the blob: shim, for a page of another origin */
let shimUrl = null;
/** @type {any} */
let trustedPolicy = null;
export const KEY_OVERLAP_MS = 10_000;

/** Whether this browser can take part in an end-to-end encrypted consult. */
export function e2eeSupported() {
  return typeof globalThis.RTCRtpScriptTransform === "function" && Boolean(globalThis.crypto?.subtle);
}

export class FrameEncryption {
  /** @type {Worker|null} */
  #worker = null;
  /** @type {number|null} the key id frames are sent with */
  sendKeyId = null;
  /** @type {ConsultKey|null} the latest key given (captures use it too) */
  key = null;
  /** @type {"off"|"optional"|"required"} the room's mode (its `joined`) */
  mode = "off";
  /** @type {string} the participants whose frames come in clear, as last told to the worker */
  #clear = "";
  #emit;
  /** @type {Set<ReturnType<typeof setTimeout>>} */
  #timers = new Set();
  /** @type {((counts: any) => void)[]} */
  #waiting = [];
  /** @type {Map<number, CryptoKey>} capture keys by key id (every key given: captures outlive rotations) */
  #captureKeys = new Map();
  /** @type {Promise<unknown>} the capture keys being derived */
  #deriving = Promise.resolve();

  /** @param {Emit} emit */
  constructor(emit) {
    this.#emit = emit;
  }

  get hasKey() { return this.key !== null; }

  /** Our frames are end-to-end encrypted: the room's mode says so and we have the key. */
  get encrypting() { return this.mode !== "off" && this.hasKey && e2eeSupported(); }

  /**
   * The room's mode (`joined`), and who in it sends in clear (its roster, after each change).
   * @param {"off"|"optional"|"required"|undefined} mode
   */
  joined(mode) { this.mode = mode ?? "off"; }

  /** @param {Map<string, {e2ee?: boolean}>} participants */
  roster(participants) {
    if (this.mode === "off") return;
    // a required room never takes a frame in clear, whatever the roster says (a server
    // that marked someone as not encrypting could otherwise slip its own frames in)
    const ids = this.mode === "required"
      ? []
      : [...participants].filter(([, p]) => !p.e2ee).map(([id]) => id).sort();
    if (ids.join(" ") === this.#clear) return;
    this.#clear = ids.join(" ");
    this.#post({ type: "clear-senders", ids });
  }

  #post(/** @type {any} */ message) {
    if (!this.#worker) {
      const worker = (this.#worker = new Worker(workerUrl(), { type: "module" }));
      worker.onmessage = ({ data }) => {
        if (data.type === "receive-state") this.#emit("e2ee-receive", data);
        else if (data.type === "counts") this.#waiting.splice(0).forEach((resolve) => resolve(data));
        else if (data.type === "failed") this.#emit("error", { code: "e2ee_failed", message: data.message });
      };
    }
    this.#worker.postMessage(message);
  }

  /**
   * The consult key (the first, or a new one: a rotation). "<id>.<base64url>" or {id, key}.
   * @param {string|{id: number, key: string}} value
   */
  setKey(value) {
    const key = parseConsultKey(value);
    const previous = this.sendKeyId;
    this.key = key;
    this.#post({ type: "key", id: key.id, raw: key.raw });
    this.#deriving = this.#deriving.then(async () => this.#captureKeys.set(key.id, await deriveKey(key.raw, "capture")));
    if (previous === null || previous === key.id) {
      this.#sendWith(key.id);
      return;
    }
    this.#later(ROTATE_SEND_DELAY_MS, () => {
      if (this.key?.id !== key.id) return; // rotated again meanwhile
      this.#sendWith(key.id);
      this.#later(KEY_OVERLAP_MS, () => { if (this.sendKeyId !== previous) this.#post({ type: "forget", id: previous }); });
    });
  }

  /** @param {number} id */
  #sendWith(id) {
    this.sendKeyId = id;
    this.#post({ type: "send-with", id });
  }

  /** @param {number} ms @param {() => void} fn */
  #later(ms, fn) {
    const timer = setTimeout(() => { this.#timers.delete(timer); fn(); }, ms);
    this.#timers.add(timer);
  }

  /**
   * Encrypt what `transceiver` sends; video goes as VP8 only (the codec whose
   * clear bytes the SFU reads, docs/e2ee.md).
   * @param {RTCRtpTransceiver} transceiver
   * @param {"audio"|"video"} kind
   */
  protectSender(transceiver, kind) {
    if (!this.encrypting) return;
    if (kind === "video") {
      const codecs = RTCRtpSender.getCapabilities("video")?.codecs ?? [];
      const vp8 = codecs.filter((c) => /^video\/(VP8|rtx)$/i.test(c.mimeType));
      if (vp8.some((c) => /VP8/i.test(c.mimeType))) transceiver.setCodecPreferences(vp8);
    }
    this.#post({ type: "hello" }); // the worker exists before the transform names it
    transceiver.sender.transform = new RTCRtpScriptTransform(/** @type {Worker} */ (this.#worker), { side: "send", kind });
  }

  /**
   * Decrypt what `receiver` gets from `participantId`.
   * @param {RTCRtpReceiver} receiver
   * @param {"audio"|"video"} kind
   * @param {string} participantId
   */
  protectReceiver(receiver, kind, participantId) {
    if (this.mode === "off" || !e2eeSupported()) return;
    this.#post({ type: "hello" });
    receiver.transform = new RTCRtpScriptTransform(/** @type {Worker} */ (this.#worker), { side: "receive", kind, participantId });
  }

  // -- clinical captures (client/captures.js) -----------------------------------------

  /**
   * A capture's bytes sealed under the current key, or null when our frames are not encrypted.
   * @param {Uint8Array<ArrayBuffer>} bytes
   * @returns {Promise<{data: Uint8Array<ArrayBuffer>, keyId: number}|null>}
   */
  async sealCapture(bytes) {
    const key = this.key;
    if (!this.encrypting || !key) return null;
    await this.#deriving;
    return { data: await encryptCapture(/** @type {CryptoKey} */ (this.#captureKeys.get(key.id)), key.id, bytes), keyId: key.id };
  }

  /** @param {Uint8Array<ArrayBuffer>} bytes @returns {Promise<Uint8Array<ArrayBuffer>>} */
  async openCapture(bytes) {
    await this.#deriving;
    return decryptCapture(this.#captureKeys, bytes);
  }

  /** A note sealed like a capture, in base64url. @param {string} text */
  async sealText(text) {
    const sealed = await this.sealCapture(new TextEncoder().encode(text));
    if (!sealed) return text;
    return btoa(String.fromCharCode(...sealed.data)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  /** @param {string} text  a sealed note (base64url) */
  async openText(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
    return new TextDecoder().decode(await this.openCapture(bytes));
  }

  /** Frames encrypted, decrypted, dropped and passed in clear so far (tests, diagnostics). */
  counts() {
    return new Promise((resolve) => { this.#waiting.push(resolve); this.#post({ type: "counts" }); });
  }

  close() {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#worker?.terminate();
    this.#worker = null;
  }
}
