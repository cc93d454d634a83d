// The payment sheet (#sheet on the watch page and the order page): finish paying a reserved
// order with a card chosen now (the hold and its countdown stay the same while the buyer types,
// fixes a field or tries another card), cancel it, and the confirmation once it is paid.
import { api, el, money } from "/static/js/api.js";
import { CardDeclined, CardIncomplete, declinedText, mountCardForm, payWithCard } from "/static/js/checkout.js";
import { holdCountdown, itemTitle, orderSummary } from "/static/js/orders.js";

const $ = (id) => document.getElementById(id);

export function openSheet(title, body, actions) {
  $("sheet-title").textContent = title;
  $("sheet-body").replaceChildren(...[body].flat(Infinity).filter(Boolean));
  $("card-form").replaceChildren();
  $("card-form").classList.remove("card-fields");
  $("sheet-actions").replaceChildren(...actions);
  $("sheet-error").classList.add("hidden");
  $("sheet").classList.remove("hidden");
  const first = $("sheet-actions").querySelector("button:not([disabled])");
  if (first) first.focus();
}

/** What a cancel's answer tells the buyer, as [title, text]: cancelled and back on sale, or
 * paid before the cancel arrived (the order stands). */
export function cancelOutcome(order) {
  return order.status === "cancelled"
    ? ["Order cancelled", `Order #${order.id} is cancelled; ${itemTitle(order)} went back on sale.`]
    : ["Already paid", `Order #${order.id} was paid before it could be cancelled.`];
}

export function sheetError(message) {
  $("sheet-error").textContent = message;
  $("sheet-error").classList.remove("hidden");
}

function hideSheet() {
  $("sheet").classList.add("hidden");
}

/**
 * The sheet for a reserved order: card form, Pay, Cancel order, Close. `done(order|null)` is
 * called when the sheet closes (null: closed with the order still held, to finish later).
 * `viewOrder(order)`, if given, is offered on the confirmation; `summary`, nodes describing the
 * order (the default: quantity, item and amount).
 */
export async function payReservedOrder(order, { done = () => {}, viewOrder, note, summary } = {}) {
  const amount = money(order.amount.amount, order.amount.currency);
  const pay = el("button", { type: "button", class: "primary", id: "pay-card" }, `Pay ${amount}`);
  const cancel = el("button", { type: "button", id: "cancel-order" }, "Cancel order");
  const close = el("button", { type: "button", id: "close-sheet" }, "Close");
  openSheet("Finish paying", [
    summary || orderSummary(order), // the page's own (price lines, address), if it has one
    el("p", { class: "muted" }, "Your item is held for you for ", holdCountdown(order), ". ",
      note || "Close this and come back to it from Buy or your orders, or cancel it to put it back on sale."),
    el("p", { class: "muted small" }, `Order #${order.id}. The card is kept for one-tap buys once it has paid.`),
  ], [cancel, close, pay]);
  close.addEventListener("click", () => {
    hideSheet();
    done(null);
  });
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const { order: cancelled } = await api("POST", `/api/orders/${order.id}/cancel`, {});
      const [title, text] = cancelOutcome(cancelled);
      openSheet(title, [el("p", { role: "status" }, text)], [
        el("button", { type: "button", onclick: () => { hideSheet(); done(cancelled); } }, "Close"),
      ]);
    } catch (err) {
      cancel.disabled = false;
      sheetError(err.message);
    }
  });
  pay.disabled = true;
  const formBox = $("card-form");
  formBox.replaceChildren(el("p", { class: "muted" }, "Loading the secure card form…"));
  let form;
  try {
    form = await mountCardForm(formBox);
  } catch (err) {
    formBox.replaceChildren();
    sheetError(err.message);
    return;
  }
  pay.disabled = false;
  pay.addEventListener("click", async () => {
    pay.disabled = true;
    $("sheet-error").classList.add("hidden");
    try {
      const pm = await form.confirm();
      pay.textContent = "Paying…";
      const result = await payWithCard(order.id, pm);
      if (result.order.status === "reserved") {
        const reason = result.order.failure ? result.order.failure.message : "The payment was not confirmed.";
        sheetError(`${reason} Try again or use another card.`);
      } else {
        showResult(result.order, { done, viewOrder });
      }
    } catch (err) {
      if (err instanceof CardIncomplete) {
        if (err.problems.card) sheetError(err.problems.card); // the Payment Element's own
      } else if (err instanceof CardDeclined) {
        sheetError(`${declinedText(err.message)} Nothing was charged; try another card.`);
      } else if (err.code === "invalid_transition" || err.code === "not_found") {
        const { order: now } = await api("GET", `/api/orders/${order.id}`).catch(() => ({ order: null }));
        if (now) showResult(now, { done, viewOrder });
        else sheetError(err.message);
      } else {
        sheetError(err.message);
      }
    } finally {
      pay.disabled = false;
      pay.textContent = `Pay ${amount}`;
    }
  });
}

/** The end of a payment: the confirmation, a decline, or the order's state. */
export function showResult(order, { done = () => {}, viewOrder, retry } = {}) {
  const closeButton = el("button", { type: "button", onclick: () => { hideSheet(); done(order); } }, "Close");
  const view = viewOrder ? el("button", { type: "button", id: "view-order", onclick: () => { hideSheet(); done(order); viewOrder(order); } }, "View order") : null;
  if (order.status === "paid") {
    openSheet("Order confirmed", [
      el("p", { class: "status-ok", role: "status" }, `✓ Paid ${money(order.amount.amount, order.amount.currency)}`),
      el("p", { id: "order-item" }, `${order.qty} × ${itemTitle(order)}`),
      el("p", {}, `Order #${order.id}.`),
      el("p", { class: "muted" }, "We will let you know when it ships; follow it in your orders."),
    ], [closeButton, view].filter(Boolean));
  } else if (order.status === "failed") {
    const reason = order.failure ? order.failure.message : "The payment did not go through.";
    const other = retry ? el("button", { type: "button", class: "primary", id: "use-another-card", onclick: retry }, "Use another card") : null;
    openSheet("Payment declined", [el("p", { class: "error" }, reason), el("p", { class: "muted" }, "Nothing was charged; the item went back on sale.")], [closeButton, other].filter(Boolean));
  } else if (order.status === "reserved") {
    openSheet("Waiting for the payment", el("p", { class: "muted" }, "Your item is held. This updates by itself."), [closeButton]);
  } else {
    openSheet(`Order #${order.id}`, el("p", {}, `Order #${order.id} is ${order.status}.`), [closeButton, view].filter(Boolean));
  }
}
