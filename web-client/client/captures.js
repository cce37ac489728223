// Clinical captures of a ConsultSession (docs/capture.md): ask for one, send
// one (chunked, yielding to the live audio (client/capture-pace.js), resumable after a
// dropped WebSocket, a reconnection or a page reload), receive the room's.
//
// Owns: our uploads (kept in IndexedDB until the server holds every byte, so
// that a reloaded page resumes them), the downloads under way and the
// captures received. Interface: request(kind, note), send(blob, meta),
// consent(given), viewed(id), received, maxClipSeconds, onEvent(msg) and
// onBinary(data) (what the channel receives), resume() (after every join,
// admission and reconnection), close(). Events (through `emit`):
// capture-progress {capture_id, offset, size, direction, mine},
// capture-received {capture_id, blob, info}, capture-failed {capture_id, code, message}.

import { CaptureWindow } from "./capture-pace.js";
import { DigiclinicError } from "./protocol.js";

const UPLOAD = 0x01;
const DOWNLOAD = 0x02;
// bytes sent and not yet confirmed by the server stay within the window of
// client/capture-pace.js: what the browser hands to TCP waits in the kernel's
// buffer when the link is full, and unbounded it would hold every signalling
// message (and the heartbeat) behind it for as long as it takes to drain
const WINDOW_WAIT_MS = 20;
const STATS_MS = 1000;
// below this uplink estimate, while a capture is sent, our camera pauses
// (PublisherControl.yieldVideo) and the server has our audio take its thin-link
// form (`thin_uplink`): the capture gets what the audio leaves (the video is
// what failed on such a link)
const YIELD_BELOW_BPS = 200_000;
// on such a link the first chunk waits (at most this long) for our audio's thin-link
// form: its 60 ms packets leave the capture about 20 kbit/s of headers, and the
// renegotiation that brings them should not queue behind the capture's chunks
const THIN_AUDIO_WAIT_MS = 8_000;
const DB_NAME = "digiclinic-captures";
const STORE = "uploads";

/**
 * @typedef {object} CaptureMeta
 * @property {"photo"|"clip"} kind
 * @property {number} [width]
 * @property {number} [height]
 * @property {number} [durationMs]
 * @property {string} [note]
 * @property {string} [requestId]
 */

/**
 * @typedef {object} UploadJob
 * @property {string} captureId
 * @property {string} key       room|identity: only the same person in the same room resumes it
 * @property {Blob} blob
 * @property {number} size
 * @property {number} offset    the next byte to send
 * @property {number} acked     bytes the server confirmed holding
 * @property {number} [rewoundTo]  the offset of the latest `capture_offset` we went back to
 * @property {number} chunkMax
 * @property {CaptureWindow} pace
 * @property {boolean} running
 * @property {() => void} done
 * @property {(err: Error) => void} fail
 * @property {Promise<string>} finished
 */

/**
 * @typedef {object} CaptureHost
 * @property {(type: string, fields?: Record<string, any>, timeout?: number) => Promise<any>} request
 * @property {(data: Uint8Array) => boolean} sendBinary  false when not connected
 * @property {() => number} bufferedAmount  bytes the WebSocket has not yet sent
 * @property {(type: string, detail: any) => void} emit
 * @property {() => RTCPeerConnection|null} publisherPc
 * @property {(on: boolean) => Promise<void>} yieldVideo  our camera pauses (or sends again)
 * @property {(ms: number) => Promise<boolean>} audioThinned  resolves once our audio took its
 *   thin-link form (the server's `publisher_audio` with `packet_ms`, renegotiated), or false after `ms`
 * @property {() => {room: string, identity: string, participantId: string}|null} me
 * @property {import("./e2ee.js").FrameEncryption} e2ee  seals our captures when our frames are
 *   end-to-end encrypted, opens those that are (docs/e2ee.md)
 */

export class Captures {
  /** @type {Map<string, {info: any, blob: Blob}>} capture id -> what arrived */
  received = new Map();
  maxClipSeconds = 10;
  /** payload bytes this page put on the wire for uploads (tests count them) */
  bytesSent = 0;
  /** @type {Array<{captureId: string, offset: number, bytesSentBefore: number}>} each resumption */
  resumed = [];
  /** @type {Map<string, UploadJob>} */
  #uploads = new Map();
  /** @type {Map<string, {info: any, data: Uint8Array<ArrayBuffer>, have: number, parts: Map<number, number>}>} */
  #downloads = new Map();
  /** @type {string[]} capture ids waiting for their turn to download */
  #queue = [];
  /** @type {string|null} */
  #fetching = null;
  #host;
  /** Chrome's uplink estimate (availableOutgoingBitrate), read at most once a second */
  #uplink = { at: -Infinity, bps: 0 };
  #yielding = false;
  #closed = false;

