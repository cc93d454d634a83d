// The pinned card's choices: which variant (the product's SKUs: size, colour...) and how many,
// bounded by the units left (a flash sale's own units while it runs on that SKU) and the sale's
// per-buyer limit; and the names a buyer reads ("Everyday Hoodie (M)").
import { el } from "/static/js/api.js";

// The most units one tap may take until the bag tells the server's figure (MAX_UNPAID_PER_SKU).
export const DEFAULT_MAX_QTY = 5;

/** "Everyday Hoodie (M)"; the title alone for a SKU without attributes. */
export function itemName(title, label) {
  return label ? `${title} (${label})` : title;
}

/** What the choice is called: the one attribute every variant has ("Size"), else "Option". */
export function choiceName(variants) {
  const keys = new Set(variants.flatMap((v) => Object.keys(v.attributes || {})));
  if (keys.size !== 1) return "Option";
  const [key] = keys;
  return key.charAt(0).toUpperCase() + key.slice(1);
}

/**
 * What a buyer may take of `sku` right now. `stock`: units left by SKU; `sale`: the room's
 * running sale (or null) with `saleLeft` its own units left; `mine`: units this buyer took in it.
 * Returns {left (null: not known yet), soldOut, onSale, max (0: nothing to take), limited}.
 */
export function offerOf({ sku, stock, sale, saleLeft, maxQty, mine = 0 }) {
  const onSale = Boolean(sale && sale.sku_id === sku);
  let left = stock[sku] ?? null;
  if (onSale && saleLeft !== null && saleLeft !== undefined) left = left === null ? saleLeft : Math.min(left, saleLeft);
  let max = maxQty;
  if (left !== null) max = Math.min(max, left);
  let limited = false;
  if (onSale && sale.per_buyer_limit - mine < max) {
    max = sale.per_buyer_limit - mine;
    limited = true;
  }
  return { left, soldOut: left === 0, onSale, max: Math.max(0, max), limited: limited && max <= 0 };
}

/** The quantity picker: a <select> of 1..max, keeping the buyer's pick while it still fits. */
export function fillQuantity(select, max) {
  const wanted = Number(select.value) || 1;
  const top = Math.max(1, max);
  if (select.options.length !== top) {
    select.replaceChildren(...Array.from({ length: top }, (_, i) => el("option", { value: i + 1 }, String(i + 1))));
  }
  select.value = String(Math.min(wanted, top));
  select.disabled = max <= 1;
}

/**
 * The variant chooser of the pinned card: one radio per SKU (arrow keys move between them),
 * built once per pin and then only updated, so focus and the buyer's pick survive stock pushes.
 */
export class VariantChooser {
  constructor(container, onPick) {
    this.container = container;
    this.onPick = onPick;
    this.key = null;
    this.inputs = new Map(); // sku_id -> input
  }

  /** Draw `card`'s variants with `picked` checked; `soldOut(sku)` marks those with none left. */
  render(card, picked, soldOut) {
    const variants = card ? card.variants || [] : [];
    const key = card ? `${card.pinned_at}:${card.sku_id}` : null;
    if (variants.length < 2) {
      this.container.replaceChildren();
      this.container.classList.add("hidden");
      this.key = key;
      this.inputs.clear();
      return;
    }
    this.container.classList.remove("hidden");
    if (key !== this.key) {
      this.key = key;
      this.inputs.clear();
      const name = choiceName(variants);
      const options = variants.map((v) => {
        const input = el("input", { type: "radio", name: "variant", value: v.sku_id, id: `variant-${v.sku_id}` });
        input.addEventListener("change", () => input.checked && this.onPick(v.sku_id));
        this.inputs.set(v.sku_id, input);
        return el("label", { class: "chip", for: `variant-${v.sku_id}` }, input, el("span", {}, v.label || `#${v.sku_id}`));
      });
      this.container.replaceChildren(el("legend", {}, name), ...options);
    }
    for (const [sku, input] of this.inputs) {
      input.checked = sku === picked;
      const out = soldOut(sku);
      input.closest("label").classList.toggle("out", out);
      if (out) input.setAttribute("aria-describedby", "variant-out");
      else input.removeAttribute("aria-describedby");
    }
    if (!this.container.querySelector("#variant-out")) {
      this.container.append(el("span", { id: "variant-out", class: "sr-only" }, "sold out"));
    }
  }
}
