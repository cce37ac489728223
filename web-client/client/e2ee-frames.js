// End-to-end encrypted frames, format v1: the same bytes as e2ee/frames.py
// (docs/e2ee.md; tests/unit/test_e2ee_frames.py holds the test vectors the
// browser reproduces). Used by the transform worker (e2ee-worker.js) and by
// clinical captures. No DOM: it runs in a worker too.
//
//   clear header | AES-GCM ciphertext of the rest | tag (16) | IV (12) | key id (1)
//
// The clear header is what the SFU reads: 10 bytes of a VP8 key frame (frame
// tag, start code, width and height), 3 of a delta frame (frame tag), 1 of an
// Opus frame (TOC). It and the key id are the associated data.

export const KEY_BYTES = 32;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
export const TRAILER_BYTES = IV_BYTES + 1;
/** bytes added to each frame */
export const OVERHEAD = TAG_BYTES + TRAILER_BYTES;
const SALT = new TextEncoder().encode("digiclinic e2ee v1");

/** @typedef {"frame"|"capture"} Purpose  what a derived key encrypts (the HKDF info) */
/** @typedef {Uint8Array<ArrayBuffer>} Bytes */
/** @typedef {{id: number, raw: Bytes}} ConsultKey  a consult key as the portal gives it */

/** A frame that does not decrypt: `reason` "short", "no-key" or "wrong-key". */
export class FrameError extends Error {
  /** @param {"short"|"no-key"|"wrong-key"} reason @param {string} message */
  constructor(reason, message) {
    super(message);
    this.reason = reason;
  }
}

/**
 * A consult key from the portal: "<key id>.<base64url of 32 bytes>", or
 * {id, key} with `key` in base64url; TypeError if it is not one.
 * @param {string|{id: number, key: string}} value
 * @returns {ConsultKey}
 */
export function parseConsultKey(value) {
  const [idText, encoded] = typeof value === "string"
    ? value.trim().split(".", 2)
    : [String(value?.id ?? ""), value?.key ?? ""];
  const id = Number(idText);
  if (!/^\d{1,3}$/.test(idText) || id > 255 || typeof encoded !== "string" || !encoded) {
    throw new TypeError("a consult key is '<key id 0-255>.<base64url of 32 bytes>'");
  }
  let raw;
  try {
    const b64 = encoded.replace(/-/g, "+").replace(/_/g, "/");
    raw = Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
  } catch {
    throw new TypeError("a consult key's bytes are not base64url");
  }
  if (raw.length !== KEY_BYTES) throw new TypeError(`a consult key is ${KEY_BYTES} bytes, not ${raw.length}`);
  return { id, raw };
}

/**
 * The AES-256-GCM key for `purpose` (HKDF-SHA256 of the consult key).
 * @param {Bytes} raw
 * @param {Purpose} purpose
 * @returns {Promise<CryptoKey>}
 */
export async function deriveKey(raw, purpose) {
  const base = await crypto.subtle.importKey("raw", raw, "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: SALT, info: new TextEncoder().encode(purpose) },
    base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

/**
 * How many leading bytes of a frame stay in clear.
 * @param {"audio"|"video"} kind  video is VP8 (end-to-end encrypted rooms send no other codec)
 * @param {Uint8Array} bytes
 */
export function clearBytes(kind, bytes) {
  const wanted = kind === "audio" ? 1 : bytes.length && !(bytes[0] & 0x01) ? 10 : 3;
  return Math.min(wanted, bytes.length);
}

/**
 * @param {Bytes} header
 * @param {number} keyId
 */
function associated(header, keyId) {
  const aad = new Uint8Array(header.length + 1);
  aad.set(header);
  aad[header.length] = keyId;
  return aad;
}

/**
 * One frame in format v1.
 * @param {CryptoKey} key  the frame key (deriveKey(raw, "frame"))
 * @param {number} keyId
 * @param {"audio"|"video"} kind
 * @param {ArrayBuffer|Bytes} data
 * @param {Bytes} [iv]  test vectors only: an IV must never repeat
 * @returns {Promise<ArrayBuffer>}
 */
export async function encryptFrame(key, keyId, kind, data, iv = crypto.getRandomValues(new Uint8Array(IV_BYTES))) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  const n = clearBytes(kind, bytes);
  const header = bytes.subarray(0, n);
  const sealed = new Uint8Array(await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: associated(header, keyId) }, key, bytes.subarray(n)));
  const out = new Uint8Array(n + sealed.length + TRAILER_BYTES);
  out.set(header);
  out.set(sealed, n);
  out.set(iv, n + sealed.length);
  out[out.length - 1] = keyId;
  return out.buffer;
}

