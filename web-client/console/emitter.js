// A typed EventTarget (class Emitter): `on(type, listener)` gets the event's
// detail, typed from an event map, and returns its own unsubscribe function;
// `emit(type, detail)` dispatches a CustomEvent. Room extends it. No state.

/**
 * @template {Record<string, unknown>} Events  event name -> detail type
 */
export class Emitter extends EventTarget {
  /**
   * Listen to an event; returns a function that stops listening.
   * @template {keyof Events & string} K
   * @param {K} type
   * @param {(detail: Events[K]) => void} listener
   * @returns {() => void}
   */
  on(type, listener) {
    /** @param {Event} event */
    const handler = (event) => listener(/** @type {CustomEvent<Events[K]>} */ (event).detail);
    this.addEventListener(type, handler);
    return () => this.removeEventListener(type, handler);
  }

  /**
   * @template {keyof Events & string} K
   * @param {K} type
   * @param {Events[K]} detail
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