  /** @param {CaptureHost} host */
  constructor(host) { this.#host = host; }

  // -- asking, consenting, viewing ------------------------------------------------

  /** Ask the patient's side for a photo or a clip (the `capture` grant). @returns {Promise<string>} request id */
  async request(kind, note = "") {
    const reply = await this.#host.request("capture_request", note ? { kind, note } : { kind });
    return reply.request_id;
  }

  /** Answer the capture consent question. @param {boolean} given */
  async consent(given) { await this.#host.request("capture_consent", { given }); }

  /** The viewer was opened (audited). @param {string} captureId */
  viewed(captureId) {
    this.#host.request("capture_viewed", { capture_id: captureId }).catch(() => {});
  }

  // -- sending -------------------------------------------------------------------------

  /**
   * Send a capture; resolves to its id once the server holds every byte.
   * @param {Blob} blob
   * @param {CaptureMeta} meta
   * @returns {Promise<string>}
   */
  async send(blob, meta) {
    let bytes = new Uint8Array(await blob.arrayBuffer());
    let note = meta.note || undefined;
    const sealed = await this.#host.e2ee.sealCapture(bytes); // null unless end-to-end encrypted
    if (sealed) {
      bytes = sealed.data;
      note = note && (await this.#host.e2ee.sealText(note));
      blob = new Blob([bytes], { type: blob.type });
    }
    const sha256 = await hex(await crypto.subtle.digest("SHA-256", bytes));
    const fields = {
      kind: meta.kind, mime: blob.type, size: bytes.length, sha256,
      width: meta.width, height: meta.height, duration_ms: meta.durationMs,
      note, request_id: meta.requestId, e2ee: sealed?.keyId,
    };
    const reply = await this.#host.request("capture_begin", { ...fields, thin_uplink: await this.#thinUplink() });
    const job = this.#job(reply.capture_id, this.#key(), blob, reply);
    await saveUpload({ captureId: job.captureId, key: job.key, blob, meta });
    this.#run(job);
    return job.finished;
  }

  /** @returns {UploadJob} */
  #job(captureId, key, blob, reply) {
    /** @type {any} */
    const job = {
      captureId, key, blob, size: blob.size, offset: reply.offset ?? 0, acked: reply.offset ?? 0,
      chunkMax: reply.chunk_max ?? 16384, running: false,
    };
    job.pace = new CaptureWindow(job.chunkMax);
    job.finished = new Promise((resolve, reject) => {
      job.done = () => resolve(captureId);
      job.fail = reject;
    });
    job.finished.catch(() => {}); // a caller may not wait for it
    this.#uploads.set(captureId, job);
    return job;
  }

  /** Send from the job's offset, paced, until every byte is out (the server confirms). @param {UploadJob} job */
  async #run(job) {
    if (job.running) return;
    job.running = true;
    try {
      const bytes = new Uint8Array(await job.blob.arrayBuffer());
      while (job.offset < job.size && this.#uploads.get(job.captureId) === job && !this.#closed) {
        while (this.#host.bufferedAmount() > 0) await sleep(WINDOW_WAIT_MS); // nothing queues behind a chunk
        if (!this.#yielding && (await this.#thinUplink())) {
          this.#yielding = true;
          await this.#host.yieldVideo(true);
          await this.#host.audioThinned(THIN_AUDIO_WAIT_MS);
        }
        if (job.offset - job.acked >= job.pace.window) { // wait for the server's word
          await sleep(WINDOW_WAIT_MS);
          continue;
        }
        const piece = bytes.subarray(job.offset, job.offset + job.pace.chunk());
        if (!this.#host.sendBinary(frame(UPLOAD, job.captureId, job.offset, piece))) break; // resume() goes on
        job.pace.sent(job.offset, job.offset + piece.length);
        this.bytesSent += piece.length;
        job.offset += piece.length;
      }
    } finally {
      job.running = false;
    }
  }

  /** Our camera sends again once no upload is left (the server confirmed the last). */
  #maybeUnyield() {
    if (this.#yielding && this.#uploads.size === 0) {
      this.#yielding = false;
      this.#host.yieldVideo(false);
    }
  }

  /** Whether Chrome's estimate of our uplink is thin (below YIELD_BELOW_BPS). */
  async #thinUplink() {
    const now = performance.now();
    const pc = this.#host.publisherPc();
    if (pc && now - this.#uplink.at >= STATS_MS) {
      this.#uplink.at = now;
      try {
        (await pc.getStats()).forEach((s) => {
          if (s.type === "candidate-pair" && s.nominated && s.availableOutgoingBitrate) {
            this.#uplink.bps = s.availableOutgoingBitrate;
          }
        });
      } catch { /* a closed connection: keep the last reading */ }
    }
    return this.#uplink.bps > 0 && this.#uplink.bps < YIELD_BELOW_BPS;
  }

  /**
   * After a join, an admission or a reconnection: uploads continue from the
   * server's offset (kept in IndexedDB across a reload), downloads from ours.
   */
  async resume() {
    const key = this.#key();
    if (!key) return;
    for (const stored of await loadUploads(key)) {
      if (!this.#uploads.has(stored.captureId)) this.#job(stored.captureId, key, stored.blob, {});
    }
    for (const job of [...this.#uploads.values()]) {
      if (job.key !== key) continue;
      try {
        const reply = await this.#host.request("capture_resume", {
          capture_id: job.captureId, thin_uplink: await this.#thinUplink(),
        });
        this.resumed.push({ captureId: job.captureId, offset: reply.offset, bytesSentBefore: this.bytesSent });
        job.offset = job.acked = reply.offset;
        job.pace.lost();
        if (reply.complete) this.#uploaded(job.captureId);
        else this.#run(job);
      } catch (err) {
        if (err?.code !== "not_found") continue; // the connection went again: the next resume()
        this.#uploads.delete(job.captureId); // the server lost it (expired, restarted)
        deleteUpload(job.captureId);
        this.#maybeUnyield();
        this.#host.emit("capture-failed", { capture_id: job.captureId, code: err.code, message: err.message });
        job.fail(err);
      }
    }
    if (this.#fetching) this.#fetch(this.#fetching);
  }

  #uploaded(captureId) {
    const job = this.#uploads.get(captureId);
    if (!job) return;
    this.#uploads.delete(captureId);
    deleteUpload(captureId);
    this.#maybeUnyield();
    job.done();
  }

  // -- what the server sends ---------------------------------------------------------------

  /**
   * A capture_* event (before the session emits it). Returns the detail to emit,
   * or null when this module emits it itself.
   * @param {any} msg
   */
  onEvent(msg) {
    const mine = this.#host.me()?.participantId;
    if (typeof msg.e2ee === "number" && msg.note) { // sealed: the clear note comes with capture-received
      msg = { ...msg, note: undefined, sealed_note: msg.note };
    }
    switch (msg.type) {
      case "capture_requested":
        if (typeof msg.max_seconds === "number") this.maxClipSeconds = msg.max_seconds;
        return msg;
      case "capture_progress": {
        const job = this.#uploads.get(msg.capture_id);
        if (job) {
          job.acked = Math.max(job.acked, msg.offset);
          job.pace.acked(msg.offset);
        }
        return { ...msg, direction: "up", mine: Boolean(job) };
      }
      case "capture_ready": {
        const job = this.#uploads.get(msg.capture_id);
        if (job || msg.from === mine) {
          this.#uploaded(msg.capture_id);
          if (job) job.blob.arrayBuffer().then((data) => this.#arrived(msg, new Uint8Array(data)));
        } else if (!this.received.has(msg.capture_id) && !this.#downloads.has(msg.capture_id)) {
          this.#downloads.set(msg.capture_id, { info: msg, data: new Uint8Array(msg.size), have: 0, parts: new Map() });
          this.#queue.push(msg.capture_id);
          this.#next();
        }
        return msg;
      }
      case "error":
        if (msg.code === "capture_offset" && this.#uploads.has(msg.capture_id)) {
          const job = /** @type {UploadJob} */ (this.#uploads.get(msg.capture_id));
          // the server's word: send from there (once: the chunks already in flight
          // behind the refused one are refused at that same offset too)
          if (job.rewoundTo !== msg.offset) {
            job.rewoundTo = msg.offset;
            job.offset = job.acked = msg.offset;
            job.pace.lost();
            this.#run(job);
          }
        } else if (msg.code === "capture_corrupt" && this.#uploads.has(msg.capture_id)) {
          const job = /** @type {UploadJob} */ (this.#uploads.get(msg.capture_id));
          this.#uploads.delete(msg.capture_id);
          deleteUpload(msg.capture_id);
          this.#maybeUnyield();
          job.fail(new DigiclinicError(msg.code, msg.message));
        }
        return msg;
      default:
        return msg;
    }
  }

  /** A binary frame: a chunk of a capture we fetch. @param {ArrayBuffer} data */
  onBinary(data) {
    const view = new Uint8Array(data);
    if (view.length < 10 || view[0] !== DOWNLOAD) return;
    const idLength = view[1];
    const id = new TextDecoder().decode(view.subarray(2, 2 + idLength));
    const offset = Number(new DataView(data, 2 + idLength, 8).getBigUint64(0));
    const bytes = view.subarray(10 + idLength);
    const download = this.#downloads.get(id);
    if (!download || offset + bytes.length > download.data.length) return;
    if (!download.parts.has(offset)) {
      download.data.set(bytes, offset);
      download.parts.set(offset, bytes.length);
      download.have += bytes.length;
    }
    this.#host.emit("capture-progress", {
      capture_id: id, offset: download.have, size: download.data.length, direction: "down", mine: true,
    });
    if (download.have >= download.data.length) this.#downloaded(id);
  }

  async #downloaded(id) {
    const download = this.#downloads.get(id);
    if (!download) return;
    this.#downloads.delete(id);
    this.#fetching = null;
    const digest = await hex(await crypto.subtle.digest("SHA-256", download.data));
    if (digest !== download.info.sha256) {
      this.#host.emit("capture-failed", { capture_id: id, code: "capture_corrupt", message: "SHA-256 mismatch" });
    } else {
      await this.#arrived(download.info, download.data);
    }
    this.#next();
  }

  /**
   * A whole capture (ours or another's): decrypted if it is end-to-end encrypted, then `capture-received`.
   * @param {any} info  its `capture_ready`
   * @param {Uint8Array<ArrayBuffer>} data
   */
  async #arrived(info, data) {
    const id = info.capture_id;
    if (typeof info.e2ee === "number") {
      try {
        data = await this.#host.e2ee.openCapture(data);
        const note = info.sealed_note ?? info.note;
        info = { ...info, note: note ? await this.#host.e2ee.openText(note) : undefined, sealed_note: undefined };
      } catch (err) {
        this.#host.emit("capture-failed", { capture_id: id, code: "e2ee_decrypt_failed", message: String(err?.message ?? err) });
        return;
      }
    }
    const blob = new Blob([data], { type: info.mime });
    this.received.set(id, { info, blob });
    this.#host.emit("capture-received", { capture_id: id, blob, info });
  }

  #next() {
    if (this.#fetching || this.#closed) return;
    const id = this.#queue.shift();
    if (id) this.#fetch(id);
  }

  /** Ask for the rest of a capture: from the first byte we do not have. @param {string} id */
  #fetch(id) {
    const download = this.#downloads.get(id);
    if (!download) { this.#fetching = null; this.#next(); return; }
    this.#fetching = id;
    let offset = 0;
    while (download.parts.has(offset)) offset += /** @type {number} */ (download.parts.get(offset));
    this.#host.request("capture_fetch", { capture_id: id, offset }).catch((err) => {
      if (err?.code === "not_found") {
        this.#downloads.delete(id);
        this.#fetching = null;
        this.#host.emit("capture-failed", { capture_id: id, code: err.code, message: err.message });
        this.#next();
      } // otherwise the connection went: resume() fetches again
    });
  }

  /** The session ended: uploads stay in IndexedDB for a reload of this page. */
  close() {
    this.#closed = true;
    this.#uploads.clear();
    this.#maybeUnyield();
    this.#downloads.clear();
    this.#queue = [];
  }

  #key() {
    const me = this.#host.me();
    return me ? `${me.room}|${me.identity}` : "";
  }
}

