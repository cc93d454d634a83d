// The studio's sell-out forecast: while the show is live, "at this rate sold out in N min"
// per lineup SKU, from the show's recent sales (GET /api/streams/{id}/forecast every 15 s).
import { api, el, streamIdFromPath } from "/static/js/api.js";

const streamId = streamIdFromPath();
const list = document.getElementById("forecast-list");

function line(sku) {
  const name = `${sku.title} (${Object.values(sku.attributes).join(" / ") || sku.sku})`;
  let text;
  if (sku.available <= 0) text = "sold out";
  else if (sku.sold_out_in_minutes === null) text = `${sku.available} left, no sales yet`;
  else text = `${sku.available} left: at this rate sold out in ${Math.max(1, Math.round(sku.sold_out_in_minutes))} min`;
  return el("li", { "data-sku": sku.sku_id }, el("b", {}, name), " ", text);
}

async function refresh() {
  try {
    const { skus } = await api("GET", `/api/streams/${streamId}/forecast`);
    list.replaceChildren(...(skus.length ? skus.map(line) : [el("li", { class: "muted" }, "The lineup is empty.")]));
  } catch (err) {
    list.replaceChildren(el("li", { class: "muted" }, `Forecast unavailable: ${err.message}`));
  }
}

if (list && streamId) {
  refresh();
  setInterval(refresh, 15000);
}
