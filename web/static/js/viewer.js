// The viewer page: the video, the pinned product with its flash-sale countdown, its variants and
// quantity, one-tap Buy, the show's bag, chat, reactions, viewer count and the purchase feed.
import { api, currentUser, el, money, streamIdFromPath } from "/static/js/api.js";
import { addAddress, addressText, defaultAddress, priceLines, quote, shipOrderTo } from "/static/js/address.js";
import { mountFollow } from "/static/js/follow.js";
import { Bag } from "/static/js/bag.js";
import { DEFAULT_MAX_QTY, VariantChooser, fillQuantity, itemName, offerOf } from "/static/js/card.js";
import { finish, payWithSavedCard, savedCard } from "/static/js/checkout.js";
import { holdCountdown, mountOrdersDrawer, myOrders, orderSummary as orderLine, useServerClock } from "/static/js/orders.js";
import { cancelOutcome, payReservedOrder, showResult } from "/static/js/paysheet.js";
import { LiveRoom, idempotencyKey } from "/static/js/live.js";
import { play } from "/static/js/media.js";
import { PHASES, paintBadge, phaseOf } from "/static/js/showstatus.js";

const $ = (id) => document.getElementById(id);
const streamId = streamIdFromPath();
const REACTION_EMOJI = { heart: "❤️", fire: "🔥", clap: "👏", laugh: "😂", wow: "😮" };

const heldSkus = new Set(); // SKUs the buyer holds unpaid: Buy offers to finish paying them
const view = {
  user: null,
  pinned: null, // PinnedProduct
  sale: null, // FlashSale while running
  saleEnded: false, // the SKU whose sale on the card is over: its Buy stays off until the next pin or sale
  stock: {}, // sku_id -> units available
  saleLeft: null, // the running sale's own units left (null: no sale, or not known yet)
  mine: {}, // sale_id -> units this buyer took in it (its per-buyer limit counts them)
  picked: null, // the variant (sku_id) the viewer chose on the card; the pinned one at first
  maxQty: DEFAULT_MAX_QTY,
  onAir: false,
  ended: false, // the show is over: nothing sells in it any more
  player: null,
  buying: false,
};
let bag = null; // the show's bag (below)

function show(node, visible) {
  node.classList.toggle("hidden", !visible);
}

// -- the stream -------------------------------------------------------------------------------

function setPhase(phase) {
  view.onAir = phase === "on_air";
  if (view.ended !== (phase === "ended")) {
    view.ended = phase === "ended";
    renderProduct();
  }
  paintBadge($("status"), phase);
  if (view.onAir) {
    show($("overlay"), false);
    startVideo();
  } else {
    stopVideo();
    $("overlay").replaceChildren(el("p", {}, PHASES[phase].note));
    show($("overlay"), true);
  }
}

/** An unknown show (deleted, or a mistyped link the server could not catch): say so. */
function showMissing() {
  $("stage").setAttribute("aria-busy", "false");
  $("title").textContent = "This show does not exist";
  document.title = "This show does not exist · livecommerce";
  $("status").classList.add("hidden");
  $("overlay").replaceChildren(
    el("h2", {}, "This show does not exist"),
    el("p", {}, el("a", { href: "/" }, "See the shows that are live and coming up")),
  );
  show($("overlay"), true);
  show($("product"), false);
  show($("chat-form"), false);
  show($("reactions"), false);
}

async function startVideo() {
  if (view.player) return;
  view.player = "starting";
  try {
    view.player = await play(streamId, $("video"));
    view.player.pc.addEventListener("connectionstatechange", () => {
      const state = view.player && view.player.pc && view.player.pc.connectionState;
      if (state === "failed" || state === "closed") retryVideo();
    });
  } catch (err) {
    view.player = null;
    if (view.onAir) setTimeout(startVideo, 2000);
  }
}

function stopVideo() {
  const player = view.player;
  view.player = null;
  if (player && player.close) player.close();
  $("video").srcObject = null;
}

function retryVideo() {
  stopVideo();
  if (view.onAir) setTimeout(startVideo, 1000);
}

