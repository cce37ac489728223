// The roster of a ConsultSession (../digiclinic-client.js): the other active
// participants, kept up to date from the server's events before the session
// emits them.
//
// Owns: `participants`, a Map of participant id -> our own copy of its info
// (whose `producers`, `audio_only` and `on_hold` the events update).
// Interface: reset(list) (a `joined` or `admitted`), clear() (a lost
// connection), apply(msg) (any server event: the ones about participants and
// their tracks change the roster), and expandParticipantsChanged(), which
// turns a large room's batch into one event per arrival and departure.

/** @typedef {import("./protocol.js").ParticipantInfo} ParticipantInfo */
/** @typedef {import("./protocol.js").ServerMessage} ServerMessage */

/**
 * Our own copy of a participant info (we update its `producers`).
 * @param {ParticipantInfo} info
 * @returns {ParticipantInfo}
 */
const copyInfo = (info) => ({ ...info, producers: (info.producers ?? []).map((t) => ({ ...t })) });

export class Roster {
  /** @type {Map<string, ParticipantInfo>} other active participants: id -> info (with producers) */
  participants = new Map();

  /**
   * Everyone active, as a `joined` or `admitted` lists them (a new Map).
   * @param {ParticipantInfo[]} [list]
   */
  reset(list = []) {
    this.participants = new Map(list.map((p) => [p.id, copyInfo(p)]));
  }

  /** Nobody (a new Map): we are no longer in the room. */
  clear() {
    this.participants = new Map();
  }

  /**
   * Apply a server event to the roster (events about others only change it).
   * @param {ServerMessage} msg
   */
  apply(msg) {
    const who = this.participants.get(msg.participant_id);
    switch (msg.type) {
      case "participant_joined":
        this.participants.set(msg.participant.id, copyInfo(msg.participant));
        break;
      case "participant_left":
        this.participants.delete(msg.participant_id);
        break;
      case "track_published":
        who?.producers.push({ ...msg.track });
        break;
      case "track_unpublished":
        if (who) who.producers = who.producers.filter((t) => t.id !== msg.track_id);
        break;
      case "track_muted": {
        const track = who?.producers.find((t) => t.id === msg.track_id);
        if (track) track.muted = msg.muted;
        break;
      }
      case "participant_audio_only":
        if (who) who.audio_only = msg.enabled === true;
        break;
      case "participant_on_hold":
        if (who) who.on_hold = msg.enabled === true;
        break;
    }
  }
}

/**
 * A large room announces arrivals and departures in batches (`participants_changed`,
 * docs/protocol.md): as the `participant_joined` / `participant_left` events a consult
 * gets one by one. Joined first, then left; our own arrival is not news to us.
 * @param {ServerMessage} msg  a `participants_changed`
 * @param {string|null|undefined} selfId  our participant id
 * @returns {ServerMessage[]}
 */
export function expandParticipantsChanged(msg, selfId) {
  const events = [];
  for (const participant of Array.isArray(msg.joined) ? msg.joined : []) {
    if (participant?.id && participant.id !== selfId) {
      events.push({ type: "participant_joined", participant });
    }
  }
  for (const left of Array.isArray(msg.left) ? msg.left : []) {
    if (left?.participant_id && left.participant_id !== selfId) {
      events.push({ type: "participant_left", ...left });
    }
  }
  return events;
}
