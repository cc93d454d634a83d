// An order's conversation: its buyer and the seller's team, problem reports and cases.
import { api, el, money, siteHeader } from "./api.js";

const $ = (id) => document.getElementById(id);
const orderId = Number(location.pathname.split("/")[2]);
const PROBLEMS = { not_received: "Not received", damaged: "Damaged", wrong_item: "Wrong item" };
// The order statuses in which its units are sold (the server's orders.SOLD): a problem may be reported.
const SOLD = new Set([
  "paid",
  "packed",
  "fulfilled",
  "shipped",
  "delivered",
  "return_requested",
  "return_approved",
]);
let me = null;

function showError(err) {
  $("page-error").textContent = err.message;
  $("page-error").classList.remove("hidden");
}

function caseItem(c, side) {
  const state = c.late ? "late" : c.state;
  const actions = [];
  const end = (verb, label) =>
    el("button", { type: "button", "data-action": verb, onclick: () => act(c.id, verb) }, label);
  if (c.state === "answered") actions.push(end("resolve", "Mark resolved"), end("close", "Close"));
  else if (c.state === "open" && side === "buyer") actions.push(end("close", "Withdraw"));
  return el("li", { class: `bo-case ${c.state === "open" ? "unanswered" : ""} ${c.late ? "late" : ""}`, "data-case": c.id },
    el("h3", {}, `${PROBLEMS[c.problem]} `, el("span", { class: `badge ${state}` }, state === "open" ? "waiting for the seller" : state)),
    el("p", { class: "meta" }, `Case #${c.id}, opened ${new Date(c.opened_at).toLocaleString()}`,
      c.answer_due_at ? ` · answer due ${new Date(c.answer_due_at).toLocaleString()}` : ""),
    actions.length ? el("p", { class: "bo-actions" }, actions) : null);
}

async function act(caseId, verb) {
  try {
    await api("POST", `/api/support/cases/${caseId}/${verb}`);
    await load();
  } catch (err) {
    showError(err);
  }
}

async function load() {
  const data = await api("GET", `/api/orders/${orderId}/messages`);
  const { order, cases, messages, you_are: side } = data;
  $("title").textContent = `Order #${order.id}: messages`;
  $("order-summary").textContent =
    `${order.qty} × item · ${money(order.amount.amount, order.amount.currency)} · ${order.status.replace("_", " ")}` +
    (side === "seller" ? " · you answer for the seller" : "");
  $("cases").replaceChildren(...(cases.length ? cases.map((c) => caseItem(c, side)) : [el("li", { class: "muted" }, "None.")]));
  const active = cases.some((c) => c.state === "open" || c.state === "answered");
  $("report").classList.toggle("hidden", side !== "buyer" || active || !SOLD.has(order.status));
  $("thread").replaceChildren(...messages.map((m) =>
    el("li", { class: m.author.id === me?.id ? "mine" : "" },
      el("span", { class: "who" }, `${m.author.display_name || "?"} (${m.side}) · ${new Date(m.created_at).toLocaleString()}`),
      m.text)));
  if (!messages.length) $("thread").append(el("li", { class: "muted" }, "No messages yet."));
  $("thread").scrollTop = $("thread").scrollHeight;
}

$("write").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("send").disabled = true;
  try {
    await api("POST", `/api/orders/${orderId}/messages`, { text: $("text").value });
    $("text").value = "";
    $("page-error").classList.add("hidden");
    await load();
  } catch (err) {
    showError(err);
  } finally {
    $("send").disabled = false;
  }
});

$("report").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("report-send").disabled = true;
  try {
    await api("POST", `/api/orders/${orderId}/cases`, { problem: $("problem").value, text: $("report-text").value });
    $("report-text").value = "";
    $("page-error").classList.add("hidden");
    await load();
  } catch (err) {
    showError(err);
  } finally {
    $("report-send").disabled = false;
  }
});

(async () => {
  me = await siteHeader();
  if (!me) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
    return;
  }
  try {
    await load();
  } catch (err) {
    showError(err);
  }
  $("main").setAttribute("aria-busy", "false");
  setInterval(() => load().catch(() => {}), 15000); // the forms keep what is being typed
})();
