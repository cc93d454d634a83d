// Paying for a reserved order: the saved card in one tap, or first a card saved through Stripe.js
// (the Payment Element in production; the embedded emulator's stand-in card field offline), and
// 3-D Secure when the bank asks for it.
import { api, el } from "/static/js/api.js";

let stripePromise;
export function loadStripe() {
  if (!stripePromise) {
    stripePromise = (async () => {
      const { stripe } = await api("GET", "/api/config");
      if (!window.Stripe) {
        await new Promise((resolve, reject) => {
          const script = document.createElement("script");
          script.src = stripe.js_url;
          script.onload = resolve;
          script.onerror = () => reject(new Error("Stripe.js could not be loaded"));
          document.head.append(script);
        });
      }
      return { stripe: window.Stripe(stripe.publishable_key), embedded: !stripe.js_url.startsWith("https://js.stripe.com/") };
    })();
    stripePromise.catch(() => (stripePromise = undefined));
  }
  return stripePromise;
}

export async function savedCard() {
  return (await api("GET", "/api/cards")).card; // {id, label} or null
}

// What the emulator's stand-in card field holds; Stripe's Payment Element checks itself.
const FIELDS = [
  ["number", "Card number"],
  ["exp_month", "Expiry month (MM)"],
  ["exp_year", "Expiry year (YY)"],
  ["cvc", "Security code (CVC)"],
  ["postal_code", "Postal code"],
];

