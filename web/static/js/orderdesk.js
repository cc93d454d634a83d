// The order desk: parcels to pack (paid orders grouped per buyer, show and address), the pick
// list, parcels to ship and deliver, returns to answer, and the shop's returns policy.
import { api, el, money, siteHeader } from "/static/js/api.js";

const $ = (id) => document.getElementById(id);
let carriers = [];

function showError(err) {
  const box = $("page-error");
  box.textContent = err ? err.message : "";
  box.classList.toggle("hidden", !err);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function addressText(address, fallback) {
  if (!address) return fallback || "(no address)";
  return [address.name || fallback, address.line1, address.line2,
    [address.postal_code, address.city].filter(Boolean).join(" "), address.region, address.country, address.phone]
    .filter(Boolean).join("\n");
}

function orderItems(orders) {
  return el("ul", {}, orders.map((o) => el("li", {}, `#${o.id} · ${o.item}`,
    o.late ? [" ", el("span", { class: "badge late" }, "late")] : null)));
}

async function act(button, fn) {
  button.disabled = true;
  showError(null);
  try {
    await fn();
    await load();
  } catch (err) {
    showError(err);
    button.disabled = false;
  }
}

function packCard(group) {
  const ids = group.orders.map((o) => o.id);
  const button = el("button", { type: "button", class: "primary" }, `Pack parcel (${ids.length} order${ids.length > 1 ? "s" : ""})`);
  button.addEventListener("click", () => act(button, () => api("POST", "/api/parcels", { order_ids: ids })));
  return el("li", { "data-buyer": group.buyer_id },
    el("h3", {}, group.buyer_name || `Buyer ${group.buyer_id}`, " ",
      group.late ? el("span", { class: "badge late" }, "late") : null),
    el("p", { class: "address" }, addressText(group.shipping_address, group.buyer_name)),
    el("p", { class: "muted" }, `Ship by ${when(group.ship_by)}`),
    orderItems(group.orders),
    el("div", { class: "actions" }, button));
}

function parcelCard(parcel) {
  const actions = el("div", { class: "actions" },
    el("a", { class: "button-link", href: `/api/parcels/${parcel.id}/slip`, target: "_blank", rel: "noopener" }, "Packing slip"));
  if (parcel.status === "packed") {
    const carrierId = `carrier-${parcel.id}`;
    const trackingId = `tracking-${parcel.id}`;
    const select = el("select", { id: carrierId }, carriers.map((c) => el("option", { value: c.key }, c.name)), el("option", { value: "other" }, "Other carrier"));
    const other = el("input", { "aria-label": "Carrier name", class: "hidden", maxlength: 40, placeholder: "Carrier name" });
    select.addEventListener("change", () => other.classList.toggle("hidden", select.value !== "other"));
    const tracking = el("input", { id: trackingId, maxlength: 60, required: true, autocomplete: "off" });
    const ship = el("button", { type: "button", class: "primary" }, "Ship");
    ship.addEventListener("click", () => act(ship, () => api("POST", `/api/parcels/${parcel.id}/ship`, {
      carrier: select.value === "other" ? other.value : select.value,
      tracking_number: tracking.value.trim(),
    })));
    actions.append(
      el("div", {}, el("label", { for: carrierId }, "Carrier"), select, other),
      el("div", {}, el("label", { for: trackingId }, "Tracking number"), tracking),
      ship);
  } else if (parcel.status === "shipped") {
    const deliver = el("button", { type: "button" }, "Mark delivered");
    deliver.addEventListener("click", () => act(deliver, () => api("POST", `/api/parcels/${parcel.id}/deliver`)));
    actions.append(deliver);
  }
  const tracking = parcel.tracking
    ? el("p", {}, `${parcel.carrier_name} · `, parcel.tracking_url
      ? el("a", { href: parcel.tracking_url, target: "_blank", rel: "noopener" }, parcel.tracking)
      : parcel.tracking)
    : null;
  return el("li", { "data-parcel": parcel.id },
    el("h3", {}, `Parcel P${parcel.id} · ${parcel.buyer_name || "Buyer " + parcel.buyer_id} `,
      el("span", { class: "badge state" }, parcel.status), " ",
      parcel.late ? el("span", { class: "badge late" }, "late") : null),
    el("p", { class: "address" }, addressText(parcel.shipping_address, parcel.buyer_name)),
    tracking,
    orderItems(parcel.orders),
    actions);
}

function returnCard(ret) {
  const actions = el("div", { class: "actions" });
  if (ret.status === "requested") {
    const noteId = `note-${ret.id}`;
    const note = el("input", { id: noteId, maxlength: 500 });
    const approve = el("button", { type: "button", class: "primary" }, "Approve");
    approve.addEventListener("click", () => act(approve, () => api("POST", `/api/returns/${ret.id}/approve`, { note: note.value })));
    const refuse = el("button", { type: "button" }, "Refuse");
    refuse.addEventListener("click", () => {
      if (!note.value.trim()) { showError(new Error("Write the reason for refusing in the note.")); note.focus(); return; }
      act(refuse, () => api("POST", `/api/returns/${ret.id}/refuse`, { reason: note.value }));
    });
    actions.append(el("div", {}, el("label", { for: noteId }, "Note to the buyer (the reason, if you refuse)"), note), approve, refuse);
  } else if (ret.status === "approved") {
    const qtyId = `resellable-${ret.id}`;
    const qty = el("input", { id: qtyId, type: "number", min: 0, max: ret.qty, value: ret.qty });
    const receive = el("button", { type: "button", class: "primary" }, "Mark received and refund");
    receive.addEventListener("click", () => act(receive, () => api("POST", `/api/returns/${ret.id}/receive`, { resellable_qty: Number(qty.value) })));
    actions.append(el("div", {}, el("label", { for: qtyId }, "Units fit to sell again"), qty), receive);
  }
  return el("li", { "data-return": ret.id },
    el("h3", {}, `Order #${ret.order_id} · ${ret.qty} unit(s) `, el("span", { class: "badge state" }, ret.status)),
    el("p", {}, `Reason: ${ret.reason}`),
    ret.rma ? el("p", {}, `RMA ${ret.rma}`) : null,
    ret.refusal_reason ? el("p", {}, `Refused: ${ret.refusal_reason}`) : null,
    ret.refund ? el("p", {}, `Refunded ${money(ret.refund.amount, ret.refund.currency || "USD")}`) : null,
    actions);
}

function list(id, items, render, empty) {
  $(id).replaceChildren(...(items.length ? items.map(render) : [el("li", { class: "muted" }, empty)]));
}

async function load() {
  const stream = $("show").value;
  const q = stream ? `?stream_id=${stream}` : "";
  const [desk, picks, returns] = await Promise.all([
    api("GET", `/api/orderdesk${q}`),
    api("GET", `/api/orderdesk/picklist${q}`),
    api("GET", "/api/returns"),
  ]);
  carriers = desk.carriers;
  const select = $("show");
  for (const show of desk.shows) {
    const known = [...select.options].find((o) => o.value === String(show.id));
    if (known) known.textContent = `${show.title} (#${show.id})`;
    else select.append(el("option", { value: show.id }, `${show.title} (#${show.id})`));
  }
  $("export").href = `/api/orderdesk/export.csv${q}`;
  $("summary").textContent = `${desk.to_pack.length} parcel(s) to pack · ${desk.late} late`;
  list("to-pack", desk.to_pack, packCard, "Nothing to pack.");
  $("picks").replaceChildren(...(picks.picks.length ? picks.picks.map((p) => el("tr", {},
    el("td", {}, p.sku), el("td", {}, p.title),
    el("td", {}, Object.entries(p.variant).map(([k, v]) => `${k}: ${v}`).join(", ")),
    el("td", {}, String(p.qty)))) : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, "Nothing to pick."))]));
  list("parcels", desk.parcels, parcelCard, "No parcels yet.");
  list("returns", returns.returns, returnCard, "No returns.");
}

async function loadPolicy() {
  const { policy } = await api("GET", "/api/shop/returns-policy");
  $("window").value = policy.return_window_days;
  $("free").checked = policy.free_returns;
}

$("policy").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(null);
  try {
    await api("PUT", "/api/shop/returns-policy", { return_window_days: Number($("window").value), free_returns: $("free").checked });
    $("policy-saved").textContent = "Saved.";
  } catch (err) {
    showError(err);
  }
});

$("show").addEventListener("change", () => {
  const stream = $("show").value;
  history.replaceState(null, "", stream ? `?stream_id=${stream}` : location.pathname);
  load().catch(showError);
});

(async () => {
  const user = await siteHeader();
  if (!user) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    return;
  }
  const wanted = new URLSearchParams(location.search).get("stream_id");
  if (wanted && /^\d+$/.test(wanted)) {
    $("show").append(el("option", { value: wanted }, `Show #${wanted}`));
    $("show").value = wanted;
  }
  try {
    await Promise.all([load(), loadPolicy()]);
  } catch (err) {
    showError(err);
  }
  $("main").setAttribute("aria-busy", "false");
})();
