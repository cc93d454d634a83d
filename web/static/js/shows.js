// The creator's shows: schedule, edit, build the lineup (drag, or Up/Down from the keyboard),
// invite moderators by email, and read the reorder suggestions once a show is over.
import { ApiError, api, el, siteHeader } from "/static/js/api.js";

const $ = (id) => document.getElementById(id);
let me = null;
let products = new Map(); // id -> product
let current = null; // the show being edited
let lineup = []; // product ids, in order

function showError(node, err) {
  node.textContent = err instanceof ApiError ? err.message : String(err.message || err);
  node.classList.remove("hidden");
}

/** datetime-local's value is local time without a zone; the API takes an aware ISO time. */
const toIso = (value) => (value ? new Date(value).toISOString() : null);
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function announce(text) {
  $("lineup-status").textContent = text;
}

function move(index, to) {
  if (to < 0 || to >= lineup.length || to === index) return;
  const [id] = lineup.splice(index, 1);
  lineup.splice(to, 0, id);
  renderLineup();
  announce(`${products.get(id)?.title || "Product"} moved to position ${to + 1} of ${lineup.length}. Save the lineup to keep it.`);
}

let dragged = null;
function renderLineup(focus) {
  const items = lineup.map((id, i) => {
    const product = products.get(id);
    const title = product ? product.title : `Product ${id}`;
    const up = el("button", { type: "button", class: "up", "aria-label": `Move ${title} up`, disabled: i === 0, onclick: () => { move(i, i - 1); focusButton(i - 1, "up"); } }, "↑ Up");
    const down = el("button", { type: "button", class: "down", "aria-label": `Move ${title} down`, disabled: i === lineup.length - 1, onclick: () => { move(i, i + 1); focusButton(i + 1, "down"); } }, "↓ Down");
    const remove = el("button", { type: "button", "aria-label": `Remove ${title} from the lineup`, onclick: () => { lineup.splice(i, 1); renderLineup(); fillPicker(); announce(`${title} removed.`); } }, "Remove");
    const li = el("li", { draggable: "true", "data-product": id },
      el("span", { class: "grip", "aria-hidden": "true" }, "⋮⋮"),
      product?.photos?.[0] ? el("img", { src: product.photos[0].thumbnail_url, alt: "" }) : null,
      el("span", { class: "name" }, `${i + 1}. ${title}`), up, down, remove);
    li.addEventListener("dragstart", (event) => {
      dragged = i;
      li.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", String(id));
    });
    li.addEventListener("dragend", () => li.classList.remove("dragging"));
    li.addEventListener("dragover", (event) => { event.preventDefault(); li.classList.add("drop-target"); });
    li.addEventListener("dragleave", () => li.classList.remove("drop-target"));
    li.addEventListener("drop", (event) => {
      event.preventDefault();
      li.classList.remove("drop-target");
      if (dragged !== null) move(dragged, i);
      dragged = null;
    });
    return li;
  });
  $("builder").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "No products in the lineup yet.")]));
  if (focus) focus();
}

function focusButton(index, kind) {
  const li = $("builder").children[Math.max(0, Math.min(index, lineup.length - 1))];
  const button = li?.querySelector(`button.${kind}`);
  (button && !button.disabled ? button : li?.querySelector("button:not([disabled])"))?.focus();
}

function fillPicker() {
  const free = [...products.values()].filter((p) => !lineup.includes(p.id));
  $("add-product").replaceChildren(...(free.length
    ? free.map((p) => el("option", { value: p.id }, p.title))
    : [el("option", { value: "" }, "All your products are in the lineup")]));
  $("add-to-lineup").disabled = !free.length;
}

async function loadInvitations() {
  const { invitations } = await api("GET", `/api/streams/${current.id}/invitations`);
  $("ed-invitations").replaceChildren(...(invitations.length ? invitations.map((inv) => el("li", { "data-invitation": inv.id },
    `${inv.email || inv.user.display_name} (invited) `,
    el("button", {
      type: "button", "aria-label": `Revoke the invitation of ${inv.email || inv.user.display_name}`,
      onclick: async () => { await api("DELETE", `/api/streams/${current.id}/invitations/${inv.id}`); await loadInvitations(); },
    }, "Revoke"))) : [el("li", { class: "muted" }, "No pending invitations.")]));
}

