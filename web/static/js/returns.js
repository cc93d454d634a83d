// A buyer's order and its returns: status and tracking, the shop's policy, asking for a return,
// the seller's answer (RMA number and instructions) and the refund. Live through order:update.
import { io } from "/static/vendor/socket.io.esm.min.js";
import { api, el, money, siteHeader } from "/static/js/api.js";

const $ = (id) => document.getElementById(id);
const orderId = Number(location.pathname.split("/").filter(Boolean)[1]);

function showError(err) {
  $("page-error").textContent = err ? err.message : "";
  $("page-error").classList.toggle("hidden", !err);
}

const LABELS = {
  paid: "paid", packed: "packed", shipped: "shipped", delivered: "delivered",
  return_requested: "return requested", return_approved: "return approved", refunded: "refunded",
};

function render(data) {
  const order = data.order;
  $("order-id").textContent = `#${order.id}`;
  $("order-status").textContent = LABELS[order.status] || order.status;
  $("order-status").dataset.status = order.status;
  $("order-summary").textContent = `${order.qty} unit(s) · ${money(order.amount.amount, order.amount.currency)}`;
  $("tracking").classList.toggle("hidden", !order.tracking);
  $("carrier").textContent = order.carrier_name || order.carrier || "";
  $("tracking-link").textContent = order.tracking_url ? order.tracking : "";
  $("tracking-link").href = order.tracking_url || "#";
  $("tracking-link").classList.toggle("hidden", !order.tracking_url);
  $("tracking-number").textContent = order.tracking_url ? "" : order.tracking || "";
  $("refunded").classList.toggle("hidden", !order.refunded.amount);
  $("refunded").textContent = `Refunded: ${money(order.refunded.amount, order.refunded.currency)}`;
  const policy = data.policy;
  $("policy").textContent = `Returns within ${policy.return_window_days} days of delivery` +
    (policy.free_returns ? ", free (prepaid label)." : "; the buyer pays postage.") +
    (data.return_by && order.status === "delivered" ? ` Ask by ${new Date(data.return_by).toLocaleDateString()}.` : "");
  $("returns").replaceChildren(...data.returns.map((r) => el("li", { "data-return": r.id },
    el("h3", {}, `${r.qty} unit(s) · `, el("span", { class: "badge state" }, r.status)),
    el("p", {}, `Reason: ${r.reason}`),
    r.rma ? el("p", {}, "RMA number: ", el("strong", {}, r.rma)) : null,
    r.instructions ? el("p", { class: "instructions" }, r.instructions) : null,
    r.refusal_reason ? el("p", {}, `Refused: ${r.refusal_reason}`) : null,
    r.refund ? el("p", {}, `Refunded ${money(r.refund.amount, r.refund.currency)}`) : null)));
  const canAsk = order.status === "delivered" && data.returnable_qty > 0 &&
    (!data.return_by || new Date(data.return_by) > new Date());
  $("ask").classList.toggle("hidden", !canAsk);
  $("qty").max = data.returnable_qty;
}

async function load() {
  render(await api("GET", `/api/orders/${orderId}/returns`));
}

$("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(null);
  const button = event.submitter;
  if (button) button.disabled = true;
  try {
    await api("POST", `/api/orders/${orderId}/returns`, { qty: Number($("qty").value), reason: $("reason").value });
    $("reason").value = "";
    await load();
  } catch (err) {
    showError(err);
  } finally {
    if (button) button.disabled = false;
  }
});

(async () => {
  const user = await siteHeader();
  if (!user) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
    return;
  }
  try {
    await load();
  } catch (err) {
    showError(err);
  }
  $("main").setAttribute("aria-busy", "false");
  const socket = io("/live", { transports: ["websocket"], reconnectionDelayMax: 4000 });
  socket.on("order:update", ({ order }) => {
    if (order && order.id === orderId) load().catch(showError);
  });
})();