function luhn(digits) {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

/** Field -> message for what the buyer typed in the stand-in card field (empty: all good). */
export function cardProblems(value, now = new Date()) {
  const problems = {};
  const number = (value.number || "").replace(/[\s-]/g, "");
  if (!number) problems.number = "Enter your card number.";
  else if (!/^\d+$/.test(number) || (number.length >= 16 && !luhn(number))) problems.number = "Your card number is invalid.";
  else if (number.length < 16) problems.number = "Your card number is incomplete.";
  else if (number.length > 16) problems.number = "Your card number is invalid.";
  const month = (value.exp_month || "").trim();
  const year = (value.exp_year || "").trim();
  if (!month || !year) problems.exp_month = "Your card's expiry date is incomplete.";
  else if (!/^\d{1,2}$/.test(month) || Number(month) < 1 || Number(month) > 12) problems.exp_month = "Your card's expiry month is invalid.";
  else if (!/^\d{2}$/.test(year)) problems.exp_year = "Enter the expiry year as two digits (YY).";
  else {
    const fullYear = 2000 + Number(year);
    const thisYear = now.getFullYear();
    if (fullYear < thisYear || (fullYear === thisYear && Number(month) < now.getMonth() + 1)) problems.exp_year = "Your card's expiry date is in the past.";
  }
  const cvc = (value.cvc || "").trim();
  if (!cvc) problems.cvc = "Your card's security code is incomplete.";
  else if (!/^\d{3}$/.test(cvc)) problems.cvc = cvc.length < 3 && /^\d+$/.test(cvc) ? "Your card's security code is incomplete." : "Your card's security code is invalid.";
  return problems;
}

/** The bank's refusal in a sentence that says "declined" once. */
export function declinedText(message) {
  const text = (message || "Your card was declined").trim().replace(/\.?$/, ".");
  return /declined/i.test(text) ? text : `Your card was declined: ${text}`;
}

/** A refusal of the card itself (the bank said no), as opposed to a mistyped field. */
export class CardDeclined extends Error {
  constructor(message) {
    super(message || "Your card was declined.");
    this.code = "card_declined";
  }
}

/** Fields the buyer must fix; shown beside each field, the form keeps what was typed. */
export class CardIncomplete extends Error {
  constructor(problems) {
    super(Object.values(problems)[0] || "Check your card details.");
    this.code = "card_incomplete";
    this.problems = problems;
  }
}

/**
 * Mount a card form in `container`. Returns `{ confirm() }`: `confirm` checks the fields
 * (throws CardIncomplete, with messages beside the fields), then sets the card up with Stripe
 * (a fresh SetupIntent each time, so the same form can try again) and resolves with its
 * PaymentMethod id; a card the bank refuses throws CardDeclined. Nothing is saved for one tap
 * here: a card becomes the one-tap card once it has paid, or when saved from the account page.
 */
export async function mountCardForm(container) {
  const { stripe, embedded } = await loadStripe();
  container.replaceChildren();
  if (!embedded) {
    // Deferred mode: each try confirms a fresh SetupIntent, so the form survives a refusal.
    const elements = stripe.elements({ mode: "setup", currency: "usd" });
    elements.create("payment").mount(container);
    return {
      async confirm() {
        const checked = await elements.submit();
        if (checked.error) throw new CardIncomplete({ card: checked.error.message });
        const { client_secret: secret } = await api("POST", "/api/cards/setup", {});
        const result = await stripe.confirmSetup({ elements, clientSecret: secret, redirect: "if_required" });
        if (result.error) {
          if (result.error.type === "card_error") throw new CardDeclined(result.error.message);
          throw new CardIncomplete({ card: result.error.message });
        }
        const pm = result.setupIntent.payment_method;
        return typeof pm === "string" ? pm : pm.id;
      },
    };
  }
  const card = stripe.elements().create("card");
  card.mount(container);
  const inputs = {};
  const notes = {};
  for (const [field, label] of FIELDS) {
    const input = container.querySelector(`input[placeholder=${field}]`);
    if (!input) continue;
    inputs[field] = input;
    input.id = `card-${field}`;
    input.setAttribute("aria-label", label);
    input.setAttribute("inputmode", "numeric");
    input.setAttribute("autocomplete", { number: "cc-number", exp_month: "cc-exp-month", exp_year: "cc-exp-year", cvc: "cc-csc", postal_code: "postal-code" }[field]);
    notes[field] = el("span", { class: "field-error hidden", id: `card-${field}-error`, role: "alert" });
    input.after(notes[field]);
    input.addEventListener("input", () => {
      input.removeAttribute("aria-invalid");
      notes[field].classList.add("hidden");
    });
  }
  container.classList.add("card-fields");
  const show = (problems) => {
    for (const field of Object.keys(inputs)) {
      const problem = problems[field];
      notes[field].textContent = problem || "";
      notes[field].classList.toggle("hidden", !problem);
      if (problem) {
        inputs[field].setAttribute("aria-invalid", "true");
        inputs[field].setAttribute("aria-describedby", notes[field].id);
      } else inputs[field].removeAttribute("aria-invalid");
    }
    const first = Object.keys(inputs).find((field) => problems[field]);
    if (first) inputs[first].focus();
  };
  return {
    async confirm() {
      const typed = Object.fromEntries(Object.entries(inputs).map(([field, input]) => [field, input.value]));
      const problems = cardProblems(typed);
      show(problems);
      if (Object.keys(problems).length) throw new CardIncomplete(problems);
      // The stand-in reads its own copy of the fields, kept on each keystroke.
      card.value = {
        card: { number: typed.number.replace(/[\s-]/g, ""), exp_month: typed.exp_month.trim(), exp_year: "20" + typed.exp_year.trim(), cvc: typed.cvc.trim() },
        postal_code: (typed.postal_code || "").trim(),
      };
      const { client_secret: secret } = await api("POST", "/api/cards/setup", {});
      const result = await stripe.confirmCardSetup(secret, { payment_method: { card } });
      if (result.error) {
        const error = result.error;
        if (error.code === "card_declined" || error.type === "card_error") throw new CardDeclined(error.message);
        if (error.code === "invalid_expiry_year") {
          show({ exp_year: "Your card's expiry year is invalid." });
          throw new CardIncomplete({ exp_year: "Your card's expiry year is invalid." });
        }
        throw new Error(error.message || "The card could not be checked. Try again.");
      }
      const pm = result.setupIntent.payment_method;
      return typeof pm === "string" ? pm : pm.id;
    },
  };
}

/**
 * Pay a reserved order with a card chosen now (kept for one tap once it has paid). Returns the
 * final {order, payment}; a decline throws CardDeclined and leaves the order reserved.
 */
export async function payWithCard(orderId, paymentMethodId) {
  try {
    return await finish(await api("POST", `/api/orders/${orderId}/payment`, { payment_method_id: paymentMethodId, save_card: true }));
  } catch (err) {
    if (err.code === "payment_failed" && err.details && err.details.declined) throw new CardDeclined(err.message);
    throw err;
  }
}

/** Charge the saved card for a reserved order. */
export async function payWithSavedCard(orderId) {
  return finish(await api("POST", `/api/orders/${orderId}/payment`, { use_saved_card: true }));
}

/**
 * Bring a buy result to its end: paid, failed (declined), or 3-D Secure then paid or failed.
 * Returns the final {order, payment} as the server sees it.
 */
export async function finish(result) {
  const payment = result.payment;
  if (payment && payment.status === "requires_action" && payment.client_secret) {
    const { stripe } = await loadStripe();
    await stripe.confirmCardPayment(payment.client_secret);
    return api("POST", `/api/orders/${result.order.id}/sync`, {});
  }
  return result;
}
