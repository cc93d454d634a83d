// A buyer's orders: what each status means, the hold's countdown, one order's details, the list
// (paginated), and the drawer that shows them on the watch page without leaving the show.
// Orders change live through the `order:update` Socket.IO event (the buyer's own room).
import { api, el, money, serverTime } from "/static/js/api.js";

// Status -> [label, what it means for the buyer]. Statuses not listed get a generic line.
const STATUS = {
  reserved: ["Waiting for payment", "Your item is held for you until you pay."],
  paid: ["Paid", "The seller is preparing your order."],
  fulfilled: ["Packed", "Your order is packed and waits for the carrier."],
  packed: ["Packed", "Your order is packed and waits for the carrier."],
  shipped: ["Shipped", "Your order is on its way."],
  delivered: ["Delivered", "Your order was delivered."],
  return_requested: ["Return requested", "The seller has your return request."],
  return_approved: ["Return approved", "Send the item back as the seller's instructions say."],
  refunded: ["Refunded", "Your money was sent back."],
  failed: ["Payment failed", "Nothing was charged; the item went back on sale."],
  expired: ["Hold expired", "It was not paid in time; the item went back on sale."],
  cancelled: ["Cancelled", "You cancelled it; the item went back on sale."],
};

export function statusLabel(status) {
  if (STATUS[status]) return STATUS[status][0];
  const words = String(status || "unknown").replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function statusText(order) {
  return STATUS[order.status] ? STATUS[order.status][1] : `This order is ${statusLabel(order.status).toLowerCase()}.`;
}

export function statusBadge(status) {
  return el("span", { class: `badge order-status status-${String(status).replace(/[^a-z_]/g, "")}`, "data-status": status }, statusLabel(status));
}

// -- the hold's countdown: every [data-expires] on the page, one timer ---------------------------

// The server's time, by which holds expire: as the API's answers tell it (their Date header),
// unless a page that keeps in step with the server (the watch page's clock:sync) hands its own
// (`useServerClock`).
let now = serverTime;

export function useServerClock(serverNow) {
  now = serverNow;
}

// A hold is never longer than it was when placed (holds are not extended): a device clock up to
// two seconds slow, not corrected, must not show a fresh hold longer than that.
function left(expiresAt, longest) {
  const seconds = Math.max(0, Math.ceil((Date.parse(expiresAt) - now()) / 1000));
  return Number.isFinite(longest) ? Math.min(seconds, longest) : seconds;
}

function paintCountdowns() {
  for (const node of document.querySelectorAll("[data-expires]")) {
    const seconds = left(node.dataset.expires, Number.parseInt(node.dataset.longest ?? "", 10));
    node.textContent = seconds > 0 ? `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}` : "0:00";
    node.setAttribute("aria-label", `${seconds} seconds left`);
  }
}
setInterval(paintCountdowns, 1000);

/** The time left on a reserved order's hold, ticking. */
export function holdCountdown(order) {
  const length = Math.round((Date.parse(order.expires_at) - Date.parse(order.created_at)) / 1000);
  const node = el("b", {
    class: "hold-countdown",
    "data-expires": order.expires_at,
    "data-order": order.id,
    "data-longest": Number.isFinite(length) && length >= 0 ? String(length) : null,
  });
  node.textContent = "…";
  queueMicrotask(paintCountdowns);
  return node;
}

export function itemTitle(order) {
  return order.item_name || (order.item ? order.item.title : `Item ${order.sku_id}`);
}

export function orderSummary(order) {
  return el("p", {}, `${order.qty} × ${itemTitle(order)} · ${money(order.amount.amount, order.amount.currency)}`);
}

function shipping(order) {
  // What fulfilment records on the order: carrier (and its name), tracking number and link.
  const source = order.shipment && typeof order.shipment === "object" ? order.shipment : order;
  const carrier = source.carrier_name || source.carrier;
  const tracking = source.tracking_number || source.tracking;
  if (!carrier && !tracking) return null;
  const url = source.tracking_url;
  const number = typeof tracking === "string" || typeof tracking === "number" ? String(tracking) : "";
  return el("p", { class: "shipping" },
    carrier ? `Carrier: ${carrier}` : null,
    carrier && number ? " · " : null,
    number ? "Tracking: " : null,
    number && typeof url === "string" && url.startsWith("https://")
      ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, number)
      : number || null,
  );
}

/**
 * One order, for its buyer: status, item, amount, the hold's countdown with "Finish paying" and
 * "Cancel" while reserved, shipping once shipped. `onFinishPaying(order)` and `onCancelled(order)`
 * are the caller's.
 */
