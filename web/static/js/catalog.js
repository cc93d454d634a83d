// The seller's catalog: add products with variants and photos, adjust stock with a reason,
// read each SKU's audit log, and set low-stock alerts.
import { ApiError, api, el, money, siteHeader } from "/static/js/api.js";

const REASONS = [
  ["received", "Received"], ["damaged", "Damaged"], ["lost", "Lost"],
  ["count_correction", "Count correction"], ["returned", "Returned"], ["other", "Other"],
];
const CURRENCIES = ["USD", "EUR", "GBP", "CAD", "AUD", "JPY"];
const $ = (id) => document.getElementById(id);
let me = null;
let variantSeq = 0;

function fractionDigits(currency) {
  return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
}

function showError(node, err) {
  node.textContent = err instanceof ApiError ? err.message : String(err.message || err);
  node.classList.remove("hidden");
}

/** Upload one photo as multipart/form-data; the server checks and thumbnails it. */
async function uploadPhoto(productId, file) {
  const form = new FormData();
  form.append("photo", file, file.name);
  // X-Requested-With: a cookie-borne multipart POST is taken only with a header no form can send.
  const response = await fetch(`/api/products/${productId}/photos`, {
    method: "POST", body: form, credentials: "same-origin", headers: { "X-Requested-With": "fetch" },
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    throw new ApiError(response.status, error.code || "http_" + response.status, error.message || response.statusText);
  }
  return data.product;
}

function variantRow() {
  const n = ++variantSeq;
  const field = (name, label, attrs = {}) => el("div", {},
    el("label", { for: `v${n}-${name}` }, label), el("input", { id: `v${n}-${name}`, "data-field": name, ...attrs }));
  const currency = el("select", { id: `v${n}-currency`, "data-field": "currency" },
    CURRENCIES.map((c) => el("option", { value: c }, c)));
  const row = el("div", { class: "variant-row", role: "group", "aria-label": `Variant ${n}` },
    field("size", "Size", { maxlength: "100", placeholder: "M" }),
    field("colour", "Colour", { maxlength: "100", placeholder: "Black" }),
    field("sku", "SKU code", { required: true, maxlength: "64", pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*" }),
    field("price", "Price", { required: true, type: "number", min: "0", step: "0.01", inputmode: "decimal" }),
    el("div", {}, el("label", { for: `v${n}-currency` }, "Currency"), currency),
    field("stock", "Stock", { type: "number", min: "0", step: "1", value: "0", inputmode: "numeric" }),
    el("button", { type: "button", "aria-label": `Remove variant ${n}`, onclick: () => row.remove() }, "Remove"),
  );
  return row;
}

function readVariants() {
  return [...$("np-variants").querySelectorAll(".variant-row")].map((row) => {
    const get = (name) => row.querySelector(`[data-field="${name}"]`).value.trim();
    const currency = get("currency");
    const attributes = {};
    if (get("size")) attributes.size = get("size");
    if (get("colour")) attributes.colour = get("colour");
    return {
      sku: get("sku"),
      price_minor: Math.round(Number(get("price")) * 10 ** fractionDigits(currency)),
      currency,
      stock_on_hand: Number(get("stock") || 0),
      attributes,
    };
  });
}

async function addProduct(event) {
  event.preventDefault();
  const error = $("np-error");
  const status = $("np-status");
  error.classList.add("hidden");
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const variants = readVariants();
    if (!variants.length) throw new Error("Add at least one variant.");
    const { product } = await api("POST", "/api/products", {
      title: $("np-title").value.trim(), description: $("np-description").value.trim(), variants,
    });
    const file = $("np-photo").files[0];
    if (file) {
      status.textContent = "Uploading the photo…";
      try {
        await uploadPhoto(product.id, file);
      } catch (err) {
        showError(error, new Error(`The product was added, but not its photo: ${err.message}`));
      }
    }
    event.target.reset();
    $("np-variants").replaceChildren(variantRow());
    status.textContent = `Added “${product.title}”.`;
    await refresh();
  } catch (err) {
    showError(error, err);
  } finally {
    button.disabled = false;
  }
}

function photoStrip(product) {
  const error = el("p", { class: "error hidden", role: "alert" });
  const input = el("input", { type: "file", accept: "image/jpeg,image/png,image/webp", id: `photo-${product.id}`, class: "sr-only" });
  input.addEventListener("change", async () => {
    if (!input.files[0]) return;
    error.classList.add("hidden");
    try {
      await uploadPhoto(product.id, input.files[0]);
      await refresh();
    } catch (err) {
      showError(error, err);
    }
  });
  const photos = product.photos.map((photo, i) => el("figure", {},
    el("img", { src: photo.thumbnail_url, alt: `${product.title}, photo ${i + 1}${i === 0 ? " (cover)" : ""}`, loading: "lazy" }),
    el("button", {
      type: "button", "aria-label": `Delete photo ${i + 1} of ${product.title}`,
      onclick: async () => {
        try {
          await api("DELETE", `/api/products/${product.id}/photos/${photo.id}`);
          await refresh();
        } catch (err) { showError(error, err); }
      },
    }, "Delete")));
  return el("div", {},
    el("div", { class: "photos" }, photos,
      el("label", { for: input.id, class: "button-like" }, el("span", { class: "muted" }, "+ Add a photo")), input),
    error);
}

function stockCell(product, variant, stock) {
  const error = el("p", { class: "error hidden", role: "alert" });
  const delta = el("input", { type: "number", step: "1", required: true, "aria-label": `Units to add or remove for ${variant.sku}`, placeholder: "±units" });
  const reason = el("select", { "aria-label": `Reason for ${variant.sku}` }, REASONS.map(([v, l]) => el("option", { value: v }, l)));
  const note = el("input", { maxlength: "200", "aria-label": `Note for ${variant.sku}`, placeholder: "note" });
  const adjust = el("form", {
    class: "adjust", "data-sku": variant.id,
    onsubmit: async (event) => {
      event.preventDefault();
      error.classList.add("hidden");
      try {
        await api("POST", `/api/skus/${variant.id}/adjustments`, { delta: Number(delta.value), reason: reason.value, note: note.value.trim() });
        await refresh();
      } catch (err) { showError(error, err); }
    },
  }, delta, reason, note, el("button", { type: "submit" }, "Adjust"));
  const threshold = el("input", {
    type: "number", min: "0", step: "1", "aria-label": `Low-stock alert level for ${variant.sku}`,
    placeholder: "alert at", value: stock?.low_stock_threshold ?? "",
  });
  const alert = el("form", {
    class: "threshold",
    onsubmit: async (event) => {
      event.preventDefault();
      error.classList.add("hidden");
      try {
        const value = threshold.value === "" ? null : Number(threshold.value);
        await api("PUT", `/api/skus/${variant.id}/low-stock`, { threshold: value });
        await refresh();
      } catch (err) { showError(error, err); }
    },
  }, el("span", { class: "muted" }, "Alert at ≤"), threshold, el("button", { type: "submit" }, "Save"));
  const history = el("ol", { class: "audit hidden", "aria-label": `Stock history of ${variant.sku}` });
  const toggle = el("button", {
    type: "button", "aria-expanded": "false",
    onclick: async () => {
      const open = toggle.getAttribute("aria-expanded") === "true";
      toggle.setAttribute("aria-expanded", String(!open));
      history.classList.toggle("hidden", open);
      if (open) return;
      try {
        const { adjustments } = await api("GET", `/api/skus/${variant.id}/adjustments?limit=20`);
        history.replaceChildren(...(adjustments.length ? adjustments.map((a) => el("li", {},
          `${new Date(a.created_at).toLocaleString()}: ${a.delta > 0 ? "+" : ""}${a.delta} (${a.reason.replace("_", " ")}${a.note ? ", " + a.note : ""}) → ${a.on_hand_after} on hand`))
          : [el("li", { class: "muted" }, "No adjustments yet.")]));
      } catch (err) { showError(error, err); }
    },
  }, "History");
  return el("td", { class: "stock-actions" }, adjust, alert, toggle, history, error);
}

function productItem(product, stockBySku) {
  const cover = product.image_url
    ? el("img", { src: product.photos[0]?.thumbnail_url || product.image_url, alt: "" })
    : el("div", { class: "no-photo", "aria-hidden": "true" });
  const rows = product.variants.map((variant) => {
    const stock = stockBySku.get(variant.id);
    const attrs = Object.entries(variant.attributes).map(([k, v]) => `${k}: ${v}`).join(", ") || "—";
    return el("tr", { "data-sku": variant.id },
      el("td", {}, el("b", {}, variant.sku), el("br"), el("span", { class: "muted" }, attrs)),
      el("td", {}, money(variant.price.amount, variant.price.currency)),
      el("td", { class: "stock" },
        stock ? `${stock.on_hand} on hand · ${stock.held} held · ${stock.available} free` : `${variant.stock_on_hand} on hand`,
        stock?.low ? el("span", { class: "badge low", role: "status" }, " Low stock") : null),
      stockCell(product, variant, stock));
  });
  return el("li", { class: "product-item", "data-product": product.id },
    el("div", { class: "product-head" }, cover,
      el("div", {}, el("h3", {}, product.title), el("p", { class: "muted" }, product.description || ""))),
    photoStrip(product),
    el("table", { class: "skus" },
      el("thead", {}, el("tr", {}, el("th", {}, "SKU"), el("th", {}, "Price"), el("th", {}, "Stock"), el("th", {}, "Adjust"))),
      el("tbody", {}, rows)));
}

async function refresh() {
  const [{ products }, { skus }] = await Promise.all([
    api("GET", `/api/products?owner=${me.id}&limit=200`),
    api("GET", "/api/inventory"),
  ]);
  const stockBySku = new Map(skus.map((s) => [s.sku_id, s]));
  $("products").replaceChildren(...(products.length
    ? products.map((p) => productItem(p, stockBySku))
    : [el("li", { class: "muted" }, "No products yet: add your first one.")]));
}

async function main() {
  me = await siteHeader();
  if (!me) {
    $("workspace").classList.add("hidden");
    $("sign-in").classList.remove("hidden");
    $("main").setAttribute("aria-busy", "false");
    return;
  }
  $("np-variants").append(variantRow());
  $("np-add-variant").addEventListener("click", () => {
    const row = variantRow();
    $("np-variants").append(row);
    row.querySelector("input").focus();
  });
  $("new-product").addEventListener("submit", addProduct);
  try {
    await refresh();
  } catch (err) {
    showError($("page-error"), err);
  }
  $("main").setAttribute("aria-busy", "false");
}

main();
