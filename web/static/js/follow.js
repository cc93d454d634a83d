// Follow a creator and "Remind me" on a scheduled show: toggle buttons for the home page's
// cards and the watch page. Each sends one email when a show goes live (see the README).
import { api, currentUser, el } from "/static/js/api.js";

let following; // one read of /api/following per page
function loadFollowing() {
  if (!following) following = api("GET", "/api/following").catch(() => ({ creators: [], reminders: [] }));
  return following;
}

function toggle(labels, isOn, path, onChange) {
  const button = el("button", { type: "button", class: "follow", "aria-pressed": String(isOn) }, isOn ? labels[1] : labels[0]);
  button.addEventListener("click", async () => {
    const on = button.getAttribute("aria-pressed") === "true";
    button.disabled = true;
    try {
      await api(on ? "DELETE" : "PUT", path);
      button.setAttribute("aria-pressed", String(!on));
      button.textContent = on ? labels[0] : labels[1];
      if (onChange) onChange(!on);
    } catch (err) {
      button.title = err.message;
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** The follow (and, for a scheduled show, remind) buttons for `stream`; empty for its creator
 * or a visitor who is not logged in. */
export function followControls(stream, user) {
  const box = el("span", { class: "follow-controls" });
  if (!user || stream.creator.id === user.id) return box;
  loadFollowing().then(({ creators, reminders }) => {
    const who = stream.creator.display_name;
    box.replaceChildren(
      toggle([`Follow ${who}`, `Following ${who}`], creators.includes(stream.creator.id), `/api/creators/${stream.creator.id}/follow`),
      stream.status === "scheduled" ? toggle(["Remind me", "Reminder set"], reminders.includes(stream.id), `/api/streams/${stream.id}/reminder`) : null,
    );
  });
  return box;
}

/** Fill `container` with the buttons for the show `streamId` (the watch page). */
export async function mountFollow(container, streamId) {
  const [user, { stream }] = await Promise.all([currentUser(), api("GET", `/api/streams/${streamId}`)]);
  container.replaceChildren(followControls(stream, user));
}
