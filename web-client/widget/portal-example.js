// Portal side of iframe mode: builds the iframe, listens for the widget's
// events (only from the digiclinic origin and only from that iframe), and
// sends commands (only to the digiclinic origin).
//
// Query string (for this example): digiclinic (the server's origin,
// e.g. https://digiclinic.example), token, lang, skip=1, readyTimeout (ms).
//
// A portal whose origin the digiclinic server does not list cannot be told
// from inside the frame (the browser refuses to show it: frame-ancestors),
// so the portal watches for the `ready` event and says so when it is late.

const params = new URLSearchParams(location.search);
const digiclinic = new URL(params.get("digiclinic") ?? location.origin).origin;

const src = new URL("/client/widget/embed.html", digiclinic);
src.searchParams.set("parentOrigin", location.origin);
for (const name of ["lang", "skip", "server"]) {
  if (params.get(name)) src.searchParams.set(name, params.get(name));
}
src.hash = new URLSearchParams({ token: params.get("token") ?? "" }).toString();

const iframe = document.createElement("iframe");
iframe.title = "Video consultation";
iframe.allow = "camera; microphone; display-capture; autoplay";
iframe.src = src.href;
document.getElementById("frame-host").append(iframe);

const portal = { events: [], violations: [] };
/** @type {any} */ (window).portalEvents = portal;
document.addEventListener("securitypolicyviolation", (e) => {
  portal.violations.push(`${e.violatedDirective} ${e.blockedURI}`);
});

const readyTimer = setTimeout(() => {
  document.getElementById("frame-error").hidden = false;
}, Number(params.get("readyTimeout") ?? 10000));

window.addEventListener("message", (event) => {
  if (event.origin !== digiclinic || event.source !== iframe.contentWindow) return;
  const data = event.data;
  if (data?.type !== "digiclinic:event") return;
  if (data.event === "ready") {
    clearTimeout(readyTimer);
    document.getElementById("frame-error").hidden = true;
  }
  portal.events.push({ origin: event.origin, event: data.event, detail: data.detail });
  const li = document.createElement("li");
  li.textContent = `${data.event} ${JSON.stringify(data.detail)}`;
  document.getElementById("events").append(li);
});

function command(name, extra = {}) {
  iframe.contentWindow.postMessage({ type: "digiclinic:command", command: name, ...extra }, digiclinic);
}

let audioOnly = false;
document.getElementById("mute").addEventListener("click", () => command("mute"));
document.getElementById("unmute").addEventListener("click", () => command("unmute"));
document.getElementById("leave").addEventListener("click", () => command("leave"));
document.getElementById("audio-only").addEventListener("click", () => {
  audioOnly = !audioOnly;
  command("audio-only", { enabled: audioOnly });
});

export {}; // a module (loaded with type="module")
