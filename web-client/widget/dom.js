// DOM helpers for the widget. Everything is built with createElement and
// textContent: no innerHTML, no inline style attributes, no string-to-code
// sinks, so the widget runs under a strict CSP, Trusted Types included.

/**
 * h("button", {class: "x", type: "button", onclick: fn, aria: {label: "..."}}, child, ...)
 * Attributes: `class`, `dataset` (object), `aria` (object -> aria-*),
 * `on<event>` (listeners), booleans (set when true), anything else via setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "aria") {
      for (const [name, v] of Object.entries(value)) if (v != null) el.setAttribute(`aria-${name}`, String(v));
    } else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key in el && typeof value !== "string") el[key] = value; // e.g. muted, autoplay, value
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const SVG = "http://www.w3.org/2000/svg";

// 24x24 outline icons (paths drawn for this widget), stroked with currentColor.
const ICONS = {
  mic: ["M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z", "M5 11a7 7 0 0 0 14 0", "M12 18v3"],
  micOff: ["M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z", "M5 11a7 7 0 0 0 14 0",
    "M12 18v3", "M3 3l18 18"],
  camera: ["M3 7h12v10H3z", "M15 10l6-3v10l-6-3"],
  cameraOff: ["M3 7h12v10H3z", "M15 10l6-3v10l-6-3", "M2 3l19 18"],
  screen: ["M3 4h18v12H3z", "M8 20h8", "M12 16v4", "M12 13V7", "M9 10l3-3 3 3"],
  chat: ["M4 5h16v11H9l-5 4z"],
  audio: ["M4 10v4", "M8 7v10", "M12 4v16", "M16 7v10", "M20 10v4"],
  video: ["M3 7h12v10H3z", "M15 10l6-3v10l-6-3"],
  leave: ["M10 5H5v14h5", "M14 8l4 4-4 4", "M18 12H9"],
  check: ["M5 12l4 4 10-10"],
  warn: ["M12 3l10 18H2z", "M12 10v5", "M12 17.5v.5"],
  cross: ["M6 6l12 12", "M18 6L6 18"],
  dots: ["M6 12h.01", "M12 12h.01", "M18 12h.01"],
  pin: ["M9 3h6", "M10 3v6l-3 4h10l-3-4V3", "M12 13v8"],
};

/** An aria-hidden inline SVG icon (decorative: the button carries the label). */
export function icon(name, className = "dc-icon") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  for (const d of ICONS[name] ?? ICONS.dots) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

/** "Amina Uwase" -> "AU" */
export function initials(name = "") {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  return (parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] ?? "?").slice(0, 2))
    .toUpperCase();
}
