// The page an invitation email links to: sign in (or up) with the invited address, then accept.
import { ApiError, api, siteHeader } from "/static/js/api.js";

const $ = (id) => document.getElementById(id);
const invitationId = location.pathname.split("/").filter(Boolean).pop();

function fail(err) {
  $("inv-error").textContent = err instanceof ApiError ? err.message : String(err);
  $("inv-error").classList.remove("hidden");
}

async function main() {
  const me = await siteHeader();
  const text = $("inv-text");
  if (!me) {
    text.textContent = "You are invited to moderate a live show.";
    $("inv-login").href = "/login?next=" + encodeURIComponent(location.pathname);
    $("inv-sign-in").classList.remove("hidden");
    $("main").setAttribute("aria-busy", "false");
    return;
  }
  try {
    const { invitation } = await api("GET", `/api/invitations/${encodeURIComponent(invitationId)}`);
    const { stream } = invitation;
    text.textContent = `${stream.creator.display_name} invites you to moderate “${stream.title}”.`;
    $("inv-actions").classList.remove("hidden");
    $("inv-accept").addEventListener("click", async () => {
      try {
        await api("POST", `/api/invitations/${encodeURIComponent(invitationId)}/accept`);
        location.assign(`/console/${stream.id}`);
      } catch (err) { fail(err); }
    });
    $("inv-decline").addEventListener("click", async () => {
      try {
        await api("POST", `/api/invitations/${encodeURIComponent(invitationId)}/decline`);
        text.textContent = "Invitation declined.";
        $("inv-actions").classList.add("hidden");
      } catch (err) { fail(err); }
    });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      text.textContent = `This invitation is not waiting for ${me.email || "this account"}: it was sent to another address, or it was already used or withdrawn. Log out and sign in with the address it was sent to.`;
    } else {
      fail(err);
    }
  }
  $("main").setAttribute("aria-busy", "false");
}

main();