/** A chunk frame: kind, id length, id, offset (uint64 BE), bytes. */
function frame(kind, id, offset, bytes) {
  const idBytes = new TextEncoder().encode(id);
  const out = new Uint8Array(10 + idBytes.length + bytes.length);
  out[0] = kind;
  out[1] = idBytes.length;
  out.set(idBytes, 2);
  new DataView(out.buffer).setBigUint64(2 + idBytes.length, BigInt(offset));
  out.set(bytes, 10 + idBytes.length);
  return out;
}

/** @param {ArrayBuffer} buffer */
async function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {number} ms */
function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

// -- IndexedDB: unfinished uploads survive a reload (never sent anywhere else) --------

/** @returns {Promise<IDBDatabase|null>} */
function openDb() {
  return new Promise((resolve) => {
    if (typeof indexedDB === "undefined") { resolve(null); return; }
    const open = indexedDB.open(DB_NAME, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE, { keyPath: "captureId" });
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => resolve(null); // private mode and the like: no resumption across reloads
  });
}

/** @param {(store: IDBObjectStore) => IDBRequest|void} action @returns {Promise<any>} */
async function withStore(mode, action) {
  const db = await openDb();
  if (!db) return null;
  return new Promise((resolve) => {
    const tx = db.transaction(STORE, mode);
    const request = action(tx.objectStore(STORE));
    tx.oncomplete = () => { db.close(); resolve(request ? request.result : null); };
    tx.onerror = tx.onabort = () => { db.close(); resolve(null); };
  });
}

function saveUpload(record) { return withStore("readwrite", (store) => { store.put(record); }); }
function deleteUpload(captureId) { return withStore("readwrite", (store) => { store.delete(captureId); }); }

/** @param {string} key @returns {Promise<Array<{captureId: string, key: string, blob: Blob}>>} */
async function loadUploads(key) {
  const all = (await withStore("readonly", (store) => store.getAll())) ?? [];
  return all.filter((/** @type {any} */ r) => r.key === key);
}