$("unmute").addEventListener("click", () => {
  const video = $("video");
  video.muted = !video.muted;
  $("unmute").textContent = video.muted ? "🔇" : "🔊";
  $("unmute").setAttribute("aria-label", video.muted ? "Turn sound on" : "Turn sound off");
});

// -- the product card, the sale and its countdown ----------------------------------------------

/** The variant on the card: the viewer's pick among the pinned product's SKUs. */
function pickedVariant() {
  const card = view.pinned;
  const pinned = { sku_id: card.sku_id, label: card.variant || "", price: card.price, currency: card.currency };
  return (card.variants || []).find((v) => v.sku_id === view.picked) || pinned;
}

/** What the viewer may take of `sku` now (the sale's own units while it runs on that SKU). */
function offerFor(sku) {
  const sale = view.sale;
  return offerOf({ sku, stock: view.stock, sale, saleLeft: view.saleLeft, maxQty: view.maxQty, mine: sale ? view.mine[sale.sale_id] || 0 : 0 });
}

const chooser = new VariantChooser($("variants"), (sku) => {
  view.picked = sku;
  renderProduct();
});

function renderProduct() {
  const card = view.pinned;
  show($("product"), Boolean(card));
  if (bag) bag.refresh();
  holdConfirm();
  if (!card) return;
  const variant = pickedVariant();
  $("product-image").src = card.image_url || "/static/img/product.svg";
  $("product-image").alt = card.title;
  $("product-title").replaceChildren(card.title, variant.label ? el("span", { class: "variant" }, ` (${variant.label})`) : "");
  const sale = view.sale && view.sale.sku_id === variant.sku_id ? view.sale : null;
  $("product-price").replaceChildren(
    sale
      ? el("span", {}, el("span", { class: "sale-price" }, money(sale.sale_price, variant.currency)), el("s", {}, money(variant.price, variant.currency)))
      : el("span", {}, money(variant.price, variant.currency)),
  );
  const offer = offerFor(variant.sku_id);
  const left = offer.left;
  const stock = $("stock");
  const soldOut = offer.soldOut;
  stock.textContent = left === null ? "" : soldOut ? "Sold out" : `${left} left`;
  stock.classList.toggle("low", left !== null && left <= 5);
  chooser.render(card, variant.sku_id, (sku) => offerFor(sku).soldOut);
  fillQuantity($("qty"), offer.max);
  const buy = $("buy");
  const ended = view.saleEnded === variant.sku_id; // another variant still sells at its list price
  // The buyer's own unpaid hold of this SKU is theirs to finish, whatever the limits say.
  const held = heldSkus.has(variant.sku_id);
  buy.disabled = (!held && (soldOut || offer.max < 1 || ended || view.ended)) || view.buying;
  buy.textContent = view.buying
    ? "Buying…"
    : held
      ? "Finish paying"
      : view.ended
        ? "Show ended"
        : soldOut
          ? "Sold out"
          : ended
            ? "Sale ended"
            : offer.limited
              ? "Limit reached"
              : "Buy";
  tick();
}

