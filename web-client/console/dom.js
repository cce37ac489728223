// Two small DOM helpers shared by the console's views (tile.js, lobby.js,
// page.js): creating an element, and finding one of the page's fixed
// elements with the type the caller expects. No state.

/**
 * A new element with an optional class and text.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * One of index.html's elements by id, checked to be of the expected class.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{new (): T, prototype: T}} type  e.g. HTMLButtonElement
 * @returns {T}
 */
export function byId(id, type) {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`console page: no #${id} (${type.name})`);
  return node;
}
