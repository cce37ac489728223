// What the <digiclinic-consult> widget knows about the call it is in: the
// people, our own media, what is paused and why, the chat's and the pin's
// state. One object per call (a new one when joining again), read by every
// part of the widget and changed only through the parts' own methods; the
// element exposes it read-only as `element.call` for portals and tests.

/**
 * @typedef {object} RemoteMedia a track we receive
 * @property {MediaStreamTrack} track
 * @property {string} trackId
 * @property {MediaStream} [stream]
 * @property {string} [source]
 * @property {HTMLAudioElement} [element] the <audio> playing it (audio only)
 * @property {RTCRtpReceiver} [receiver]
 */

/**
 * @typedef {object} ParticipantInfo the server's view of a participant (docs/protocol.md)
 * @property {string} id
 * @property {string} name
 * @property {string} role
 * @property {{id: string, kind: string, source: string, muted: boolean}[]} [producers]
 * @property {boolean} [audio_only]
 * @property {boolean} [on_hold]
 */

/**
 * @typedef {object} Person the widget's view of a remote participant
 * @property {ParticipantInfo} info
 * @property {RemoteMedia|null} camera
 * @property {RemoteMedia|null} audio
 * @property {RemoteMedia|null} screen
 * @property {RemoteMedia|null} [screenAudio]
 * @property {"good"|"fair"|"poor"|null} quality from getStats
 * @property {object} [metrics]
 * @property {Map<number, object>} loss getStats counters per SSRC, for deltas
 */

/** @typedef {{track: MediaStreamTrack|null, trackId: string|null}} LocalTrack */

export class CallState {
  /** @param {{micMuted?: boolean}} [options] a microphone muted before the call stays muted */
  constructor({ micMuted = false } = {}) {
    /** @type {Map<string, Person>} participantId -> person */
    this.people = new Map();
    /** @type {{id: string, name: string, role: string}[]} the lobby, for admitters */
    this.waiting = [];
    this.micMuted = micMuted;
    this.cameraOff = false;
    this.audioOnly = false;
    /** @type {LocalTrack|null} */
    this.mic = null;
    /** @type {LocalTrack|null} */
    this.cam = null;
    /** @type {{stream: MediaStream, trackIds: string[]}|null} our screen share */
    this.share = null;
    /** @type {Set<string>} remote video track ids we paused (audio-only mode) */
    this.pausedByUs = new Set();
    /** @type {Map<string, string>} remote video track id -> the server's reason for pausing it */
    this.pausedByServer = new Map();
    /** @type {Set<string>} participants whose own uplink is weak (`publisher_link`) */
    this.weakUplinks = new Set();
    /** @type {string|null} participant whose camera is pinned (shown large) */
    this.pinned = null;
    /** @type {Map<string, number>} "name|role" -> when that person lost the connection */
    this.recentlyDropped = new Map();
    this.chatOpen = false;
    this.unread = 0;
    /** @type {{quality: "good"|"fair"|"poor"|null, metrics?: object}} our own link */
    this.self = { quality: null };
    /** the camera comes back when audio-only mode ends (it was on, or wanted at join) */
    this.cameraBeforeAudioOnly = false;
    this.camWantedAtJoin = false;
    /** @type {MediaStreamTrack[]|null} published once a reconnection completes */
    this.publishAfterReconnect = null;
  }

  /**
   * The view of a remote participant, created on first use.
   * @param {ParticipantInfo} info
   * @returns {Person}
   */
  person(info) {
    let person = this.people.get(info.id);
    if (!person) {
      person = { info, camera: null, audio: null, screen: null, quality: null, loss: new Map() };
      this.people.set(info.id, person);
    } else {
      person.info = info;
    }
    return person;
  }

  /**
   * The person whose camera or screen is `trackId`.
   * @param {string} trackId
   * @returns {Person|null}
   */
  ownerOf(trackId) {
    for (const person of this.people.values()) {
      if (person.camera?.trackId === trackId || person.screen?.trackId === trackId) return person;
    }
    return null;
  }

  /** Someone lost the connection: re-admitted at once if back in the lobby soon. */
  dropped(/** @type {Person} */ person) {
    this.recentlyDropped.set(`${person.info.name}|${person.info.role}`, Date.now());
  }
}
