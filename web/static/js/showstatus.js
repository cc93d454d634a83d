// A show's status, told the same way on every page (home, watch, studio, console): the server
// decides the phase (scheduled, on_air, paused, ended) from the show's status and whether its
// publisher is on air; pages only show it, with these words and these badges.

export const PHASES = {
  scheduled: { label: "Scheduled", badge: "scheduled", note: "The show has not started: it is offline until the host goes live." },
  on_air: { label: "LIVE", badge: "live", note: "The host is live." },
  paused: { label: "Paused", badge: "paused", note: "The host's video stopped. The show is not over: it resumes here when they are back." },
  ended: { label: "Ended", badge: "ended", note: "This show has ended. Thanks for watching!" },
};

/** The phase of a stream (API) or a room state / stream:status event. */
export function phaseOf(thing) {
  if (thing.phase && PHASES[thing.phase]) return thing.phase;
  // A payload from a server older than the phase field: derive it the server's way.
  if (thing.status === "ended") return "ended";
  if (thing.on_air) return "on_air";
  return thing.status === "live" ? "paused" : "scheduled";
}

/** Paint a badge node for this phase: its text, its class and what a screen reader hears. */
export function paintBadge(node, phase) {
  const shown = PHASES[phase] || PHASES.scheduled;
  node.textContent = shown.label;
  node.className = `badge ${shown.badge}`;
  node.dataset.phase = phase;
  node.title = shown.note;
}
