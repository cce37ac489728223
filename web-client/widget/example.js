// Example portal page for <digiclinic-consult> (also the browser tests' page).
// Creates the element from the query string and records, for tests, every
// widget event and every Content-Security-Policy violation in `window.widgetTest`.

const params = new URLSearchParams(location.search);
const widgetTest = { events: [], violations: [], element: null };
/** @type {any} */ (window).widgetTest = widgetTest;

document.addEventListener("securitypolicyviolation", (e) => {
  widgetTest.violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});

const element = /** @type {import("./digiclinic-consult.js").DigiclinicConsult} */ (
  document.createElement("digiclinic-consult"));
element.token = params.get("token") ?? ""; // a property: the token stays out of the DOM
// the consult key of an end-to-end encrypted consult: the portal hands it over as a
// property; here from the fragment (#e2ee=<key id>.<base64url>), which never reaches a server
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("e2ee")) element.e2eeKey = fragment.get("e2ee");
if (params.get("server")) element.setAttribute("server", params.get("server"));
if (params.get("lang")) element.setAttribute("lang", params.get("lang"));
for (const [param, attribute] of [["skip", "skip-precall"], ["relay", "relay"], ["audioOnly", "audio-only"]]) {
  if (["1", "true", "yes"].includes(params.get(param) ?? "")) element.setAttribute(attribute, "");
}
const events = [
  "ready", "state", "lobby", "joined", "left", "participant-joined", "participant-left",
  "recording-state", "error", "reconnecting", "reconnected", "mute-state", "audio-only", "pin",
  "capture-request", "capture-requested", "capture-sent", "capture-ready", "capture-received",
  "capture-stored", "capture-viewed", "capture-consent", "capture-offer", "capture-failed", "e2ee",
];
for (const name of events) {
  element.addEventListener(`digiclinic-${name}`, (e) => widgetTest.events.push({ type: name, detail: /** @type {CustomEvent} */ (e).detail }));
}
widgetTest.element = element;
document.getElementById("host").append(element);

export {}; // a module (loaded with type="module")
