// What a page whose origin the server does not allow gets instead of the
// widget (signaling/origin_gate.py): a <digiclinic-consult> element that says
// so plainly, in the page's language, and fires `digiclinic-error` with the
// code `origin_not_allowed`. Without it such a portal would show an empty box
// and an error on the browser console only. Nothing else of the widget loads:
// the server refuses every other file of the web client to that origin but
// the string catalogue. Styles are set through the CSSOM (a strict
// style-src allows it; no stylesheet can load from here).

import { pickLanguage, translator } from "../i18n/catalogue.js";

const BOX = {
  display: "block", padding: "24px", borderRadius: "10px", background: "#0f1f29", color: "#f3f6f8",
  font: "16px/1.45 system-ui, sans-serif", border: "3px solid #ffb84d",
};

class RefusedConsult extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    const t = translator(pickLanguage(this.getAttribute("lang")));
    const root = this.attachShadow({ mode: "open" });
    const box = document.createElement("section");
    box.setAttribute("role", "alert");
    box.className = "dc-refused";
    Object.assign(box.style, BOX);
    const title = document.createElement("h2");
    title.textContent = t("refusedTitle");
    Object.assign(title.style, { margin: "0 0 8px", fontSize: "1.2rem" });
    const text = document.createElement("p");
    text.textContent = t("refusedText", { origin: location.origin });
    text.style.margin = "0";
    box.append(title, text);
    root.append(box);
    const message = `this page's origin (${location.origin}) is not in the server's allowed_origins`;
    console.error(`digiclinic: ${message}`);
    // after the portal's own listeners are attached (they usually come right after the element)
    queueMicrotask(() => this.dispatchEvent(new CustomEvent("digiclinic-error", {
      detail: { code: "origin_not_allowed", message }, bubbles: true, composed: true,
    })));
  }
}

if (!customElements.get("digiclinic-consult")) customElements.define("digiclinic-consult", RefusedConsult);