function tick() {
  const countdown = $("countdown");
  const sale = view.sale;
  if (!sale || !view.pinned || sale.sku_id !== pickedVariant().sku_id) {
    const ended = Boolean(view.pinned) && view.saleEnded === pickedVariant().sku_id;
    show(countdown, ended);
    countdown.textContent = ended ? "Sale ended" : "";
    saleClock("");
    return;
  }
  if (offerFor(sale.sku_id).soldOut) {
    // Nothing left to count down to: the sale's units (or the SKU's) are gone.
    countdown.textContent = "Flash sale sold out";
    countdown.removeAttribute("aria-label");
    show(countdown, true);
    saleClock(countdown.textContent);
    return;
  }
  // The server's clock is an estimate (half a round trip either way): the time shown never
  // exceeds the sale's own length, so a 30-second sale never reads 0:31.
  const left = Math.min(sale.ends_at - sale.starts_at, Math.max(0, sale.ends_at - room.serverNow()));
  const seconds = Math.ceil(left / 1000);
  countdown.textContent = `Flash sale ends in ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  countdown.setAttribute("aria-label", `Flash sale ends in ${seconds} seconds`);
  show(countdown, true);
  saleClock(countdown.textContent);
}

// The card's countdown sits under the payment sheet while it is open: the same clock shows
// above the sheet then, so a buyer paying sees how long the price holds.
function saleClock(text) {
  const clock = $("sale-clock");
  const visible = Boolean(text) && !$("sheet").classList.contains("hidden");
  clock.textContent = visible ? text : "";
  show(clock, visible);
}
setInterval(tick, 250);

// -- buying --------------------------------------------------------------------------------------

function openSheet(title, body, actions) {
  $("sheet-title").textContent = title;
  $("sheet-body").replaceChildren(...[body].flat().filter(Boolean));
  $("card-form").replaceChildren();
  $("sheet-actions").replaceChildren(...actions);
  show($("sheet-error"), false);
  show($("sheet"), true);
  const first = $("sheet-actions").querySelector("button:not([disabled])");
  if (first) first.focus();
}

function closeSheet() {
  show($("sheet"), false);
  view.buying = false;
  renderProduct();
  // Back where the buy started: the bag if it is open, else the card.
  const back = bag && bag.isOpen ? $("bag").querySelector(".bag-close") : $("buy");
  if (back && !back.disabled) back.focus();
}

function sheetError(message) {
  $("sheet-error").textContent = message;
  show($("sheet-error"), true);
}

const closeButton = () => el("button", { type: "button", onclick: closeSheet }, "Close");

// The payment sheet moved on or closed by itself: Buy is on again.
function released() {
  view.buying = false;
  renderProduct();
  if (!$("sheet").classList.contains("hidden")) return;
  // Back where the buy started: the bag if it is open, else the card.
  const back = bag && bag.isOpen ? $("bag").querySelector(".bag-close") : $("buy");
  if (back && !back.disabled) back.focus();
}

/** The buyer's own unpaid order of this SKU, if they hold one (to finish paying it). */
async function heldOrder(skuId) {
  try {
    const { orders } = await myOrders({ status: "reserved", skuId, limit: 1 });
    if (orders[0]) heldSkus.add(skuId);
    else heldSkus.delete(skuId);
    return orders[0] || null;
  } catch (err) {
    return null;
  }
}

/** The buyer already holds this item unpaid: finish paying it (same order, same hold) or cancel. */
function offerHeld(order) {
  const cancel = el("button", { type: "button", id: "cancel-held" }, "Cancel it");
  const finishing = el("button", { type: "button", class: "primary", id: "finish-paying" }, "Finish paying");
  openSheet("Finish paying?", [
    el("p", {}, "You already hold this item, waiting for your payment."),
    orderLine(order),
    el("p", { class: "muted" }, "Held for you for ", holdCountdown(order), "."),
  ], [closeButton(), cancel, finishing]);
  finishing.addEventListener("click", () => finishPaying(order), { once: true });
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const { order: after } = await api("POST", `/api/orders/${order.id}/cancel`, {});
      const [title, text] = cancelOutcome(after);
      openSheet(title, el("p", { role: "status" }, text), [closeButton()]);
    } catch (err) {
      cancel.disabled = false;
      sheetError(err.message);
    }
  });
}

/** Pay a held order with a card chosen now (kept for one tap once it has paid). */
function finishPaying(order) {
  view.buying = true;
  renderProduct();
  payReservedOrder(order, { done: released, viewOrder: (o) => drawer.open(o), summary: [orderLine(order), ...orderSummary(order)] });
}

$("buy").addEventListener("click", () => {
  const card = view.pinned;
  if (!card) return;
  const variant = pickedVariant();
  confirmBuy({ sku_id: variant.sku_id, qty: Number($("qty").value) || 1, title: card.title, label: variant.label, price: variant.price, currency: variant.currency });
});

/** Confirm, then buy `item` ({sku_id, qty, title, label, price, currency}): the card's or the bag's. */
async function confirmBuy(item) {
  if (!view.user) {
    openSheet("Log in to buy", el("p", {}, "You need an account to buy during the show."), [
      closeButton(),
      el("a", { href: `/login?next=${encodeURIComponent(location.pathname)}`, class: "primary" }, el("button", { type: "button", class: "primary" }, "Log in")),
    ]);
    return;
  }
  const held = await heldOrder(item.sku_id);
  if (held) return offerHeld(held);
  // A flash-sale price is for the sale's own SKU only, whether bought on the card or in the bag.
  const sale = view.sale && view.sale.sku_id === item.sku_id ? view.sale : null;
  const price = sale ? sale.sale_price : item.price;
  const name = itemName(item.title, item.label);
  const [saved, figures] = await Promise.all([
    savedCard().catch(() => null),
    quote(item.sku_id, streamId, item.qty, sale ? sale.sale_price : undefined).catch(() => null),
  ]);
  const address = figures && figures.ships ? await defaultAddress().catch(() => null) : null;
  // Without the figures (the quote failed), the item is held first and its exact figures
  // shown before any charge.
  const exact = Boolean(figures);
  const oneTap = exact && saved && (!figures.ships || address);
  const label = oneTap ? `Pay ${money(figures.total.amount, figures.total.currency)}` : "Continue";
  const confirm = el("button", { type: "button", class: "primary", id: "confirm-buy" }, label);
  const another = saved ? el("button", { type: "button", id: "use-another-card" }, "Use another card") : null;
  openSheet(`Buy ${name}?`, [
    el("p", { id: "confirm-line" }, `${item.qty} × ${name} for ${money(price * item.qty, item.currency)}`),
    exact ? priceLines(figures) : el("p", { class: "muted" }, "Shipping and tax are shown before you pay."),
    figures && figures.ships ? el("p", { class: "muted", id: "ship-to" }, address ? `Ships to ${addressText(address)}` : "You will add a shipping address in the next step.") : null,
    // Never "Paid" before the payment went through: the card is offered, not charged yet.
    el("p", { class: "muted" }, saved ? `Pay with ${saved.label}${oneTap ? " in one tap" : ""}` : "You will add a card in the next step."),
  ], [closeButton(), another, confirm].filter(Boolean));
  // The tap carries the unit price shown: the server never holds it at a higher one.
  const shown = { ...item, shown: price };
  confirm.addEventListener("click", () => buy(shown, saved, !oneTap), { once: true });
  if (another) another.addEventListener("click", () => buy(shown, null, true), { once: true });
  confirm.dataset.sku = item.sku_id;
  confirm.dataset.sale = sale ? sale.sale_id : ""; // priced at this sale's price
  holdConfirm();
}

/** A confirmation left open while the units run out, the sale it was priced at ends or the
 * show ends cannot be paid: it says so at once (the price it shows is no longer the price). */
function holdConfirm() {
  const confirm = $("confirm-buy");
  if (!confirm || $("sheet").classList.contains("hidden")) return;
  const saleGone = Boolean(confirm.dataset.sale) && (!view.sale || view.sale.sale_id !== confirm.dataset.sale);
  const why = view.ended
    ? "Show ended"
    : offerFor(Number(confirm.dataset.sku)).soldOut
      ? "Sold out"
      : saleGone
        ? "Sale ended"
        : null;
  if (!why) return;
  confirm.disabled = true;
  confirm.textContent = why;
  const another = $("use-another-card");
  if (another) another.disabled = true;
  if (saleGone && !view.ended && !$("confirm-gone")) {
    $("confirm-line").after(
      el("p", { id: "confirm-gone", role: "status" }, "The flash sale ended before you paid: nothing was charged. Close this and tap Buy for the list price."),
    );
  }
}

/** `saved`: the one-tap card to charge (null: pay with a card chosen now). `key`: the
 * purchase's idempotency key (a retry after no answer sends the same one: never bought twice). */
async function buy(item, saved, reviewFirst, key = idempotencyKey()) {
  view.buying = true;
  renderProduct();
  openSheet("Placing your order…", el("p", { class: "muted" }, "Holding your item."), []);
  try {
    const terms = { sku_id: item.sku_id, qty: item.qty, stream_id: streamId };
    if (Number.isInteger(item.shown)) terms.unit_price_minor = item.shown;
    // Reviewing first (or paying with a card chosen now): hold the item without charging.
    const result = reviewFirst || !saved
      ? await api("POST", "/api/purchases", { ...terms, pay_with_saved_card: false }, { "Idempotency-Key": key })
      : await room.call("buy", { ...terms, idempotency_key: key });
    if (result.order.status === "reserved") heldSkus.add(result.order.sku_id);
    const sale = result.order.flash_sale;
    if (sale && !result.replayed) view.mine[sale] = (view.mine[sale] || 0) + result.order.qty;
    if (result.order.status === "reserved" && (reviewFirst || result.address_required || !saved)) {
      let order = result.order;
      if (result.address_required) order = await askAddress(order);
      if (!saved) finishPaying(order);
      else await reviewAndPay(order, item);
    } else {
      await settle(result, item);
    }
  } catch (err) {
    const messages = {
      sold_out: "Sold out: someone was faster this time.",
      insufficient_stock: "Not enough left for that quantity.",
      limit_exceeded: "You have reached this sale's limit per buyer.",
      too_many_unpaid: "You have items waiting for payment: pay for or cancel them first.",
      stream_ended: "This show has ended.",
      not_in_lineup: "This product is no longer part of the show.",
      sale_not_active: "The sale has ended.",
      not_authenticated: "Your session ended. Log in again to buy.",
    };
    if (["limit_exceeded", "too_many_unpaid"].includes(err.code)) {
      const held = await heldOrder(item.sku_id);
      if (held) return offerHeld(held);
    }
    // Some units may be left: a sale with fewer than asked, a limit with some still allowed.
    const extra = err.details || err; // HTTP errors carry their fields in details, acks on the error
    let text = messages[err.code] || err.message;
    if (err.code === "sold_out" && extra.available > 0) text = `Only ${extra.available} left in the flash sale: choose fewer.`;
    if (err.code === "limit_exceeded" && extra.remaining > 0) text = `This sale's limit lets you take ${extra.remaining} more: choose fewer.`;
    if (err.code === "price_changed" && Number.isInteger(extra.unit_price_minor)) {
      text = `The price is now ${money(extra.unit_price_minor, extra.currency)} each (the flash sale ended or the price changed): nothing was bought or charged. Tap Buy to see the new total.`;
    }
    const actions = [closeButton()];
    if (err.code === "timeout" || err.code === "network") {
      // No answer is not a refusal: the order may have been placed (and paid) meanwhile.
      actions.push(el("button", { type: "button", class: "primary", id: "check-again", onclick: () => buy(item, saved, reviewFirst, key) }, "Check again"));
      openSheet("No answer yet", el("p", {}, "The server did not answer in time, so this order may have gone through. Check again: it is never bought twice."), actions);
      return;
    }
    if (err.code === "card_unusable" || err.code === "payment_failed") {
      actions.push(el("button", { type: "button", class: "primary", id: "use-another-card", onclick: () => buy(item, null, true) }, "Use another card"));
    }
    openSheet("Not bought", el("p", {}, text), actions);
  }
}

