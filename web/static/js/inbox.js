// The seller's inbox: cases first (late, then unanswered), then every order conversation.
import { api, el, siteHeader } from "./api.js";

const $ = (id) => document.getElementById(id);
const PROBLEMS = { not_received: "Not received", damaged: "Damaged", wrong_item: "Wrong item" };

function showError(err) {
  $("page-error").textContent = err.message;
  $("page-error").classList.remove("hidden");
}

function answerForm(orderId, caseId) {
  const id = `answer-${caseId}`;
  const text = el("textarea", { id, rows: 2, maxlength: 300, required: true });
  const send = el("button", { type: "submit", class: "primary" }, "Answer");
  return el("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      send.disabled = true;
      try {
        await api("POST", `/api/orders/${orderId}/messages`, { text: text.value });
        await load();
      } catch (err) {
        showError(err);
        send.disabled = false;
      }
    },
  }, el("label", { for: id }, "Your answer"), text, el("p", { class: "bo-actions" }, send));
}

function caseItem(c) {
  const label = c.late ? "late" : c.state === "open" ? "unanswered" : c.state;
  const badge = c.late ? "late" : c.state;
  return el("li", { class: `bo-case ${c.state === "open" ? "unanswered" : ""} ${c.late ? "late" : ""}`, "data-case": c.id },
    el("h3", {}, `${PROBLEMS[c.problem]} · order #${c.order_id} `, el("span", { class: `badge ${badge}` }, label)),
    el("p", { class: "meta" }, `Opened ${new Date(c.opened_at).toLocaleString()}`,
      c.answer_due_at ? ` · answer due ${new Date(c.answer_due_at).toLocaleString()}` : "",
      " · ", el("a", { href: `/orders/${c.order_id}/messages` }, "Open the conversation")),
    c.state === "open" ? answerForm(c.order_id, c.id) : null);
}

async function load() {
  const inbox = await api("GET", "/api/support/inbox");
  $("summary").textContent = `${inbox.unanswered} unanswered, ${inbox.late} late (answer within ${Math.round(inbox.answer_within_s / 3600)} h)`;
  $("cases").replaceChildren(...(inbox.cases.length ? inbox.cases.map(caseItem) : [el("li", { class: "muted" }, "No cases.")]));
  $("conversations").replaceChildren(...(inbox.conversations.length
    ? inbox.conversations.map((t) => el("li", { class: `bo-case ${t.reply_due ? "unanswered" : ""}` },
        el("h3", {}, el("a", { href: `/orders/${t.order_id}/messages` }, `Order #${t.order_id}`), t.reply_due ? " · reply due" : ""),
        el("p", { class: "meta" }, `${t.last_message.author.display_name}: `, t.last_message.text)))
    : [el("li", { class: "muted" }, "No conversations.")]));
}

(async () => {
  const me = await siteHeader();
  if (!me) {
    location.href = "/login?next=/inbox";
    return;
  }
  try {
    await load();
  } catch (err) {
    showError(err);
  }
  $("main").setAttribute("aria-busy", "false");
  // A half-written answer is never wiped by the refresh.
  setInterval(() => {
    if (![...document.querySelectorAll("textarea")].some((t) => t.value)) load().catch(() => {});
  }, 30000);
})();
