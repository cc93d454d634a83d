// The JSON API, with the session cookie. Errors arrive as ApiError carrying the server's code.

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details; // the error's other fields (order_id, declined, ...)
  }
}

// How far the server's clock is ahead of this device's, read off the Date header of its answers
// (whole seconds: enough for a hold's minutes; only a skew over two seconds is taken, so a device
// that keeps good time is left alone).
let clockOffsetMs = 0;

/** The server's time (epoch ms) as far as its answers tell; holds expire by it. */
export function serverTime() {
  return Date.now() + clockOffsetMs;
}

function readClock(response) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(date)) return;
  const offset = date + 500 - Date.now(); // the header is cut to the second: its middle
  if (Math.abs(offset - clockOffsetMs) > 2000) clockOffsetMs = offset;
}

export async function api(method, path, body, headers = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? headers : { "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
  }
  readClock(response);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    const { code, message, ...details } = error;
    throw new ApiError(response.status, code || "http_" + response.status, message || response.statusText, details);
  }
  return data;
}

let me;
/** The logged-in account, or null. */
export async function currentUser() {
  if (me === undefined) {
    try {
      me = (await api("GET", "/api/me")).user;
    } catch (err) {
      me = null;
    }
  }
  return me;
}

export function money(minor, currency = "USD") {
  const digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(minor / 10 ** digits);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    // Through the CSSOM: the pages' CSP refuses style attributes.
    else if (key === "style") node.style.cssText = value;
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** The header every page shares: brand, home, and who is logged in. */
export async function siteHeader() {
  const user = await currentUser();
  const nav = document.querySelector("header.site nav");
  if (!nav) return user;
  nav.replaceChildren(
    el("a", { href: "/" }, "Live now"),
    user ? el("a", { href: "/orders" }, "Orders") : null,
    user ? el("a", { href: "/account" }, "Account") : null,
    user
      ? el("span", {}, el("span", { class: "muted" }, user.display_name), " ",
          el("button", { type: "button", onclick: logout }, "Log out"))
      : el("a", { href: "/login?next=" + encodeURIComponent(location.pathname) }, "Log in"),
  );
  return user;
}

async function logout() {
  await api("DELETE", "/api/sessions").catch(() => {});
  location.href = "/";
}

export function streamIdFromPath() {
  return Number(location.pathname.split("/").filter(Boolean).pop());
}
