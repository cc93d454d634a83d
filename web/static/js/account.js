// /account: the buyer's saved cards (the one-tap card first): add, replace, remove.
import { api, el, siteHeader } from "/static/js/api.js";
import { CardDeclined, CardIncomplete, declinedText, mountCardForm } from "/static/js/checkout.js";

const $ = (id) => document.getElementById(id);

function problem(node, message) {
  node.textContent = message;
  node.classList.toggle("hidden", !message);
}

function render(cards) {
  const list = $("cards");
  if (!cards.length) {
    list.replaceChildren(el("li", { class: "muted" }, "No saved card. Your next Buy asks for one, and keeps it once it has paid."));
    return;
  }
  list.replaceChildren(...cards.map((card) =>
    el("li", { "data-card": card.id },
      el("span", { class: "label" }, card.label,
        card.exp_month && card.exp_year ? el("span", { class: "muted" }, ` · expires ${String(card.exp_month).padStart(2, "0")}/${String(card.exp_year).slice(-2)}`) : null),
      card.one_tap ? el("span", { class: "badge order-status status-paid" }, "One tap") : null,
      el("button", { type: "button", class: "replace-card", "aria-label": `Replace ${card.label}`, onclick: () => edit(card) }, "Replace"),
      el("button", { type: "button", class: "remove-card", "aria-label": `Remove ${card.label}`, onclick: () => remove(card) }, "Remove"),
    )));
}

async function load() {
  try {
    render((await api("GET", "/api/cards?list=1")).cards);
  } catch (err) {
    problem($("cards-error"), err.message);
  }
}

async function remove(card) {
  problem($("cards-error"), "");
  try {
    render((await api("DELETE", `/api/cards/${encodeURIComponent(card.id)}`)).cards);
  } catch (err) {
    problem($("cards-error"), err.message);
  }
}

let editing = 0; // which editor is current: an older one's clicks are ignored

/** The card form, to add a card (`replacing` null) or to replace one. */
async function edit(replacing) {
  const mine = ++editing;
  const editor = $("card-editor");
  $("editor-title").textContent = replacing ? `Replace ${replacing.label}` : "Add a card";
  problem($("card-error"), "");
  editor.classList.remove("hidden");
  $("add-card").classList.add("hidden");
  const save = $("card-save");
  save.disabled = true;
  let form;
  try {
    form = await mountCardForm($("card-form"));
  } catch (err) {
    problem($("card-error"), err.message);
    return;
  }
  save.disabled = false;
  save.onclick = async () => {
    if (mine !== editing) return;
    save.disabled = true;
    problem($("card-error"), "");
    try {
      const pm = await form.confirm();
      const body = { payment_method_id: pm };
      if (replacing) await api("PUT", `/api/cards/${encodeURIComponent(replacing.id)}`, body);
      else await api("POST", "/api/cards", body);
      close();
      await load();
    } catch (err) {
      if (err instanceof CardIncomplete) {
        if (err.problems.card) problem($("card-error"), err.problems.card);
      } else if (err instanceof CardDeclined || err.code === "payment_failed") {
        problem($("card-error"), declinedText(err.message));
      } else {
        problem($("card-error"), err.message);
      }
    } finally {
      save.disabled = false;
    }
  };
}

function close() {
  editing++;
  $("card-editor").classList.add("hidden");
  $("card-form").replaceChildren();
  $("add-card").classList.remove("hidden");
}

$("add-card").addEventListener("click", () => edit(null));
$("card-cancel").addEventListener("click", close);

(async () => {
  const user = await siteHeader();
  $("main").setAttribute("aria-busy", "false");
  if (!user) {
    $("cards").replaceChildren(el("li", {}, el("a", { href: "/login?next=/account" }, "Log in"), " to manage your cards."));
    $("add-card").classList.add("hidden");
    return;
  }
  await load();
})();
