// Demo page (GET / redirects here when the server runs without portal
// issuers): pick a role and a room, get a development token from
// /demo/token, and show the consult widget.

const form = /** @type {HTMLFormElement} */ (document.getElementById("start"));
/** @param {string} name */
const field = (name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name));
const errorLine = document.getElementById("error");
const DEFAULT_NAMES = { patient: "Amina (patient)", health_worker: "Nurse Grace", specialist: "Dr. Okafor" };

const params = new URLSearchParams(location.search);
for (const name of ["room", "name", "lang"]) {
  if (params.get(name)) field(name).value = params.get(name);
}
// the console link (demo mode, ?rooms=3) carries the chosen language
const consoleLink = /** @type {HTMLAnchorElement} */ (document.getElementById("console-link"));
function updateConsoleLink() {
  const url = new URL(consoleLink.href);
  const lang = field("lang").value;
  if (lang) url.searchParams.set("lang", lang);
  else url.searchParams.delete("lang");
  consoleLink.href = url.pathname + url.search;
}
updateConsoleLink();
field("lang").addEventListener("change", updateConsoleLink);
if (params.get("role")) {
  const radio = /** @type {HTMLInputElement|null} */ (
    form.querySelector(`input[name="role"][value="${CSS.escape(params.get("role"))}"]`));
  if (radio) radio.checked = true;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errorLine.hidden = true;
  const data = new FormData(form);
  const role = String(data.get("role"));
  const room = String(data.get("room")).trim();
  const name = String(data.get("name")).trim() || DEFAULT_NAMES[role];
  // a fresh identity per tab: the server admits one connection per identity and room
  const identity = `${role}-${crypto.getRandomValues(new Uint32Array(1))[0].toString(36)}`;
  const query = new URLSearchParams({ room, identity, name, role });
  let reply;
  try {
    const response = await fetch(`/demo/token?${query}`, { credentials: "omit" });
    reply = await response.json();
    if (!response.ok) throw new Error(reply.message ?? `HTTP ${response.status}`);
  } catch (err) {
    errorLine.textContent = `Could not get a demo token: ${err.message}`;
    errorLine.hidden = false;
    return;
  }
  const widget = /** @type {import("../widget/digiclinic-consult.js").DigiclinicConsult} */ (
    document.createElement("digiclinic-consult"));
  widget.token = reply.token;
  if (data.get("lang")) widget.setAttribute("lang", String(data.get("lang")));
  document.getElementById("widget").replaceChildren(widget);
  document.body.classList.add("started");
  const roleName = form.querySelector(`input[name="role"][value="${role}"]`).parentElement.textContent.trim();
  const joinedAs = document.getElementById("joined-as");
  joinedAs.textContent = `${name} — ${roleName} — room "${room}"`;
  joinedAs.hidden = false;
  document.title = `${roleName} · ${room} · digiclinic demo`;
});
