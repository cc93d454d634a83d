// /orders (the signed-in buyer's history, page by page) and /orders/{id} (one order, live:
// `order:update` on the buyer's own Socket.IO room; "finish paying" while it is held).
import { io } from "/static/vendor/socket.io.esm.min.js";
import { api, el, siteHeader } from "/static/js/api.js";
import { merged, myOrders, orderDetail, orderRow } from "/static/js/orders.js";
import { payReservedOrder } from "/static/js/paysheet.js";

const $ = (id) => document.getElementById(id);
const box = $("orders-page");
const orderId = /^\/orders\/(\d+)$/.exec(location.pathname);

function fail(message) {
  $("page-error").textContent = message;
  $("page-error").classList.remove("hidden");
}

async function history() {
  let next = 0;
  const list = el("ul", { class: "lineup orders-list", id: "orders-list" });
  const more = el("button", { type: "button", id: "more-orders", class: "hidden" }, "More orders");
  box.replaceChildren(list, more);
  const load = async () => {
    more.disabled = true;
    try {
      const page = await myOrders({ offset: next, limit: 20 });
      list.append(...page.orders.map((order) => orderRow(order)));
      next = page.next_offset;
      more.classList.toggle("hidden", next === null);
      if (!list.children.length) box.replaceChildren(el("p", { class: "muted" }, "No orders yet. Buy during a live show and it shows up here."));
    } catch (err) {
      fail(err.message);
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  await load();
}

async function oneOrder(id, user) {
  let order;
  try {
    order = (await api("GET", `/api/orders/${id}`)).order;
  } catch (err) {
    box.replaceChildren(el("p", {}, err.status === 404 || err.status === 403 ? "This order was not found." : err.message), el("p", {}, el("a", { href: "/orders" }, "Your orders")));
    return;
  }
  const render = () => {
    $("page-title").textContent = `Order #${order.id}`;
    document.title = `Order #${order.id} · livecommerce`;
    box.replaceChildren(
      orderDetail(order, {
        onFinishPaying: (o) => payReservedOrder(o, { done: (done) => done && update(done) }),
        onCancelled: update,
        mine: order.buyer_id === user.id, // the seller and the team see it, not pay for it
      }),
      el(
        "p",
        { class: "order-links" },
        el("a", { href: `/orders/${order.id}/messages`, class: "order-messages" }, "Messages about this order"),
        " · ",
        el("a", { href: "/orders" }, "All your orders"),
      ),
    );
  };
  const update = (next) => {
    order = merged(order, next);
    render();
  };
  render();
  // The buyer's own room: the server puts every signed-in socket in it.
  const socket = io("/live", { transports: ["websocket"], reconnectionDelayMax: 4000 });
  socket.on("order:update", ({ order: changed }) => {
    if (changed.id === order.id) update(changed);
  });
  socket.on("connect", async () => {
    // Catch up on what changed while disconnected.
    try {
      update((await api("GET", `/api/orders/${order.id}`)).order);
    } catch (err) {
      /* the page keeps what it shows */
    }
  });
}

(async () => {
  const user = await siteHeader();
  $("main").setAttribute("aria-busy", "false");
  if (!user) {
    box.replaceChildren(el("p", {}, el("a", { href: `/login?next=${encodeURIComponent(location.pathname)}` }, "Log in"), " to see your orders."));
    return;
  }
  if (orderId) await oneOrder(Number(orderId[1]), user);
  else await history();
})();
