// Where an order ships and what it costs before paying: the price lines (goods, shipping, tax,
// total), the buyer's saved address, and a form to add one. With real Stripe keys the form is
// Stripe's Address Element (through the same Stripe.js the payment form loads); with the
// embedded emulator it is a plain form of labelled fields.
import { api, el, money } from "/static/js/api.js";
import { loadStripe } from "/static/js/checkout.js";

/** What `qty` of a SKU would cost now, for the signed-in buyer (at `unitPrice`, a running
 * flash sale's price, if given; else the list price). */
export async function quote(skuId, streamId, qty = 1, unitPrice = undefined) {
  const query = new URLSearchParams({ sku_id: skuId, qty });
  if (streamId) query.set("stream_id", streamId);
  if (unitPrice !== undefined) query.set("unit_price_minor", unitPrice);
  return (await api("GET", `/api/quote?${query}`)).quote;
}

/** Price lines from a quote or an order view: goods, shipping, tax (included or added), total. */
export function priceLines(figures) {
  const c = (figures.total || figures.amount).currency;
  const total = (figures.total || figures.amount).amount;
  const row = (label, value, extra = {}) => el("div", { class: "price-line", ...extra }, el("span", {}, label), el("span", {}, value));
  return el(
    "div",
    { class: "price-lines", "aria-label": "Price" },
    row("Items", money(figures.goods.amount, c)),
    row("Shipping", figures.shipping.amount ? money(figures.shipping.amount, c) : "Free", { "data-line": "shipping" }),
    figures.tax_included
      ? row("incl. tax", money(figures.tax.amount, c), { "data-line": "tax", class: "price-line muted" })
      : row("Tax", money(figures.tax.amount, c), { "data-line": "tax" }),
    row("Total", money(total, c), { "data-line": "total", class: "price-line total" }),
  );
}

export function addressText(a) {
  return [a.name, a.line1, a.line2, [a.postal_code, a.city].filter(Boolean).join(" "), a.region, a.country].filter(Boolean).join(", ");
}

/** The buyer's default address, or null. */
export async function defaultAddress() {
  const { addresses } = await api("GET", "/api/addresses");
  return addresses.find((a) => a.is_default) || addresses[0] || null;
}

export async function shipOrderTo(orderId, addressId) {
  return (await api("PUT", `/api/orders/${orderId}/shipping-address`, { address_id: addressId })).order;
}

const FIELDS = [
  ["name", "Full name", { autocomplete: "name", maxlength: 100, required: true }],
  ["line1", "Address", { autocomplete: "address-line1", maxlength: 200, required: true }],
  ["line2", "Apartment, suite (optional)", { autocomplete: "address-line2", maxlength: 200 }],
  ["city", "City", { autocomplete: "address-level2", maxlength: 100, required: true }],
  ["region", "State or region (optional)", { autocomplete: "address-level1", maxlength: 100 }],
  ["postal_code", "Postal code", { autocomplete: "postal-code", maxlength: 20, required: true }],
  ["country", "Country (2 letters, e.g. US)", { autocomplete: "country", maxlength: 2, required: true }],
  ["phone", "Phone (optional)", { autocomplete: "tel", type: "tel", maxlength: 30 }],
];

function plainForm(container) {
  const inputs = {};
  const nodes = FIELDS.flatMap(([name, label, attrs]) => {
    inputs[name] = el("input", { id: `addr-${name}`, name, ...attrs });
    return [el("label", { for: `addr-${name}` }, label), inputs[name]];
  });
  container.replaceChildren(el("div", { class: "address-form" }, ...nodes));
  return async () => {
    const body = {};
    for (const [name] of FIELDS) body[name] = inputs[name].value.trim();
    if (!body.line2) delete body.line2;
    if (!body.region) delete body.region;
    if (!body.phone) delete body.phone;
    return body;
  };
}

async function stripeForm(stripe, container) {
  const element = stripe.elements().create("address", { mode: "shipping", fields: { phone: "auto" } });
  container.replaceChildren();
  element.mount(container);
  return async () => {
    const { complete, value } = await element.getValue();
    if (!complete) throw new Error("Complete the address first.");
    const a = value.address;
    const body = { name: value.name, line1: a.line1, city: a.city, postal_code: a.postal_code, country: a.country };
    if (a.line2) body.line2 = a.line2;
    if (a.state) body.region = a.state;
    if (value.phone) body.phone = value.phone.replace(/[^0-9+() .-]/g, "");
    return body;
  };
}

/**
 * Show an address form in `container`; resolves with the saved address once the buyer pressed
 * `submit` and the server accepted it (it becomes their default). Errors are shown through
 * `showError` and the form stays for another try.
 */
export async function addAddress(container, submit, showError) {
  let read;
  try {
    const { stripe, embedded } = await loadStripe();
    read = embedded ? plainForm(container) : await stripeForm(stripe, container);
  } catch (err) {
    read = plainForm(container); // Stripe.js unreachable: the plain form still works
  }
  for (;;) {
    await new Promise((resolve) => submit.addEventListener("click", resolve, { once: true }));
    submit.disabled = true;
    try {
      const body = await read();
      const { address } = await api("POST", "/api/addresses", { ...body, make_default: true });
      container.replaceChildren();
      return address;
    } catch (err) {
      showError(err.message);
    } finally {
      submit.disabled = false;
    }
  }
}
