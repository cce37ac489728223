// ConsultSession's RTCPeerConnections: creating them (both use the same ICE
// configuration), waiting for ICE gathering (no trickle ICE) and taking the
// server's ICE (TURN) servers. A mixin of ConsultSession (../digiclinic-client.js).

export const PeerConnections = (Base) => class PeerConnections extends Base {
  _createPc(name) {
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers, iceTransportPolicy: this.iceTransportPolicy,
      bundlePolicy: "max-bundle", // one transport: the server reads the first m-line's only
    });
    pc.addEventListener("connectionstatechange", () => {
      this._emit("connection-state", { pc: name, state: pc.connectionState });
      const current = pc === this.publisherPc || pc === this.subscriberPc;
      if (current && pc.connectionState === "failed") this._lost(`${name}_failed`);
    });
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
   */
  _gathered(pc) {
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

  _learnIceServers(servers) {
    if (!this._iceFromServer || !Array.isArray(servers)) return;
    // keep the RTCIceServer members only (the server adds e.g. `ttl`)
    this.iceServers = servers.map(({ urls, username, credential }) =>
      Object.fromEntries(Object.entries({ urls, username, credential }).filter(([, v]) => v != null)));
  }
};
