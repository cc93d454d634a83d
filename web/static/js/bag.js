// The show's bag on the watch page: every product of the lineup (photo, description, price,
// variants, units left), bought from a panel over the stream without leaving it. A purchase is the
// same `buy` as the pinned card's (the page's `onBuy`), at the list price; the running flash
// sale's price shows on its own SKU only, as the server charges it.
import { api, el, money } from "/static/js/api.js";
import { DEFAULT_MAX_QTY, choiceName, fillQuantity, itemName, offerOf } from "/static/js/card.js";

const PLACEHOLDER = "/static/img/product.svg";

export class Bag {
  /**
   * `panel`: the dialog element; `opener`: the button that opens it; `offer()`: the room's
   * {stock, sale, saleLeft, mine} now; `onBuy({sku_id, qty, title, label, price, currency})`.
   */
  constructor(streamId, { panel, opener, offer, onBuy }) {
    this.streamId = streamId;
    this.panel = panel;
    this.opener = opener;
    this.offer = offer;
    this.onBuy = onBuy;
    this.products = [];
    this.maxQty = DEFAULT_MAX_QTY;
    this.items = new Map(); // product_id -> {product, variant select, qty select, ...}
    this.list = panel.querySelector(".bag-list");
    this.status = panel.querySelector(".bag-status");
    opener.addEventListener("click", () => this.open());
    panel.querySelector(".bag-close").addEventListener("click", () => this.close());
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        this.close();
      } else if (event.key === "Tab") {
        this.keepFocus(event);
      }
    });
  }

  get isOpen() {
    return !this.panel.classList.contains("hidden");
  }

  async open() {
    this.panel.classList.remove("hidden");
    this.opener.setAttribute("aria-expanded", "true");
    this.panel.querySelector(".bag-close").focus();
    await this.load();
  }

  close() {
    this.panel.classList.add("hidden");
    this.opener.setAttribute("aria-expanded", "false");
    this.opener.focus();
  }

  /** Tab and Shift+Tab stay inside the open panel (it is modal). */
  keepFocus(event) {
    const focusable = [...this.panel.querySelectorAll("button, select, a[href], input")].filter((n) => !n.disabled && n.offsetParent !== null);
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }

  async load() {
    this.status.textContent = this.products.length ? "" : "Loading the products…";
    this.panel.setAttribute("aria-busy", "true");
    try {
      const bag = await api("GET", `/api/streams/${this.streamId}/bag`);
      this.maxQty = bag.max_qty || DEFAULT_MAX_QTY;
      this.products = bag.products;
      const stock = this.offer().stock;
      for (const product of bag.products) for (const v of product.variants) stock[v.sku_id] = v.available;
      this.status.textContent = bag.products.length ? "" : "Nothing in this show's lineup yet.";
      this.draw();
    } catch (err) {
      this.status.textContent = `The products could not be loaded: ${err.message}`;
    } finally {
      this.panel.setAttribute("aria-busy", "false");
    }
  }

  /** Draw the products afresh, keeping what the buyer had chosen (variant, quantity). */
  draw() {
    const picks = new Map([...this.items].map(([id, e]) => [id, { variant: e.variant.value, qty: e.qty.value }]));
    this.items.clear();
    this.list.replaceChildren(...this.products.map((product) => this.item(product)));
    for (const [id, pick] of picks) {
      const entry = this.items.get(id);
      if (!entry) continue;
      if ([...entry.variant.options].some((o) => o.value === pick.variant)) entry.variant.value = pick.variant;
      entry.qty.replaceChildren(el("option", { value: pick.qty }, pick.qty));
      entry.qty.value = pick.qty;
    }
    this.refresh();
  }

  item(product) {
    const id = product.product_id;
    const multi = product.variants.length > 1;
    const variant = el("select", { id: `bag-variant-${id}`, class: multi ? "" : "hidden" },
      ...product.variants.map((v) => el("option", { value: v.sku_id }, v.label || product.title)));
    const qty = el("select", { id: `bag-qty-${id}` });
    const price = el("div", { class: "price" });
    const left = el("div", { class: "stock", "aria-live": "polite" });
    const buy = el("button", { type: "button", class: "primary", "data-product": id }, "Buy");
    const heading = `bag-title-${id}`;
    const node = el("article", { class: "bag-item", "data-product": id, "aria-labelledby": heading },
      el("img", { src: product.image_url || PLACEHOLDER, alt: product.image_url ? product.title : "" }),
      el("div", { class: "bag-body" },
        el("h3", { id: heading }, product.title),
        product.description ? el("p", { class: "muted" }, product.description) : null,
        price, left,
        el("div", { class: "row" },
          multi ? el("div", {}, el("label", { for: variant.id }, choiceName(product.variants)), variant) : variant,
          el("div", {}, el("label", { for: qty.id }, "Quantity"), qty)),
        buy));
    const entry = { product, variant, qty, price, left, buy };
    variant.addEventListener("change", () => this.refreshItem(entry));
    buy.addEventListener("click", () => {
      const chosen = this.chosen(entry);
      this.onBuy({
        sku_id: chosen.sku_id,
        qty: Number(qty.value) || 1,
        title: product.title,
        label: chosen.label,
        price: chosen.price.amount,
        currency: chosen.price.currency,
      });
    });
    this.items.set(id, entry);
    return node;
  }

  chosen(entry) {
    const sku = Number(entry.variant.value);
    return entry.product.variants.find((v) => v.sku_id === sku) || entry.product.variants[0];
  }

  /** Prices, units left and Buy, as the room's stock and sale stand now. */
  refresh() {
    for (const entry of this.items.values()) this.refreshItem(entry);
  }

  refreshItem(entry) {
    const chosen = this.chosen(entry);
    const room = this.offer();
    const offer = offerOf({ sku: chosen.sku_id, stock: room.stock, sale: room.sale, saleLeft: room.saleLeft, maxQty: this.maxQty, mine: room.mine });
    const { amount, currency } = chosen.price;
    entry.price.replaceChildren(offer.onSale
      ? el("span", {}, el("span", { class: "sale-price" }, money(room.sale.sale_price, currency)), el("s", {}, money(amount, currency)))
      : el("span", {}, money(amount, currency)));
    entry.left.textContent = offer.left === null ? "" : offer.soldOut ? "Sold out" : `${offer.left} left`;
    entry.left.classList.toggle("low", offer.left !== null && offer.left <= 5);
    fillQuantity(entry.qty, offer.max);
    entry.buy.disabled = offer.soldOut || offer.max < 1;
    entry.buy.textContent = offer.soldOut ? "Sold out" : offer.limited ? "Limit reached" : "Buy";
    entry.buy.setAttribute("aria-label", `${entry.buy.textContent}: ${itemName(entry.product.title, chosen.label)}`);
  }
}
