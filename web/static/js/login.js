// Log in or sign up, then go back where the person came from.
import { api, siteHeader } from "/static/js/api.js";

/**
 * Where to go after logging in: a path on this site, or "/". Browsers read "/\host", "//host"
 * and "/<tab>/host" (tabs and newlines are dropped while parsing) as other sites, so only "/"
 * followed by anything but "/" or "\", with no control character, is taken, and only if it
 * still resolves to this origin.
 */
export function sameOriginPath(raw) {
  if (typeof raw !== "string" || !/^\/(?![\/\\])/.test(raw)) return "/";
  if (/[\u0000-\u001f\u007f]/.test(raw)) return "/";
  const url = new URL(raw, location.origin);
  return url.origin === location.origin ? url.pathname + url.search + url.hash : "/";
}

const next = sameOriginPath(new URLSearchParams(location.search).get("next"));
const back = () => location.assign(next);

function wire(formId, errorId, send) {
  const form = document.getElementById(formId);
  const error = document.getElementById(errorId);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.classList.add("hidden");
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await send();
      back();
    } catch (err) {
      error.textContent = err.message;
      error.classList.remove("hidden");
    } finally {
      button.disabled = false;
    }
  });
}

const value = (id) => document.getElementById(id).value;
wire("login", "login-error", () => api("POST", "/api/sessions", { email: value("login-email"), password: value("login-password") }));
wire("signup", "signup-error", () =>
  api("POST", "/api/accounts", { email: value("signup-email"), password: value("signup-password"), display_name: value("signup-name") }),
);
siteHeader();