async function askAddress(order) {
  const submit = el("button", { type: "button", class: "primary", id: "save-address" }, "Ship here");
  openSheet("Shipping address", el("p", { class: "muted" }, "Your item is held for you. Where should it go?"), [closeButton(), submit]);
  const address = await addAddress($("card-form"), submit, sheetError);
  return shipOrderTo(order.id, address.id);
}

function orderSummary(order) {
  return [
    priceLines(order),
    order.shipping_address ? el("p", { class: "muted", id: "ship-to" }, `Ships to ${addressText(order.shipping_address)}`) : null,
  ];
}

async function reviewAndPay(order, item) {
  const pay = el("button", { type: "button", class: "primary", id: "confirm-pay" }, `Pay ${money(order.amount.amount, order.amount.currency)}`);
  const another = el("button", { type: "button", id: "use-another-card" }, "Use another card");
  openSheet("Review and pay", orderSummary(order), [closeButton(), another, pay]);
  another.addEventListener("click", () => finishPaying(order), { once: true });
  await new Promise((resolve) => pay.addEventListener("click", resolve, { once: true }));
  openSheet("Paying…", el("p", { class: "muted" }, "Charging your card."), []);
  try {
    await settle(await payWithSavedCard(order.id), item);
  } catch (err) {
    const retry = el("button", { type: "button", class: "primary", id: "use-another-card", onclick: () => buy(item, null, true) }, "Use another card");
    openSheet("Payment failed", el("p", {}, err.message), [closeButton(), retry]);
  }
}

