// Home: shows live now and coming up; a creator's own shows with their studio and console links.
import { api, el, siteHeader } from "/static/js/api.js";
import { followControls } from "/static/js/follow.js";
import { paintBadge, phaseOf } from "/static/js/showstatus.js";

/** When a scheduled show starts, if it says; nothing for the others (their badge says it). */
function when(stream) {
  if (phaseOf(stream) !== "scheduled" || !stream.scheduled_at) return null;
  return new Date(stream.scheduled_at).toLocaleString(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit", month: "short", day: "numeric" });
}

function badge(stream) {
  const node = el("span", {});
  paintBadge(node, phaseOf(stream));
  return node;
}

function streamCard(stream, user) {
  const team = user && (stream.creator.id === user.id || stream.moderators.some((m) => m.id === user.id));
  return el("article", { class: "card" },
    el("a", { class: "stream-card", href: `/watch/${stream.id}` },
      badge(stream),
      when(stream) ? el("span", { class: "muted when" }, ` ${when(stream)}`) : null,
      el("h3", {}, stream.title),
      el("p", { class: "muted" }, `with ${stream.creator.display_name}`)),
    team && stream.creator.id === user.id ? el("a", { href: `/studio/${stream.id}` }, "Studio") : null,
    team ? " " : null,
    team ? el("a", { href: `/console/${stream.id}` }, "Moderator console") : null,
    stream.status !== "ended" ? followControls(stream, user) : null,
  );
}

/** Invitations to moderate: Accept makes you the show's moderator, Decline drops it. */
async function loadInvitations() {
  const section = document.getElementById("invited");
  const error = document.getElementById("invited-error");
  const { invitations } = await api("GET", "/api/invitations");
  const answer = (invitation, verb) => async () => {
    error.classList.add("hidden");
    try {
      await api("POST", `/api/invitations/${invitation.id}/${verb}`);
      if (verb === "accept") location.href = `/console/${invitation.stream.id}`;
      else await loadInvitations();
    } catch (err) {
      error.textContent = err.message;
      error.classList.remove("hidden");
    }
  };
  document.getElementById("invitations").replaceChildren(...invitations.map((invitation) =>
    el("li", { "data-invitation": invitation.id },
      el("span", {}, el("b", {}, invitation.stream.title), " ", el("span", { class: "muted" }, `with ${invitation.stream.creator.display_name}`)),
      el("span", {},
        el("button", { type: "button", class: "primary", onclick: answer(invitation, "accept") }, "Accept"), " ",
        el("button", { type: "button", onclick: answer(invitation, "decline") }, "Decline")))));
  section.classList.toggle("hidden", invitations.length === 0);
}

async function load() {
  const user = await siteHeader();
  const live = document.getElementById("live");
  const upcoming = document.getElementById("upcoming");
  try {
    const { streams } = await api("GET", "/api/streams?limit=100");
    // Live now: on air, and paused (live, its host away for a moment); the badge tells which.
    const now = streams.filter((s) => ["on_air", "paused"].includes(phaseOf(s)));
    const soon = streams.filter((s) => phaseOf(s) === "scheduled");
    live.replaceChildren(...(now.length ? now.map((s) => streamCard(s, user)) : [el("p", { class: "muted" }, "Nobody is live right now.")]));
    upcoming.replaceChildren(...(soon.length ? soon.map((s) => streamCard(s, user)) : [el("p", { class: "muted" }, "Nothing planned yet.")]));
    if (user) {
      loadInvitations().catch(() => {});
      const mine = streams.filter((s) => s.creator.id === user.id || s.moderators.some((m) => m.id === user.id));
      document.getElementById("my-streams").replaceChildren(...mine.map((s) => streamCard(s, user)));
      document.getElementById("mine").classList.remove("hidden");
    }
  } catch (err) {
    live.replaceChildren(el("p", { class: "error", role: "alert" }, `Could not load the shows: ${err.message}`));
  }
  document.getElementById("main").setAttribute("aria-busy", "false");
}

document.getElementById("new-stream").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("new-error");
  try {
    const { stream } = await api("POST", "/api/streams", { title: document.getElementById("new-title").value });
    location.href = `/studio/${stream.id}`;
  } catch (err) {
    error.textContent = err.message;
    error.classList.remove("hidden");
  }
});

load();
