// Layout defects of a page, read from the DOM (tests/browser/layout.py runs it).
//
// Returns a list of problems, each a short sentence naming the element:
//   - text cut: a text's box sticks out of its own element's box, or out of an
//     ancestor that clips it (overflow hidden/clip), or out of the window;
//   - a text input whose placeholder or value does not fit its box;
//   - overlapping controls: two visible buttons, inputs or links whose boxes
//     intersect (one inside the other is a composed control, not a defect);
//   - overlapping texts: two different texts drawn over each other;
//   - controls or texts outside the window (cut by the screen's edge).
// Open shadow roots are walked too. Visually hidden text for screen readers
// (1x1 px, clipped) and elements that are not rendered are skipped.
(() => {
  const TOLERANCE = 1.5; // px: sub-pixel rounding
  const problems = [];
  const viewport = { left: 0, top: 0, right: window.innerWidth, bottom: window.innerHeight };

  const describe = (el) => {
    const id = el.id ? `#${el.id}` : "";
    const cls = typeof el.className === "string" && el.className.trim()
      ? `.${el.className.trim().split(/\s+/).slice(0, 2).join(".")}` : "";
    const text = (el.innerText ?? el.textContent ?? "").trim().replace(/\s+/g, " ").slice(0, 40);
    return `<${el.tagName.toLowerCase()}${id}${cls}>${text ? ` "${text}"` : ""}`;
  };

  /** Every element of the document and of the open shadow roots, in tree order. */
  const all = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      all.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);

  const parentOf = (el) => el.parentElement ?? el.getRootNode()?.host ?? null;

  const srOnly = (el) => {
    for (let e = el; e; e = parentOf(e)) {
      const st = getComputedStyle(e);
      const r = e.getBoundingClientRect();
      if ((st.clip && st.clip !== "auto") || (st.clipPath && st.clipPath !== "none")) {
        if (r.width <= 2 || r.height <= 2) return true;
      }
      if (st.position === "absolute" && r.width <= 1 && r.height <= 1) return true;
    }
    return false;
  };

  const shown = (el) => el.checkVisibility?.({ checkOpacity: true, checkVisibilityCSS: true }) !== false
    && el.getClientRects().length > 0;

  const outside = (inner, outer, axes = "xy") => (
    (axes.includes("x") && (inner.left < outer.left - TOLERANCE || inner.right > outer.right + TOLERANCE))
    || (axes.includes("y") && (inner.top < outer.top - TOLERANCE || inner.bottom > outer.bottom + TOLERANCE)));

  const intersects = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > TOLERANCE
    && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > TOLERANCE;

  const union = (rects) => rects.reduce((u, r) => ({
    left: Math.min(u.left, r.left), top: Math.min(u.top, r.top),
    right: Math.max(u.right, r.right), bottom: Math.max(u.bottom, r.bottom),
  }), { left: Infinity, top: Infinity, right: -Infinity, bottom: -Infinity });

  /** The box text may use: the padding box (overflowing into the padding is still inside). */
  const contentBox = (el) => {
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    const bl = parseFloat(st.borderLeftWidth) || 0, br = parseFloat(st.borderRightWidth) || 0;
    const bt = parseFloat(st.borderTopWidth) || 0, bb = parseFloat(st.borderBottomWidth) || 0;
    return { left: r.left + bl, right: r.right - br, top: r.top + bt, bottom: r.bottom - bb };
  };

  /**
   * Ancestors that clip the element's content, with the axes they clip on: up
   * to the nearest scroll container of that axis (what it hides can be
   * scrolled to, so it is not cut).
   */
  const clippers = (el) => {
    const found = [];
    let scrollsX = false, scrollsY = false;
    for (let e = parentOf(el); e && !(scrollsX && scrollsY); e = parentOf(e)) {
      const st = getComputedStyle(e);
      const clipsX = st.overflowX === "hidden" || st.overflowX === "clip";
      const clipsY = st.overflowY === "hidden" || st.overflowY === "clip";
      const axes = (clipsX && !scrollsX ? "x" : "") + (clipsY && !scrollsY ? "y" : "");
      if (axes) found.push([e, axes]);
      scrollsX ||= st.overflowX === "auto" || st.overflowX === "scroll";
      scrollsY ||= st.overflowY === "auto" || st.overflowY === "scroll";
    }
    return found;
  };

  /** In a container that scrolls sideways: may lie beyond the window's edge. */
  const scrollsSideways = (el) => {
    for (let e = parentOf(el); e; e = parentOf(e)) {
      const x = getComputedStyle(e).overflowX;
      if (x === "auto" || x === "scroll") return e.scrollWidth > e.clientWidth;
    }
    return false;
  };

  /**
   * Whether what is at `rect` is drawn on top: "shown", "hidden" (wholly under
   * something else: a panel over it, scrolled out of its container) or the
   * element that covers part of it. Points outside the window are not looked at.
   */
  const cover = (el, rect) => {
    const root = el.getRootNode();
    // the part of the window its scroll containers show (what is scrolled away is not covered)
    let view = { ...viewport };
    for (let e = parentOf(el); e; e = parentOf(e)) {
      const st = getComputedStyle(e);
      if (![st.overflowX, st.overflowY].some((o) => o === "auto" || o === "scroll")) continue;
      const r = contentBox(e);
      view = { left: Math.max(view.left, r.left), top: Math.max(view.top, r.top),
               right: Math.min(view.right, r.right), bottom: Math.min(view.bottom, r.bottom) };
    }
    const xs = [0.25, 0.5, 0.75].map((f) => rect.left + f * (rect.right - rect.left));
    const ys = [0.25, 0.5, 0.75].map((f) => rect.top + f * (rect.bottom - rect.top));
    const points = xs.flatMap((x) => ys.map((y) => [x, y]))
      .filter(([x, y]) => x >= view.left && y >= view.top && x < view.right && y < view.bottom);
    if (!points.length) return "shown";
    let covered = null, shownAt = 0;
    for (const [x, y] of points) {
      const hit = root.elementFromPoint(x, y);
      if (!hit || hit === el || el.contains(hit) || hit.contains(el)) shownAt += 1;
      else covered ??= hit;
    }
    if (!covered) return "shown";
    return shownAt === 0 ? "hidden" : covered;
  };

  // -- texts ------------------------------------------------------------------
  const texts = []; // {el, rect}
  for (const el of all) {
    if (["SCRIPT", "STYLE", "TITLE", "OPTION", "TEMPLATE", "NOSCRIPT"].includes(el.tagName)) continue;
    const nodes = [...el.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    if (!nodes.length || !shown(el) || srOnly(el)) continue;
    const rects = [];
    for (const node of nodes) {
      const range = document.createRange();
      range.selectNodeContents(node);
      rects.push(...[...range.getClientRects()].filter((r) => r.width > 0 && r.height > 0));
    }
    if (!rects.length) continue;
    const rect = union(rects);
    const covering = cover(el, rect);
    if (covering === "hidden") continue;
    if (covering !== "shown") {
      problems.push(`text partly covered by ${describe(covering).slice(0, 60)}: ${describe(el)}`);
      continue;
    }
    texts.push({ el, rect });
    const st = getComputedStyle(el);
    if (st.textOverflow === "ellipsis" && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`text cut with an ellipsis: ${describe(el)}`);
      continue;
    }
    if (outside(rect, contentBox(el), "x")) {
      problems.push(`text wider than its box: ${describe(el)} (${Math.round(rect.right - rect.left)} px in ${Math.round(el.getBoundingClientRect().width)} px)`);
      continue;
    }
    const clip = clippers(el).find(([c, axes]) => outside(rect, contentBox(c), axes));
    if (clip) {
      problems.push(`text cut by ${describe(clip[0]).slice(0, 60)}: ${describe(el)}`);
      continue;
    }
    if (outside(rect, viewport, "x") && !scrollsSideways(el)) problems.push(`text outside the window: ${describe(el)}`);
  }

  // two texts drawn over each other (a text inside another's element is the same text)
  for (let i = 0; i < texts.length; i += 1) {
    for (let j = i + 1; j < texts.length; j += 1) {
      const a = texts[i], b = texts[j];
      if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
      if (intersects(a.rect, b.rect)) problems.push(`texts overlap: ${describe(a.el)} and ${describe(b.el)}`);
    }
  }

  // -- controls ---------------------------------------------------------------
  const controls = all.filter((el) => el.matches("button, input:not([type=hidden]), select, textarea, a[href], [role=button]")
    && shown(el) && !srOnly(el) && cover(el, el.getBoundingClientRect()) !== "hidden");
  for (const el of controls) {
    const covering = cover(el, el.getBoundingClientRect());
    if (covering !== "shown") problems.push(`control partly covered by ${describe(covering).slice(0, 60)}: ${describe(el)}`);
  }
  const canvas = document.createElement("canvas").getContext("2d");
  for (const el of controls) {
    const r = el.getBoundingClientRect();
    if (outside(r, viewport, "x") && !scrollsSideways(el)) problems.push(`control outside the window: ${describe(el)}`);
    const clip = clippers(el).find(([c, axes]) => outside(r, contentBox(c), axes));
    if (clip) problems.push(`control cut by ${describe(clip[0]).slice(0, 60)}: ${describe(el)}`);
    if (el.matches("input[type=text], input:not([type]), input[type=search], input[type=email], textarea")) {
      const st = getComputedStyle(el);
      canvas.font = `${st.fontStyle} ${st.fontWeight} ${st.fontSize} ${st.fontFamily}`;
      const room = el.clientWidth - (parseFloat(st.paddingLeft) || 0) - (parseFloat(st.paddingRight) || 0);
      for (const text of [el.placeholder, el.value]) {
        if (text && canvas.measureText(text).width > room + 1) {
          problems.push(`input text cut: "${text.slice(0, 40)}" needs ${Math.ceil(canvas.measureText(text).width)} px, has ${Math.floor(room)} px`);
        }
      }
    }
  }
  for (let i = 0; i < controls.length; i += 1) {
    for (let j = i + 1; j < controls.length; j += 1) {
      const a = controls[i], b = controls[j];
      if (a.contains(b) || b.contains(a)) continue;
      if (intersects(a.getBoundingClientRect(), b.getBoundingClientRect())) {
        problems.push(`controls overlap: ${describe(a)} and ${describe(b)}`);
      }
    }
  }
  return [...new Set(problems)];
})()
