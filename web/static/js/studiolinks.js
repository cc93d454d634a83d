// The studio's links to the back office: this show's figures and the seller's inbox.
const streamId = Number(location.pathname.split("/")[2]);
document.getElementById("figures-link").href = `/studio/${streamId}/figures`;