async function settle(result, item) {
  const needsBank = result.payment && result.payment.status === "requires_action";
  if (needsBank) openSheet("Confirm with your bank", el("p", { class: "muted" }, "Your bank asks you to confirm this payment (3-D Secure)."), []);
  const final = needsBank ? await finish(result) : result;
  if (final.order.status === "reserved") return finishPaying(final.order);
  showOrder(final.order, item);
}

/** The end of a payment (the confirmation, a decline with "Use another card", ...). */
function showOrder(order, item) {
  const retry = item ? () => buy(item, null, true) : undefined;
  showResult(order, { done: released, viewOrder: (o) => drawer.open(o), retry });
}

// -- chat, reactions, feed -------------------------------------------------------------------

function chatLine(message) {
  const who = el("b", { class: message.user.role === "viewer" ? "" : "mod" }, message.user.display_name);
  return el("div", { class: "msg", "data-id": message.id }, who, message.text);
}

function addChat(message) {
  const chat = $("chat");
  chat.append(chatLine(message));
  while (chat.children.length > 60) chat.firstChild.remove();
  chat.scrollTop = chat.scrollHeight;
}

$("chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("chat-text");
  const text = input.value.trim();
  if (!text) return;
  if (!view.user) {
    location.href = `/login?next=${encodeURIComponent(location.pathname)}`;
    return;
  }
  try {
    await room.call("chat:send", { stream_id: streamId, text });
    input.value = "";
    show($("chat-error"), false);
  } catch (err) {
    $("chat-error").textContent = err.message;
    show($("chat-error"), true);
  }
});

