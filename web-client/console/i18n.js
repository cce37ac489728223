// UI strings of the specialist console in English, French and Kinyarwanda.
//
// `{name}` placeholders are filled by `t(key, {name: ...})`. A key missing
// from a language falls back to English. The Kinyarwanda strings are a first
// version: have them reviewed by a native speaker before a clinical rollout.

export const LANGUAGES = ["en", "fr", "rw"];

const STRINGS = {
  en: {
    title: "Specialist console",
    roomsLabel: "Consult rooms",
    roomN: "Room {n}",
    keysHint: "Keys 1–9 and 0 switch to a room. Your camera and microphone go to the active room only; the others are on hold.",
    "state.connecting": "Connecting…",
    "state.waiting": "Patient waiting",
    "state.inCall": "In call",
    "state.onHold": "On hold",
    "state.failed": "Could not join",
    "state.closed": "Disconnected",
    emptyRoom: "Nobody here yet",
    onHoldOverlay: "On hold: your camera and microphone are not sent to this room",
    inRoom: "{count} in the room: {names}",
    waitingList: "Waiting to be admitted",
    admit: "Admit",
    deny: "Deny",
    admitLabel: "Admit {name} to {room}",
    denyLabel: "Deny {name} entry to {room}",
    focus: "Switch here",
    focused: "Active",
    focusLabel: "Switch to room {n}, {room} (key {key})",
    focusedLabel: "Room {n}, {room}, is active",
    notify: "{name} is waiting in {room}",
    notifyTitle: "Patient waiting",
    goToRoom: "Go to room",
    goToRoomLabel: "Switch to {room}",
    dismiss: "Dismiss",
    dismissLabel: "Dismiss this notification",
    selfCaption: "You → {room}",
    noMedia: "No camera or microphone available: you can watch and admit, but not be seen or heard.",
    noRooms: "No rooms: open this page with ?tokens=<token1>,<token2>,… or, on a development server, ?rooms=3.",
    tooManyRooms: "At most {max} rooms: the extra tokens were ignored.",
    joinError: "{room}: {message}",
    switched: "Switched to {room} in {ms} ms",
  },
  fr: {
    title: "Console du spécialiste",
    roomsLabel: "Salles de consultation",
    roomN: "Salle {n}",
    keysHint: "Touches 1–9 et 0 : passer à une salle. Votre caméra et votre micro ne vont qu'à la salle active ; les autres sont mises en attente.",
    "state.connecting": "Connexion…",
    "state.waiting": "Patient en salle d'attente",
    "state.inCall": "En consultation",
    "state.onHold": "Mise en attente",
    "state.failed": "Connexion impossible",
    "state.closed": "Déconnecté",
    emptyRoom: "Personne pour l'instant",
    onHoldOverlay: "En attente : votre caméra et votre micro ne sont pas transmis à cette salle",
    inRoom: "{count} dans la salle : {names}",
    waitingList: "En attente d'admission",
    admit: "Admettre",
    deny: "Refuser",
    admitLabel: "Admettre {name} dans {room}",
    denyLabel: "Refuser l'entrée de {name} dans {room}",
    focus: "Passer ici",
    focused: "Active",
    focusLabel: "Passer à la salle {n}, {room} (touche {key})",
    focusedLabel: "La salle {n}, {room}, est active",
    notify: "{name} attend dans {room}",
    notifyTitle: "Patient en attente",
    goToRoom: "Aller à la salle",
    goToRoomLabel: "Passer à {room}",
    dismiss: "Fermer",
    dismissLabel: "Fermer cette notification",
    selfCaption: "Vous → {room}",
    noMedia: "Aucune caméra ni micro : vous pouvez regarder et admettre, mais on ne vous voit ni ne vous entend.",
    noRooms: "Aucune salle : ouvrez cette page avec ?tokens=<jeton1>,<jeton2>,… ou, sur un serveur de développement, ?rooms=3.",
    tooManyRooms: "Au plus {max} salles : les jetons en trop sont ignorés.",
    joinError: "{room} : {message}",
    switched: "Passé à {room} en {ms} ms",
  },
  rw: {
    title: "Urubuga rw'inzobere",
    roomsLabel: "Ibyumba by'isuzuma",
    roomN: "Icyumba {n}",
    keysHint: "Kanda 1–9 cyangwa 0 ujye mu cyumba. Kamera na mikoro yawe bijya mu cyumba urimo gusa; ibindi byumba biba bitegereje.",
    "state.connecting": "Kwihuza…",
    "state.waiting": "Umurwayi arategereje",
    "state.inCall": "Mu kiganiro",
    "state.onHold": "Bitegereje",
    "state.failed": "Kwinjira ntibyakunze",
    "state.closed": "Byahagaritswe",
    emptyRoom: "Nta muntu urimo",
    onHoldOverlay: "Bitegereje: kamera na mikoro yawe ntibigera muri iki cyumba",
    inRoom: "{count} mu cyumba: {names}",
    waitingList: "Bategereje kwemererwa kwinjira",
    admit: "Emerera",
    deny: "Yangira",
    admitLabel: "Emerera {name} kwinjira muri {room}",
    denyLabel: "Yangira {name} kwinjira muri {room}",
    focus: "Jya hano",
    focused: "Urimo",
    focusLabel: "Jya mu cyumba {n}, {room} (kanda {key})",
    focusedLabel: "Urimo mu cyumba {n}, {room}",
    notify: "{name} arategereje muri {room}",
    notifyTitle: "Umurwayi arategereje",
    goToRoom: "Jya mu cyumba",
    goToRoomLabel: "Jya muri {room}",
    dismiss: "Funga",
    dismissLabel: "Funga iri tangazo",
    selfCaption: "Wowe → {room}",
    noMedia: "Nta kamera cyangwa mikoro bihari: urareba kandi ukemerera abantu, ariko ntubonwa kandi ntwumvwa.",
    noRooms: "Nta cyumba: fungura uru rupapuro na ?tokens=<token1>,<token2>,… cyangwa, kuri seriveri y'igerageza, ?rooms=3.",
    tooManyRooms: "Ibyumba {max} gusa: izindi token ntizakoreshejwe.",
    joinError: "{room}: {message}",
    switched: "Wagiye muri {room} mu {ms} ms",
  },
};

/** The first supported language of `?lang=` or the browser's preferences; else English. */
export function chooseLanguage(requested, preferred = []) {
  for (const tag of [requested, ...preferred]) {
    const base = String(tag ?? "").toLowerCase().split(/[-_]/)[0];
    if (LANGUAGES.includes(base)) return base;
    if (base === "kin") return "rw"; // ISO 639-2/3 code of Kinyarwanda
  }
  return "en";
}

/** `t(key, values)` for one language. */
export function translator(lang) {
  const table = STRINGS[lang] ?? STRINGS.en;
  return (key, values = {}) => {
    const text = table[key] ?? STRINGS.en[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (match, name) => (name in values ? String(values[name]) : match));
  };
}
