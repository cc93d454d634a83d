// Log in or sign up, then go back where the person came from.
import { api, siteHeader } from "/static/js/api.js";

const next = new URLSearchParams(location.search).get("next");
const back = () => (location.href = next && next.startsWith("/") && !next.startsWith("//") ? next : "/");

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