for (const button of $("reactions").querySelectorAll("button")) {
  button.addEventListener("click", () => room.call("reaction:send", { stream_id: streamId, kind: button.dataset.kind }).catch(() => {}));
}

function burst(counts) {
  for (const [kind, count] of Object.entries(counts)) {
    for (let i = 0; i < Math.min(count, 6); i++) {
      const node = el("div", { class: "burst", "aria-hidden": "true", style: `right:${1 + Math.random() * 3}em;animation-delay:${i * 0.12}s` }, REACTION_EMOJI[kind] || "❤️");
      $("stage").append(node);
      setTimeout(() => node.remove(), 2500);
    }
  }
}

function toast(text) {
  const node = el("div", {}, text);
  $("feed").append(node);
  setTimeout(() => node.remove(), 4200);
}

// -- the room --------------------------------------------------------------------------------

function applyState(state) {
  $("stage").setAttribute("aria-busy", "false");
  $("title").textContent = state.title;
  if (!$("follow").hasChildNodes()) mountFollow($("follow"), streamId).catch(() => {});
  document.title = `${state.title} · livecommerce`;
  $("viewers").textContent = `👁 ${state.viewers}`;
  if (!state.pinned || !view.pinned || state.pinned.pinned_at !== view.pinned.pinned_at) view.picked = state.pinned ? state.pinned.sku_id : null;
  view.pinned = state.pinned;
  view.sale = state.sale;
  view.saleLeft = state.sale_left ?? null;
  if (state.sale) view.mine[state.sale.sale_id] = state.sale_mine || 0;
  view.saleEnded = false;
  for (const [sku, left] of Object.entries(state.stock || {})) view.stock[sku] = left;
  $("chat").replaceChildren(...state.chat.map(chatLine));
  setPhase(phaseOf(state));
  renderProduct();
}

const room = new LiveRoom(streamId, {
  onState: applyState,
  onConnection: (status, err) => {
    if (status === "error" && err && err.code === "not_found") {
      room.close();
      showMissing();
      return;
    }
    show($("banner"), status === "reconnecting");
    $("banner").textContent = "Reconnecting…";
  },
});
// Holds count down by the server's clock, as the sale's countdown does.
useServerClock(() => room.serverNow());

