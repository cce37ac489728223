// The RTCPeerConnection factory of a ConsultSession (../digiclinic-client.js):
// both connections (publisher and subscriber) use the same ICE configuration;
// no trickle ICE, so each negotiation waits for ICE gathering.
//
// Owns: the ICE configuration (`iceServers`, `iceTransportPolicy`,
// `gatherTimeout`) and whether the server's ICE (TURN) servers replace it.
// Interface: create(name), gathered(pc), learnIceServers(servers). A new
// connection reports each of its connection-state changes to `onStateChange`.

/** @typedef {import("./protocol.js").ServerIceServer} ServerIceServer */

/**
 * @typedef {object} PeerOptions
 * @property {RTCIceServer[]} [iceServers]  undefined: take the server's list
 * @property {RTCIceTransportPolicy} iceTransportPolicy
 * @property {number} gatherTimeout  ms to wait for ICE gathering
 * @property {(name: string, pc: RTCPeerConnection) => void} onStateChange
 */

export class PeerFactory {
  /** @param {PeerOptions} options */
  constructor({ iceServers, iceTransportPolicy, gatherTimeout, onStateChange }) {
    /** @type {RTCIceServer[]} */
    this.iceServers = iceServers ?? [];
    this.iceTransportPolicy = iceTransportPolicy;
    this.gatherTimeout = gatherTimeout;
    this.onStateChange = onStateChange;
    this.fromServer = iceServers === undefined; // then take the server's (TURN) list
  }

  /**
   * A new connection (`name`: "publisher" or "subscriber", for its events).
   * @param {"publisher"|"subscriber"} name
   * @returns {RTCPeerConnection}
   */
  create(name) {
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers, iceTransportPolicy: this.iceTransportPolicy,
      bundlePolicy: "max-bundle", // one transport: the server reads the first m-line's only
    });
    pc.addEventListener("connectionstatechange", () => this.onStateChange(name, pc));
    return pc;
  }

  /**
   * No trickle ICE: we wait for gathering to complete and send one SDP with
   * all our candidates. The server does not trickle either, so each
   * negotiation is one round trip and no `ice_candidate` can race ahead of
   * the `publish` that creates the server's connection. Host candidates take
   * milliseconds, STUN/TURN (policy "relay") one round trip to that server;
   * `gatherTimeout` bounds a server that never answers (we then send what we
   * have). Renegotiations reuse the bundled transport and do not wait.
   * @param {RTCPeerConnection} pc
   * @returns {Promise<void>}
   */
  gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      const check = () => { if (pc.iceGatheringState === "complete") finish(); };
      const timer = setTimeout(finish, this.gatherTimeout);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  /**
   * The server's ICE servers (`joined`, `admitted`), unless ours were given.
   * @param {ServerIceServer[]} [servers]
   */
  learnIceServers(servers) {
    if (!this.fromServer || !Array.isArray(servers)) return;
    // keep the RTCIceServer members only (the server adds e.g. `ttl`)
    this.iceServers = servers.map(({ urls, username, credential }) =>
      /** @type {RTCIceServer} */ (/** @type {unknown} */ (Object.fromEntries(
        Object.entries({ urls, username, credential }).filter(([, v]) => v != null)))));
  }
}
