// Protocol basics shared by the ConsultSession modules (../digiclinic-client.js
// re-exports them): the protocol version, the error type and the WebSocket URL.

export const PROTOCOL_VERSION = 1;

/** A request refused by the server (its error `code`) or failed locally. */
export class DigiclinicError extends Error {
  constructor(code, message, reply = null) {
    super(`${code}: ${message}`);
    this.name = "DigiclinicError";
    this.code = code;
    this.reply = reply;
  }
}

/** `ws[s]://host:port/ws?v=1` from a ws(s) or http(s) URL. */
export function websocketUrl(url) {
  const u = new URL(url, globalThis.location?.href);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  if (u.pathname === "/") u.pathname = "/ws";
  if (!u.searchParams.has("v")) u.searchParams.set("v", String(PROTOCOL_VERSION));
  return u.href;
}