async function loadReorder() {
  if (current.status !== "ended") {
    $("reorder").classList.add("hidden");
    return;
  }
  const { skus } = await api("GET", `/api/streams/${current.id}/reorder`);
  $("reorder-rows").replaceChildren(...skus.map((s) => el("tr", { "data-sku": s.sku_id },
    el("td", {}, `${s.title} (${s.sku})`), el("td", {}, s.sold), el("td", {}, s.left),
    el("td", {}, `${Math.round(s.sell_through * 100)}%`), el("td", {}, el("b", {}, s.reorder)))));
  $("reorder").classList.remove("hidden");
}

async function edit(streamId) {
  const error = $("ed-error");
  error.classList.add("hidden");
  const { stream } = await api("GET", `/api/streams/${streamId}`);
  current = stream;
  lineup = stream.lineup.map((p) => (typeof p === "object" ? p.id : p));
  $("ed-h").textContent = stream.title;
  $("ed-title").value = stream.title;
  $("ed-description").value = stream.description || "";
  $("ed-when").value = toLocalInput(stream.scheduled_at);
  $("ed-studio").href = `/studio/${stream.id}`;
  $("ed-moderators").replaceChildren(...(stream.moderators.length
    ? stream.moderators.map((m) => el("li", {}, m.display_name))
    : [el("li", { class: "muted" }, "No moderators yet.")]));
  announce("");
  renderLineup();
  fillPicker();
  $("editor").classList.remove("hidden");
  for (const button of $("shows").querySelectorAll("button")) button.setAttribute("aria-pressed", String(Number(button.dataset.stream) === stream.id));
  try {
    await Promise.all([loadInvitations(), loadReorder()]);
  } catch (err) {
    showError(error, err);
  }
}

async function refreshShows() {
  const { streams } = await api("GET", `/api/streams?creator=${me.id}&limit=200`);
  $("shows").replaceChildren(...(streams.length ? streams.map((s) => el("li", {},
    el("button", { type: "button", "data-stream": s.id, "aria-pressed": String(current?.id === s.id), onclick: () => edit(s.id).catch((err) => showError($("ed-error"), err)) },
      el("b", {}, s.title), " ", el("span", { class: `badge ${s.status}` }, s.status), el("br"),
      el("span", { class: "muted" }, s.scheduled_at ? new Date(s.scheduled_at).toLocaleString() : "No date yet"))))
    : [el("li", { class: "muted" }, "No shows yet.")]));
}

function wire() {
  $("new-show").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("ns-error");
    error.classList.add("hidden");
    try {
      const body = { title: $("ns-title").value.trim(), description: $("ns-description").value.trim() };
      const when = toIso($("ns-when").value);
      if (when) body.scheduled_at = when;
      const { stream } = await api("POST", "/api/streams", body);
      event.target.reset();
      await refreshShows();
      await edit(stream.id);
    } catch (err) { showError(error, err); }
  });
  $("ed-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const body = { title: $("ed-title").value.trim(), description: $("ed-description").value.trim() };
      const when = toIso($("ed-when").value);
      if (when) body.scheduled_at = when;
      await api("PATCH", `/api/streams/${current.id}`, body);
      await refreshShows();
      await edit(current.id);
    } catch (err) { showError($("ed-error"), err); }
  });
  $("add-to-lineup").addEventListener("click", () => {
    const id = Number($("add-product").value);
    if (!id) return;
    lineup.push(id);
    renderLineup();
    fillPicker();
    announce(`${products.get(id)?.title} added at position ${lineup.length}. Save the lineup to keep it.`);
  });
  $("save-lineup").addEventListener("click", async () => {
    try {
      const { stream } = await api("PATCH", `/api/streams/${current.id}`, { lineup });
      current = stream;
      announce("Lineup saved.");
    } catch (err) { showError($("ed-error"), err); }
  });
  $("invite-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const email = $("invite-address").value.trim();
      await api("POST", `/api/streams/${current.id}/moderators`, { email });
      $("invite-status").textContent = `Invitation emailed to ${email}.`;
      event.target.reset();
      await loadInvitations();
    } catch (err) { showError($("ed-error"), err); }
  });
}

async function main() {
  me = await siteHeader();
  if (!me) {
    $("workspace").classList.add("hidden");
    $("sign-in").classList.remove("hidden");
    $("main").setAttribute("aria-busy", "false");
    return;
  }
  wire();
  try {
    const { products: mine } = await api("GET", `/api/products?owner=${me.id}&limit=200`);
    products = new Map(mine.map((p) => [p.id, p]));
    await refreshShows();
    const wanted = Number(new URLSearchParams(location.search).get("show"));
    if (wanted) await edit(wanted);
  } catch (err) {
    showError($("page-error"), err);
  }
  $("main").setAttribute("aria-busy", "false");
}

main();
