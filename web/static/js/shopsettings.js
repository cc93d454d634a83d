// The studio's shop settings form: shipping, free shipping over a threshold, and tax (included in
// prices or added at a rate). Fields are declared in FIELDS; another setting is one more entry.
import { api, el } from "/static/js/api.js";

const cents = { read: (v) => Math.round(Number(v) * 100), show: (v) => (v / 100).toFixed(2) };
const percent = { read: (v) => Math.round(Number(v) * 100), show: (v) => String(v / 100) };

// [key, label, input attributes, {read, show} (form value <-> API value), optional]
export const FIELDS = [
  ["shipping_flat_minor", "Shipping per order (e.g. 4.99; 0 = free)", { type: "number", min: "0", step: "0.01", inputmode: "decimal" }, cents],
  ["free_shipping_over_minor", "Free shipping when a buyer's items in one show reach (empty = never)", { type: "number", min: "0.01", step: "0.01", inputmode: "decimal" }, cents, true],
  ["tax_mode", "Tax", { options: [["included", "Included in my prices"], ["added", "Added at checkout"]] }],
  ["tax_rate_bp", "Tax rate (%)", { type: "number", min: "0", max: "100", step: "0.01", inputmode: "decimal" }, percent],
];

function input(key, attrs) {
  if (attrs.options) {
    return el("select", { id: `shop-${key}`, name: key }, ...attrs.options.map(([value, label]) => el("option", { value }, label)));
  }
  return el("input", { id: `shop-${key}`, name: key, ...attrs });
}

export async function mountShopSettings(section) {
  const { settings } = await api("GET", "/api/shop/settings");
  const inputs = {};
  const rows = FIELDS.flatMap(([key, label, attrs, convert]) => {
    inputs[key] = input(key, attrs);
    const value = settings[key];
    inputs[key].value = value === null ? "" : convert ? convert.show(value) : value;
    return [el("label", { for: `shop-${key}` }, label), inputs[key]];
  });
  const status = el("p", { class: "muted", role: "status", id: "shop-status" });
  const save = el("button", { type: "submit", class: "primary", id: "shop-save" }, "Save shop settings");
  const form = el("form", { id: "shop-form" }, ...rows, el("p", {}, save), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { ...settings }; // fields this form does not show keep their values
    for (const [key, , , convert, optional] of FIELDS) {
      const raw = inputs[key].value.trim();
      body[key] = optional && raw === "" ? null : convert ? convert.read(raw) : raw;
    }
    save.disabled = true;
    try {
      Object.assign(settings, (await api("PUT", "/api/shop/settings", body)).settings);
      status.className = "status-ok";
      status.textContent = "Saved.";
    } catch (err) {
      status.className = "error";
      status.textContent = err.message;
    } finally {
      save.disabled = false;
    }
  });
  section.replaceChildren(el("h2", { id: "shop-h" }, "Shop settings"), form);
}

const section = document.getElementById("shop-settings");
if (section) mountShopSettings(section).catch((err) => section.replaceChildren(el("p", { class: "error", role: "alert" }, err.message)));