export function orderDetail(order, { onFinishPaying, onCancelled, mine = true } = {}) {
  const error = el("p", { class: "error hidden", role: "alert" });
  const parts = [
    el("h3", {}, `Order #${order.id} `, statusBadge(order.status)),
    orderSummary(order),
    el("p", { class: "muted status-text" }, statusText(order)),
  ];
  if (order.status === "reserved" && !mine) {
    parts.push(el("p", {}, "Held for the buyer for ", holdCountdown(order), "."));
  } else if (order.status === "reserved") {
    parts.push(el("p", {}, "Held for you for ", holdCountdown(order), "."));
    const cancel = el("button", { type: "button", class: "cancel-order" }, "Cancel order");
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        const { order: cancelled } = await api("POST", `/api/orders/${order.id}/cancel`, {});
        if (onCancelled) onCancelled(cancelled);
      } catch (err) {
        error.textContent = err.message;
        error.classList.remove("hidden");
        cancel.disabled = false;
      }
    });
    const actions = [cancel];
    if (onFinishPaying) actions.push(el("button", { type: "button", class: "primary finish-paying", onclick: () => onFinishPaying(order) }, "Finish paying"));
    parts.push(el("div", { class: "actions" }, actions));
  }
  const ship = shipping(order);
  if (ship) parts.push(ship);
  if (order.failure && ["failed", "expired"].includes(order.status)) parts.push(el("p", { class: "muted" }, order.failure.message));
  if (order.refunded && order.refunded.amount > 0) parts.push(el("p", { class: "muted" }, `Refunded ${money(order.refunded.amount, order.refunded.currency)}`));
  parts.push(el("p", { class: "muted small" }, `Placed ${new Date(order.created_at).toLocaleString()}`,
    order.paid_at ? ` · paid ${new Date(order.paid_at).toLocaleString()}` : ""));
  parts.push(error);
  return el("article", { class: "order-detail", "data-order": order.id, "data-status": order.status }, parts);
}

/** A row of the history: a link to the order (or a button, in the drawer). */
export function orderRow(order, open) {
  const label = [`#${order.id}`, " ", itemTitle(order), " ", statusBadge(order.status)];
  const body = open
    ? el("button", { type: "button", class: "order-link", onclick: () => open(order) }, label)
    : el("a", { class: "order-link", href: `/orders/${order.id}` }, label);
  return el("li", { "data-order": order.id, "data-status": order.status }, body,
    el("span", { class: "muted" }, money(order.amount.amount, order.amount.currency)));
}

/** The signed-in buyer's orders, newest first: `{orders, next_offset}`. */
export async function myOrders({ offset = 0, limit = 20, status, skuId } = {}) {
  const params = new URLSearchParams({ limit: String(limit), offset: String(offset) });
  if (status) params.set("status", status);
  if (skuId) params.set("sku_id", String(skuId));
  return api("GET", `/api/orders?${params}`);
}

/** Keep an order's item when a live update (which carries none) replaces it. */
export function merged(previous, update) {
  return previous && previous.id === update.id ? { ...previous, ...update, item: update.item || previous.item } : update;
}

/**
 * The drawer of the watch page: the buyer's orders and one order's details, over the show.
 * `room` brings `order:update`; `onFinishPaying(order)` pays in the page's sheet.
 */
export function mountOrdersDrawer({ room, onFinishPaying }) {
  const drawer = document.getElementById("orders-drawer");
  const content = document.getElementById("orders-content");
  const opener = document.getElementById("orders-open");
  if (!drawer || !content || !opener) return { open() {} };
  let shown = null; // the order in view, or null for the list
  let orders = [];
  let next = null;

  const close = () => {
    drawer.classList.add("hidden");
    opener.setAttribute("aria-expanded", "false");
    opener.focus();
  };
  const showOrder = (order) => {
    shown = order;
    content.replaceChildren(
      el("button", { type: "button", class: "back", onclick: () => showList() }, "← All orders"),
      orderDetail(order, {
        onFinishPaying: (o) => {
          close();
          onFinishPaying(o);
        },
        onCancelled: (o) => showOrder(merged(order, o)),
      }),
    );
  };
  const showList = async (more = false) => {
    shown = null;
    try {
      const page = await myOrders({ offset: more ? next : 0 });
      orders = more ? orders.concat(page.orders) : page.orders;
      next = page.next_offset;
    } catch (err) {
      content.replaceChildren(el("p", { class: "error", role: "alert" }, err.message));
      return;
    }
    content.replaceChildren(
      orders.length ? el("ul", { class: "lineup orders-list" }, orders.map((o) => orderRow(o, showOrder))) : el("p", { class: "muted" }, "No orders yet."),
      next !== null ? el("button", { type: "button", class: "more", onclick: () => showList(true) }, "More orders") : null,
      el("p", {}, el("a", { href: "/orders", target: "_blank", rel: "noopener" }, "Open the order history in a new tab")),
    );
  };
  const open = async (order = null) => {
    drawer.classList.remove("hidden");
    opener.setAttribute("aria-expanded", "true");
    if (order) showOrder(order);
    else await showList();
    const first = drawer.querySelector("button, a");
    if (first) first.focus();
  };
  opener.addEventListener("click", () => (drawer.classList.contains("hidden") ? open() : close()));
  document.getElementById("orders-close").addEventListener("click", close);
  drawer.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
  room.on("order:update", ({ order }) => {
    orders = orders.map((o) => (o.id === order.id ? merged(o, order) : o));
    if (drawer.classList.contains("hidden")) return;
    if (shown && shown.id === order.id) showOrder(merged(shown, order));
    else if (!shown) {
      if (!orders.some((o) => o.id === order.id)) showList();
      else content.querySelector(".orders-list")?.replaceChildren(...orders.map((o) => orderRow(o, showOrder)));
    }
  });
  return { open };
}
