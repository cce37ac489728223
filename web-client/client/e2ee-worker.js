// The encoded-frame transforms of an end-to-end encrypted consult
// (RTCRtpScriptTransform; e2ee.js creates this worker and talks to it).
//
// Senders: every frame is encrypted with the current send key (e2ee-frames.js);
// with no key yet, frames are dropped, never sent in clear. Receivers: a frame
// is decrypted with the key its key id names, and one that does not decrypt
// is dropped (the decoder asks for a key frame): never garbage on screen. A
// receiver whose sender does not encrypt (an optional room, a page without the
// key) passes its frames as they are. Each receiver's state ("ok", "no-key",
// "wrong-key") goes to the page when it changes.
//
// Messages in: {type: "key", id, raw}, {type: "send-with", id}, {type: "forget", id},
// {type: "clear-senders", ids}. Out: {type: "receive-state", participantId, kind, state},
// {type: "counts", ...} in reply to {type: "counts"}.

import { FrameError, decryptFrame, deriveKey, encryptFrame } from "./e2ee-frames.js";

/** @type {Map<number, CryptoKey>} frame keys by key id */
const keys = new Map();
/** @type {number|null} */
let sendKeyId = null;
/** @type {Set<string>} participants whose frames come in clear */
let clearSenders = new Set();
/** @type {Map<string, string>} participantId/kind -> the state last reported */
const states = new Map();
const counts = { encrypted: 0, decrypted: 0, dropped: 0, passed: 0 };
let chain = Promise.resolve();

const scope = /** @type {any} */ (self);

scope.onmessage = (/** @type {MessageEvent} */ { data }) => {
  // one at a time: a key is derived before the "send-with" that names it
  chain = chain.then(async () => {
    if (data.type === "key") keys.set(data.id, await deriveKey(data.raw, "frame"));
    else if (data.type === "send-with") sendKeyId = keys.has(data.id) ? data.id : sendKeyId;
    else if (data.type === "forget" && data.id !== sendKeyId) keys.delete(data.id);
    else if (data.type === "clear-senders") clearSenders = new Set(data.ids);
    else if (data.type === "counts") scope.postMessage({ type: "counts", ...counts, keys: [...keys.keys()], sendKeyId });
  }).catch((err) => scope.postMessage({ type: "failed", message: String(err?.message ?? err) }));
};

/**
 * @param {string} participantId
 * @param {string} kind
 * @param {string} state
 */
function report(participantId, kind, state) {
  const at = `${participantId}/${kind}`;
  if (states.get(at) === state) return;
  states.set(at, state);
  scope.postMessage({ type: "receive-state", participantId, kind, state });
}

/**
 * @param {"audio"|"video"} kind
 * @returns {Transformer<any, any>}
 */
function encrypting(kind) {
  return {
    async transform(frame, controller) {
      if (!frame.data.byteLength) { controller.enqueue(frame); return; }
      const key = sendKeyId === null ? undefined : keys.get(sendKeyId);
      if (!key || sendKeyId === null) { counts.dropped += 1; return; } // never in clear
      frame.data = await encryptFrame(key, sendKeyId, kind, frame.data);
      counts.encrypted += 1;
      controller.enqueue(frame);
    },
  };
}

/**
 * @param {"audio"|"video"} kind
 * @param {string} participantId
 * @returns {Transformer<any, any>}
 */
function decrypting(kind, participantId) {
  return {
    async transform(frame, controller) {
      if (clearSenders.has(participantId) || !frame.data.byteLength) {
        counts.passed += 1;
        controller.enqueue(frame);
        return;
      }
      try {
        frame.data = await decryptFrame(keys, kind, frame.data);
      } catch (err) {
        counts.dropped += 1;
        // a key id we do not have (yet: a rotation) is "no-key"; a key that fails is "wrong-key"
        const noKey = !keys.size || (err instanceof FrameError && err.reason === "no-key");
        report(participantId, kind, noKey ? "no-key" : "wrong-key");
        return;
      }
      counts.decrypted += 1;
      report(participantId, kind, "ok");
      controller.enqueue(frame);
    },
  };
}

scope.onrtctransform = (/** @type {any} */ { transformer }) => {
  const { side, kind, participantId } = transformer.options;
  const stream = new TransformStream(side === "send" ? encrypting(kind) : decrypting(kind, participantId));
  transformer.readable.pipeThrough(stream).pipeTo(transformer.writable).catch(() => {});
};
