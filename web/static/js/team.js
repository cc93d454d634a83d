// What the creator's studio and the moderator console share: the lineup with pin / unpin, and
// the flash-sale form with its countdown. Every action goes over the socket and comes back to
// everyone (this page included) as a room event.
import { api, el, money, siteHeader } from "/static/js/api.js";
import { paintBadge, phaseOf } from "/static/js/showstatus.js";

const $ = (id) => document.getElementById(id);

// "Everyday Hoodie (M)": the variant is named whenever the SKU has one, as viewers see it.
function variantLabel(product, variant) {
  const label = variant.label ?? Object.values(variant.attributes || {}).join(" / ");
  return label ? `${product.title} (${label})` : product.title;
}

/** The flash-sale form, the same in the studio and the console. */
function saleForm(seconds) {
  const field = (id, label, attrs) => el("div", {}, el("label", { for: id }, label), el("input", { id, type: "number", required: true, ...attrs }));
  return el("form", { id: "sale-form" },
    el("div", { class: "row" },
      el("div", {}, el("label", { for: "sale-sku" }, "Product"), el("select", { id: "sale-sku", required: true })),
      field("sale-price", "Sale price", { min: 0, step: "0.01" })),
    el("div", { class: "row" },
      field("sale-qty", "Units", { min: 1, value: 20 }),
      field("sale-seconds", "Seconds", { min: 10, max: 300, value: seconds }),
      field("sale-limit", "Per buyer", { min: 1, max: 10, value: 1 })),
    el("p", { class: "row" },
      el("button", { class: "primary", type: "submit", id: "start-sale" }, "Start flash sale"),
      el("button", { type: "button", id: "stop-sale", disabled: true }, "Stop sale")),
    el("p", { class: "countdown", id: "sale-countdown", "aria-live": "polite" }),
    el("p", { class: "error hidden", id: "sale-error", role: "alert" }));
}

/**
 * The start of a team page: the header, a login if needed, the stream. Resolves with
 * {user, stream}, or null when the browser is on its way to the login page.
 */
export async function openTeamPage(streamId, pageName) {
  const user = await siteHeader();
  if (!user) {
    location.href = `/login?next=${encodeURIComponent(location.pathname)}`;
    return null;
  }
  const { stream } = await api("GET", `/api/streams/${streamId}`);
  $("title").textContent = stream.title;
  document.title = `${pageName}: ${stream.title}`;
  return { user, stream };
}

export class TeamPanel {
  constructor(room, streamId) {
    const panel = $("sale-panel");
    panel.replaceChildren(el("h2", {}, "Flash sale"), saleForm(panel.dataset.seconds || 60));
    this.room = room;
    this.streamId = streamId;
    this.products = [];
    this.pinned = null;
    this.sale = null;
    this.saleLeft = null; // the running sale's own units left
    this.stock = {};
    $("sale-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.startSale();
    });
    $("stop-sale").addEventListener("click", () => this.stopSale());
    setInterval(() => this.tick(), 250);
    room
      .on("product:pinned", ({ product, stock, stock_by_sku: bySku }) => {
        this.pinned = product;
        Object.assign(this.stock, bySku || {});
        if (stock !== null && stock !== undefined) this.stock[product.sku_id] = stock;
        this.render();
      })
      .on("product:unpinned", () => {
        this.pinned = null;
        this.render();
      })
      .on("sale:started", ({ sale }) => {
        this.sale = sale;
        this.saleLeft = sale.quantity;
        this.render();
      })
      .on("sale:ended", () => {
        this.sale = null;
        this.render();
      })
      .on("stock:changed", ({ sku_id: sku, available, sale_left: saleLeft }) => {
        this.stock[sku] = available;
        if (this.sale && this.sale.sku_id === sku && saleLeft !== null && saleLeft !== undefined) this.saleLeft = saleLeft;
        this.render();
      });
  }

  async load(stream) {
    this.products = await Promise.all(stream.lineup.map((id) => api("GET", `/api/products/${id}`).then((r) => r.product)));
    const skus = $("sale-sku");
    skus.replaceChildren(
      ...this.products.flatMap((product) =>
        product.variants.map((v) => el("option", { value: v.id, "data-price": v.price.amount }, `${variantLabel(product, v)} · ${money(v.price.amount, v.price.currency)}`)),
      ),
    );
    const suggest = () => {
      const option = skus.selectedOptions[0];
      if (option) $("sale-price").value = ((Number(option.dataset.price) * 0.7) / 100).toFixed(2);
    };
    skus.addEventListener("change", suggest);
    suggest();
    this.render();
  }

  applyState(state) {
    this.pinned = state.pinned;
    this.sale = state.sale;
    this.saleLeft = state.sale_left ?? null;
    Object.assign(this.stock, state.stock || {});
    this.render();
  }

  render() {
    const lineup = $("lineup");
    if (!this.products.length) {
      lineup.replaceChildren(el("li", { class: "muted" }, "No products in this show's lineup yet."));
    } else {
      lineup.replaceChildren(
        ...this.products.flatMap((product) =>
          product.variants.map((variant) => {
            const pinned = this.pinned && this.pinned.sku_id === variant.id;
            const left = this.stock[variant.id];
            return el("li", { class: pinned ? "pinned" : "" },
              el("span", {}, el("b", {}, variantLabel(product, variant)), " ",
                el("span", { class: "muted" }, `${money(variant.price.amount, variant.price.currency)} · ${left ?? variant.stock_on_hand} left`)),
              pinned
                ? el("button", { type: "button", onclick: () => this.act("unpin", { stream_id: this.streamId }) }, "Unpin")
                : el("button", { type: "button", class: "primary", "data-sku": variant.id, onclick: () => this.act("pin", { stream_id: this.streamId, product_id: product.id, sku_id: variant.id }) }, "Pin"),
            );
          }),
        ),
      );
    }
    $("stop-sale").disabled = !this.sale;
    $("start-sale").disabled = Boolean(this.sale);
    this.tick();
  }

  tick() {
    const countdown = $("sale-countdown");
    if (!this.sale) {
      countdown.textContent = "";
      return;
    }
    // Never more than the sale's own length, however far off the clock estimate is.
    const left = Math.min(this.sale.ends_at - this.sale.starts_at, Math.max(0, this.sale.ends_at - this.room.serverNow()));
    const seconds = Math.ceil(left / 1000);
    const units = this.saleLeft === null || this.saleLeft === undefined ? "" : this.saleLeft === 0 ? " · sold out" : ` · ${this.saleLeft} of ${this.sale.quantity} units left`;
    countdown.textContent = `Sale running: ${seconds} s left${units}`;
  }

  async act(event, data) {
    const error = $("sale-error");
    error.classList.add("hidden");
    try {
      return await this.room.call(event, data);
    } catch (err) {
      error.textContent = err.message;
      error.classList.remove("hidden");
      return null;
    }
  }

  async startSale() {
    await this.act("sale:start", {
      stream_id: this.streamId,
      sku_id: Number($("sale-sku").value),
      sale_price: Math.round(Number($("sale-price").value) * 100),
      quantity: Number($("sale-qty").value),
      duration_s: Number($("sale-seconds").value),
      per_buyer_limit: Number($("sale-limit").value),
    });
  }

  async stopSale() {
    if (this.sale) await this.act("sale:stop", { stream_id: this.streamId, sale_id: this.sale.sale_id });
  }
}