/**
 * The key id an encrypted frame names, or null if it is too short to be one.
 * @param {ArrayBuffer|Uint8Array} data
 */
export function frameKeyId(data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  return bytes.length >= OVERHEAD ? bytes[bytes.length - 1] : null;
}

/**
 * The encoded frame inside `data`; throws FrameError if it does not decrypt.
 * @param {Map<number, CryptoKey>} keys  frame keys by key id
 * @param {"audio"|"video"} kind
 * @param {ArrayBuffer|Bytes} data
 * @returns {Promise<ArrayBuffer>}
 */
export async function decryptFrame(keys, kind, data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length < OVERHEAD) throw new FrameError("short", "too short for an encrypted frame");
  const keyId = bytes[bytes.length - 1];
  const key = keys.get(keyId);
  if (!key) throw new FrameError("no-key", `no key ${keyId}`);
  const body = bytes.subarray(0, bytes.length - TRAILER_BYTES);
  const iv = bytes.subarray(bytes.length - TRAILER_BYTES, bytes.length - 1);
  const n = Math.min(clearBytes(kind, body), body.length - TAG_BYTES);
  const header = body.subarray(0, n);
  let plain;
  try {
    plain = new Uint8Array(await crypto.subtle.decrypt(
      { name: "AES-GCM", iv, additionalData: associated(header, keyId) }, key, body.subarray(n)));
  } catch {
    throw new FrameError("wrong-key", "authentication failed (a wrong key, or altered)");
  }
  const out = new Uint8Array(n + plain.length);
  out.set(header);
  out.set(plain, n);
  return out.buffer;
}

const CAPTURE_AAD = new TextEncoder().encode("capture");

/**
 * A clinical capture (or its note) sealed under the capture key (deriveKey(raw, "capture")):
 * ciphertext | tag | IV | key id, associated data "capture" || key id (e2ee/frames.py).
 * @param {CryptoKey} key
 * @param {number} keyId
 * @param {Bytes} bytes
 * @returns {Promise<Bytes>}
 */
export async function encryptCapture(key, keyId, bytes) {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const sealed = new Uint8Array(await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: associated(CAPTURE_AAD, keyId) }, key, bytes));
  const out = new Uint8Array(sealed.length + TRAILER_BYTES);
  out.set(sealed);
  out.set(iv, sealed.length);
  out[out.length - 1] = keyId;
  return out;
}

/**
 * The capture inside `bytes`; throws FrameError if it does not decrypt.
 * @param {Map<number, CryptoKey>} keys  capture keys by key id
 * @param {Bytes} bytes
 * @returns {Promise<Bytes>}
 */
export async function decryptCapture(keys, bytes) {
  if (bytes.length < OVERHEAD) throw new FrameError("short", "too short for an encrypted capture");
  const keyId = bytes[bytes.length - 1];
  const key = keys.get(keyId);
  if (!key) throw new FrameError("no-key", `no key ${keyId}`);
  try {
    return new Uint8Array(await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: bytes.subarray(bytes.length - TRAILER_BYTES, bytes.length - 1),
        additionalData: associated(CAPTURE_AAD, keyId) },
      key, bytes.subarray(0, bytes.length - TRAILER_BYTES)));
  } catch {
    throw new FrameError("wrong-key", "authentication failed (a wrong key, or altered)");
  }
}
