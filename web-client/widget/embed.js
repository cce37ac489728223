// Iframe mode: embed.html?server=&lang=&parentOrigin=#token=...
//
// Hosts <digiclinic-consult> and bridges it to the embedding page with
// postMessage (docs/widget.md, "Iframe mode"):
// - events go to window.parent, only to `parentOrigin` (never "*"):
//     {type: "digiclinic:event", event: "joined", detail: {...}}
// - commands are accepted only from window.parent at `parentOrigin`:
//     {type: "digiclinic:command", command: "mute" | "unmute" | "leave" | "audio-only", enabled?: boolean}
//     {type: "digiclinic:command", command: "e2ee-key", key: "<key id>.<base64url>"} (a new consult key)
// Without a valid `parentOrigin` the widget works but posts and accepts nothing.
//
// The token may be in the fragment (#token=..., recommended: never sent to
// the server or in a Referer) or in the query string (?token=...). The consult
// key of an end-to-end encrypted consult is in the fragment only (#e2ee=...).

import "./digiclinic-consult.js";

const EVENTS = [
  "ready", "state", "lobby", "joined", "left", "participant-joined", "participant-left",
  "recording-state", "error", "reconnecting", "reconnected", "mute-state", "audio-only", "pin", "e2ee",
];

const query = new URLSearchParams(location.search);
const fragment = new URLSearchParams(location.hash.slice(1));
const token = fragment.get("token") ?? query.get("token") ?? "";
const e2eeKey = fragment.get("e2ee");
if (fragment.has("token") || fragment.has("e2ee")) history.replaceState(null, "", location.pathname + location.search);

/** The parent's origin, if `parentOrigin` is exactly an http(s) origin. */
function parentOriginParam(value) {
  if (!value) return null;
  try {
    const url = new URL(value);
    if (!["http:", "https:"].includes(url.protocol) || url.origin !== value) return null;
    return url.origin;
  } catch {
    return null;
  }
}

const parentOrigin = parentOriginParam(query.get("parentOrigin"));
const embedded = window.parent !== window;
const embedTest = { violations: [], commands: [], refused: [] };
/** @type {any} */ (window).digiclinicEmbed = embedTest;
document.addEventListener("securitypolicyviolation", (e) => {
  embedTest.violations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
if (embedded && !parentOrigin) {
  console.warn("digiclinic embed: no valid parentOrigin: no events are posted, no commands accepted");
}

const element = /** @type {import("./digiclinic-consult.js").DigiclinicConsult} */ (
  document.createElement("digiclinic-consult"));
element.token = token;
if (e2eeKey) element.e2eeKey = e2eeKey;
if (query.get("server")) element.setAttribute("server", query.get("server"));
if (query.get("lang")) element.setAttribute("lang", query.get("lang"));
for (const [param, attribute] of [["skip", "skip-precall"], ["relay", "relay"], ["audioOnly", "audio-only"]]) {
  if (["1", "true", "yes"].includes(query.get(param) ?? "")) element.setAttribute(attribute, "");
}

function post(event, detail) {
  if (!embedded || !parentOrigin) return;
  // structured clone: plain data only
  window.parent.postMessage({ type: "digiclinic:event", event, detail: JSON.parse(JSON.stringify(detail ?? {})) }, parentOrigin);
}

for (const name of EVENTS) {
  element.addEventListener(`digiclinic-${name}`, (e) => post(name, /** @type {CustomEvent} */ (e).detail));
}

const COMMANDS = {
  mute: () => element.mute(),
  unmute: () => element.unmute(),
  leave: () => element.leave(),
  "audio-only": (data) => element.setAudioOnly(data.enabled !== false),
  "e2ee-key": (data) => { element.e2eeKey = data.key; },
};

window.addEventListener("message", (event) => {
  const data = event.data;
  if (!data || typeof data !== "object" || data.type !== "digiclinic:command") return;
  if (!parentOrigin || event.origin !== parentOrigin || event.source !== window.parent) {
    embedTest.refused.push({ origin: event.origin, command: String(data.command) });
    return;
  }
  const run = COMMANDS[data.command];
  if (!run) {
    post("error", { code: "unknown_command", message: `unknown command ${String(data.command).slice(0, 40)}` });
    return;
  }
  embedTest.commands.push(data.command);
  Promise.resolve(run(data)).catch((err) => post("error", { code: err.code ?? "command_failed", message: err.message }));
});

document.body.append(element);