/** The show's badge, in the words every page uses (showstatus.js); returns the phase. */
export function showStatus(state) {
  const phase = phaseOf(state);
  paintBadge($("status"), phase);
  return phase;
}

export function pageError(message) {
  const node = $("page-error");
  node.textContent = message;
  node.classList.toggle("hidden", !message);
}

/**
 * The creator's team card in the studio: invite a moderator by email (the answer is the same
 * whether or not that email has an account), the pending invitations with Revoke, and the
 * moderators with Remove. People join by accepting on their home page.
 */
export class TeamMembers {
  constructor(container, streamId) {
    this.streamId = streamId;
    this.email = el("input", { id: "invite-email", type: "email", required: true, autocomplete: "off", placeholder: "name@example.com" });
    this.status = el("p", { class: "muted", id: "invite-status", role: "status" });
    this.error = el("p", { class: "error hidden", id: "invite-error", role: "alert" });
    this.moderators = el("ul", { class: "lineup", id: "moderators" });
    this.pending = el("ul", { class: "lineup", id: "invitations" });
    const form = el("form", { id: "invite-form" },
      el("label", { for: "invite-email" }, "Invite a moderator by email"),
      el("p", { class: "row" }, this.email, el("button", { type: "submit", class: "primary", id: "invite" }, "Invite")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.invite();
    });
    container.replaceChildren(el("h2", {}, "Team"), form, this.status, this.error,
      el("h3", {}, "Moderators"), this.moderators, el("h3", {}, "Invited"), this.pending);
  }

  async guard(action) {
    this.error.classList.add("hidden");
    try {
      await action();
    } catch (err) {
      this.error.textContent = err.message;
      this.error.classList.remove("hidden");
    }
    await this.refresh();
  }

  invite() {
    const email = this.email.value.trim();
    return this.guard(async () => {
      await api("POST", `/api/streams/${this.streamId}/moderators`, { email });
      this.email.value = "";
      this.status.textContent = `Invitation sent to ${email}. They join once they accept it on their home page.`;
    });
  }

  async refresh() {
    try {
      const [{ stream }, { invitations }] = await Promise.all([
        api("GET", `/api/streams/${this.streamId}`),
        api("GET", `/api/streams/${this.streamId}/invitations`),
      ]);
      this.render(stream.moderators, invitations);
    } catch (err) {
      this.error.textContent = err.message;
      this.error.classList.remove("hidden");
    }
  }

  render(moderators, invitations) {
    const empty = (text) => el("li", { class: "muted" }, text);
    this.moderators.replaceChildren(...(moderators.length ? moderators.map((m) =>
      el("li", { "data-user": m.id }, el("span", {}, m.display_name),
        el("button", { type: "button", onclick: () => this.guard(() => api("DELETE", `/api/streams/${this.streamId}/moderators/${m.id}`)) }, "Remove")),
    ) : [empty("No moderators yet.")]));
    this.pending.replaceChildren(...(invitations.length ? invitations.map((i) =>
      el("li", { "data-invitation": i.id }, el("span", {}, i.email || i.user.display_name),
        el("button", { type: "button", onclick: () => this.guard(() => api("DELETE", `/api/streams/${this.streamId}/invitations/${i.id}`)) }, "Revoke")),
    ) : [empty("No pending invitations.")]));
  }
}
