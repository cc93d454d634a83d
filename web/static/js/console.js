// The moderator console: pin / unpin, flash sales, and the chat with delete, mute, slow mode and
// blocked words.
import { api, el, streamIdFromPath } from "/static/js/api.js";
import { LiveRoom } from "/static/js/live.js";
import { TeamPanel, openTeamPage, pageError, showStatus } from "/static/js/team.js";

const $ = (id) => document.getElementById(id);
const streamId = streamIdFromPath();
let room;

function chatError(message) {
  $("chat-error").textContent = message;
  $("chat-error").classList.toggle("hidden", !message);
}

async function act(event, data) {
  try {
    chatError("");
    return await room.call(event, data);
  } catch (err) {
    chatError(err.message);
    return null;
  }
}

function line(message) {
  const team = message.user.role !== "viewer";
  return el("div", { class: "msg", "data-id": message.id },
    el("span", {}, el("b", { class: team ? "mod" : "" }, message.user.display_name), " ", message.text),
    el("button", { type: "button", "aria-label": `Delete message from ${message.user.display_name}`, onclick: () => act("chat:delete", { stream_id: streamId, message_id: message.id }) }, "Delete"),
    team ? null : muteButton(message.user),
  );
}

// -- mutes: a neutral notice per muted person, with Unmute --------------------------------------

const muted = new Map(); // user id -> {display_name, until}

function muteButton(user) {
  const isMuted = muted.has(user.id);
  return el("button", {
    type: "button",
    "data-mute": user.id,
    "aria-label": isMuted ? `Unmute ${user.display_name}` : `Mute ${user.display_name} for 10 minutes`,
    onclick: () => isMuted
      ? act("chat:unmute", { stream_id: streamId, user_id: user.id })
      : act("chat:mute", { stream_id: streamId, user_id: user.id, seconds: 600 }),
  }, isMuted ? "Unmute" : "Mute 10 min");
}

function renderMutes() {
  const now = Date.now();
  for (const [id, mute] of muted) if (mute.until <= now) muted.delete(id);
  $("mutes").replaceChildren(...[...muted].map(([id, mute]) =>
    el("div", { class: "notice", "data-muted": id },
      el("span", {}, `${mute.display_name} is muted until ${new Date(mute.until).toLocaleTimeString()}.`),
      el("button", { type: "button", "aria-label": `Unmute ${mute.display_name}`, onclick: () => act("chat:unmute", { stream_id: streamId, user_id: id }) }, "Unmute"))));
  for (const button of $("chat").querySelectorAll("button[data-mute]")) {
    const line = button.closest(".msg");
    const name = line.querySelector("b").textContent;
    button.replaceWith(muteButton({ id: Number(button.dataset.mute), display_name: name }));
  }
}
setInterval(() => {
  if ([...muted.values()].some((m) => m.until <= Date.now())) renderMutes();
}, 5000);

// Who was muted before this console opened (or while it was reconnecting).
async function loadMutes() {
  try {
    const { mutes } = await api("GET", `/api/streams/${streamId}/mutes`);
    muted.clear();
    for (const m of mutes) muted.set(m.user_id, { display_name: m.display_name, until: m.until });
    renderMutes();
  } catch (err) {
    chatError(err.message);
  }
}

function addLine(message) {
  const chat = $("chat");
  chat.append(line(message));
  while (chat.children.length > 200) chat.firstChild.remove();
  chat.scrollTop = chat.scrollHeight;
}

async function main() {
  const opened = await openTeamPage(streamId, "Console");
  if (!opened) return;
  const { stream } = opened;
  room = new LiveRoom(streamId, {
    onState: (state) => {
      if (state.role === "viewer") {
        pageError("You are not on this show's team: ask its creator to add you as a moderator.");
      } else {
        loadMutes();
      }
      showStatus(state);
      $("viewers").textContent = `${state.viewers} watching`;
      $("chat").replaceChildren(...state.chat.map(line));
      $("slow").value = String(state.chat_settings.slow_mode_s);
      $("blocked").value = (state.chat_settings.blocked_words || []).join("\n");
      panel.applyState(state);
    },
    onConnection: (status) => pageError(status === "reconnecting" ? "Reconnecting to the room…" : ""),
  });
  const panel = new TeamPanel(room, streamId);
  room
    .on("viewers", ({ count }) => ($("viewers").textContent = `${count} watching`))
    .on("chat:message", addLine)
    .on("chat:deleted", ({ id }) => $("chat").querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove())
    .on("chat:slowmode", ({ seconds }) => ($("slow").value = String(seconds)))
    .on("chat:muted", ({ user_id: userId, display_name: name, until }) => {
      muted.set(userId, { display_name: name, until });
      renderMutes();
    })
    .on("chat:unmuted", ({ user_id: userId }) => {
      muted.delete(userId);
      renderMutes();
    })
    .on("stream:status", (s) => showStatus(s));
  await panel.load(stream);
  $("chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("chat-text").value.trim();
    if (text && (await act("chat:send", { stream_id: streamId, text }))) $("chat-text").value = "";
  });
  $("slow").addEventListener("change", () => act("chat:slowmode", { stream_id: streamId, seconds: Number($("slow").value) }));
  $("save-blocked").addEventListener("click", async () => {
    const words = $("blocked").value.split("\n").map((w) => w.trim()).filter(Boolean);
    const saved = await act("chat:blocklist", { stream_id: streamId, words });
    if (saved) $("blocked-saved").textContent = `Saved ${saved.words.length} words.`;
  });
  $("main").setAttribute("aria-busy", "false");
}

main().catch((err) => pageError(err.message));