room
  .on("product:pinned", ({ product, stock, stock_by_sku: bySku }) => {
    view.pinned = product;
    view.picked = product.sku_id;
    view.saleEnded = false;
    Object.assign(view.stock, bySku || {});
    if (stock !== null && stock !== undefined) view.stock[product.sku_id] = stock;
    renderProduct();
  })
  .on("product:unpinned", () => {
    view.pinned = null;
    renderProduct();
  })
  .on("sale:started", ({ sale, stock }) => {
    view.sale = sale;
    view.saleLeft = sale.quantity;
    if (stock !== null && stock !== undefined) view.stock[sale.sku_id] = stock;
    view.saleEnded = false;
    renderProduct();
  })
  .on("sale:ended", ({ sale_id: saleId }) => {
    if (view.sale && view.sale.sale_id === saleId) {
      const sku = view.sale.sku_id;
      const onCard = view.pinned && (view.pinned.sku_id === sku || (view.pinned.variants || []).some((v) => v.sku_id === sku));
      view.saleEnded = onCard ? sku : false;
      view.sale = null;
      view.saleLeft = null;
      renderProduct();
    }
  })
  .on("stock:changed", ({ sku_id: sku, available, sale_left: saleLeft }) => {
    view.stock[sku] = available;
    // The sale's own units: "Sold out" for everyone the moment they are gone.
    if (view.sale && view.sale.sku_id === sku && saleLeft !== null && saleLeft !== undefined) view.saleLeft = saleLeft;
    renderProduct();
  })
  .on("viewers", ({ count }) => ($("viewers").textContent = `👁 ${count}`))
  .on("chat:message", addChat)
  .on("chat:deleted", ({ id }) => {
    const node = $("chat").querySelector(`[data-id="${CSS.escape(id)}"]`);
    if (node) node.remove();
  })
  .on("reactions", ({ counts }) => burst(counts))
  .on("purchase:feed", ({ sku_id: sku, qty }) => toast(`🛍 Someone just bought ${qty} × ${soldName(sku)}`))
  .on("stream:status", (change) => {
    view.onAir = change.on_air;
    setPhase(phaseOf(change));
  })
  .on("order:update", ({ order }) => {
    if (order.status === "reserved") heldSkus.add(order.sku_id);
    else if (heldSkus.delete(order.sku_id)) renderProduct();
    const sale = order.flash_sale;
    if (sale && view.mine[sale] && ["cancelled", "expired", "failed"].includes(order.status)) {
      // A hold given back no longer counts toward the sale's limit per buyer.
      view.mine[sale] = Math.max(0, view.mine[sale] - order.qty);
      renderProduct();
    }
    if (view.waitingFor === order.id && order.status !== "reserved") {
      view.waitingFor = null;
      showOrder(order);
    }
  });

/** What the feed calls a SKU: the pinned product's variant, a bag item, or "an item". */
function soldName(sku) {
  const variant = view.pinned && (view.pinned.variants || []).find((v) => v.sku_id === sku);
  if (variant) return itemName(view.pinned.title, variant.label);
  for (const product of bag.products) {
    const found = product.variants.find((v) => v.sku_id === sku);
    if (found) return itemName(product.title, found.label);
  }
  return "an item";
}

bag = new Bag(streamId, {
  panel: $("bag"),
  opener: $("bag-open"),
  offer: () => ({ stock: view.stock, sale: view.sale, saleLeft: view.saleLeft, mine: view.sale ? view.mine[view.sale.sale_id] || 0 : 0 }),
  onBuy: confirmBuy,
});
// The bag is read once up front: the feed names what sold, and the card's quantity picker
// follows the server's bound on one purchase (the bag says it).
bag.load().then(() => {
  view.maxQty = bag.maxQty;
  renderProduct();
});

currentUser().then(async (user) => {
  view.user = user;
  if (!user) return;
  // Holds from before this page opened (another tab, a reload) can be finished from Buy too.
  const { orders } = await myOrders({ status: "reserved", limit: 50 }).catch(() => ({ orders: [] }));
  for (const order of orders) heldSkus.add(order.sku_id);
  if (orders.length) renderProduct();
});

const drawer = mountOrdersDrawer({ room, onFinishPaying: finishPaying });
