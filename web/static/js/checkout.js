// Paying for a reserved order: the saved card in one tap, or first a card saved through Stripe.js
// (the Payment Element in production; the embedded emulator's stand-in card field offline), and
// 3-D Secure when the bank asks for it.
import { api } from "/static/js/api.js";

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
  return (await api("GET", "/api/cards")).card; // {label} or null
}

/**
 * Show a card form in `container`; resolves with the saved card's label once the buyer has
 * entered a card and pressed `submit`. Throws with the bank's message if it is refused.
 */
export async function saveCard(container, submit) {
  const { stripe, embedded } = await loadStripe();
  const { client_secret: secret } = await api("POST", "/api/cards/setup", {});
  container.replaceChildren();
  let confirm;
  if (embedded) {
    const card = stripe.elements().create("card");
    card.mount(container);
    confirm = () => stripe.confirmCardSetup(secret, { payment_method: { card } });
  } else {
    const elements = stripe.elements({ clientSecret: secret });
    elements.create("payment").mount(container);
    confirm = () => stripe.confirmSetup({ elements, redirect: "if_required" });
  }
  await new Promise((resolve) => submit.addEventListener("click", resolve, { once: true }));
  submit.disabled = true;
  try {
    const result = await confirm();
    if (result.error) throw Object.assign(new Error(result.error.message || "That card was refused."), { code: "card_refused" });
    const pm = result.setupIntent.payment_method;
    const saved = await api("POST", "/api/cards", { payment_method_id: typeof pm === "string" ? pm : pm.id });
    return saved.card.label;
  } finally {
    submit.disabled = false;
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
