// The creator's studio: camera and microphone preview, go live / end over WHIP, the lineup,
// pins, flash sales and the show's sales figures as they happen.
import { api, el, money, streamIdFromPath } from "/static/js/api.js";
import { LiveRoom } from "/static/js/live.js";
import { publish } from "/static/js/media.js";
import { PHASES } from "/static/js/showstatus.js";
import { TeamMembers, TeamPanel, openTeamPage, pageError, showStatus } from "/static/js/team.js";

const $ = (id) => document.getElementById(id);
const streamId = streamIdFromPath();
let media = null;
let session = null;
let streamKey = null;
let state = { status: "scheduled", on_air: false, phase: "scheduled" };
let phase = "scheduled";

/** The buttons follow the show, not this tab: End works whenever the show is not over (paused
 * after a closed browser included); Go live whenever the camera is ready and nothing is sent. */
function showPhase(next) {
  phase = next;
  const ended = phase === "ended";
  $("end").disabled = ended || $("end").dataset.busy === "1";
  $("go-live").disabled = ended || !media || Boolean(session) || $("go-live").dataset.busy === "1";
  if (ended) $("on-air").textContent = "The show has ended. Thank you!";
  else if (phase === "paused" && !session) $("on-air").textContent = `${PHASES.paused.label}: your video is not reaching viewers. Go live again to resume, or end the show.`;
}

async function startCamera() {
  const camera = $("camera").value;
  const mic = $("mic").value;
  if (media) for (const track of media.getTracks()) track.stop();
  try {
    media = await navigator.mediaDevices.getUserMedia({
      video: { deviceId: camera ? { exact: camera } : undefined, width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
      audio: { deviceId: mic ? { exact: mic } : undefined },
    });
  } catch (err) {
    $("on-air").textContent = `The camera or microphone is not available: ${err.message}. Allow them in the browser and reload.`;
    return;
  }
  $("preview").srcObject = media;
  await listDevices();
  $("on-air").textContent = session ? "You are live." : "Camera ready. You are not live yet.";
  showPhase(phase);
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of [[$("camera"), "videoinput"], [$("mic"), "audioinput"]]) {
    const current = media && media.getTracks().find((t) => t.kind === kind.replace("input", ""))?.getSettings().deviceId;
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => el("option", { value: d.deviceId, selected: d.deviceId === current }, d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${i + 1}`)));
  }
}

async function goLive() {
  $("go-live").dataset.busy = "1";
  $("go-live").disabled = true;
  $("on-air").textContent = "Going live…";
  try {
    session = await publish(streamId, streamKey, media);
    session.pc.addEventListener("connectionstatechange", () => {
      if (session && session.pc.connectionState === "failed") {
        $("on-air").textContent = "The connection to the server was lost. Go live again.";
        session = null;
        showPhase(phase);
      }
    });
    $("on-air").textContent = "You are live.";
  } catch (err) {
    $("on-air").textContent = `Could not go live: ${err.message}`;
  }
  $("go-live").dataset.busy = "";
  showPhase(phase);
}

async function end() {
  $("end").dataset.busy = "1";
  $("end").disabled = true;
  if (session) await session.close(streamKey);
  session = null;
  try {
    const { stream } = await api("PATCH", `/api/streams/${streamId}`, { status: "ended" });
    state = { ...state, ...stream };
    showStatus(state);
    if (media) for (const track of media.getTracks()) track.stop();
    $("end").dataset.busy = "";
    showPhase("ended");
  } catch (err) {
    $("end").dataset.busy = "";
    showPhase(phase);
    $("on-air").textContent = `The show is not ended (${err.message}). Try again.`;
  }
}

async function refreshFigures() {
  try {
    const { sales } = await api("GET", `/api/streams/${streamId}/sales`);
    const paid = sales.by_status.paid || { units: 0, amount: {} };
    const [currency, amount] = Object.entries(paid.amount)[0] || ["USD", 0];
    $("fig-units").textContent = paid.units;
    $("fig-revenue").textContent = money(amount, currency);
  } catch (err) {
    /* figures are a nicety; the next purchase refreshes them */
  }
}

async function main() {
  const opened = await openTeamPage(streamId, "Studio");
  if (!opened) return;
  const { stream } = opened;
  showPhase(showStatus(stream));
  $("console-link").href = `/console/${streamId}`;
  $("watch-link").href = `/watch/${streamId}`;
  $("whip-url").textContent = `${location.origin}/whip/${streamId}`;
  try {
    streamKey = (await api("GET", `/api/streams/${streamId}/key`)).stream_key;
  } catch (err) {
    pageError("Only the show's creator can go live from the studio.");
    return;
  }
  $("reveal-key").addEventListener("click", () => ($("stream-key").textContent = streamKey));
  new TeamMembers($("team"), streamId).refresh();
  const room = new LiveRoom(streamId, {
    onState: (s) => {
      state = s;
      showPhase(showStatus(s));
      $("fig-viewers").textContent = s.viewers;
      panel.applyState(s);
    },
    onConnection: (status) => pageError(status === "reconnecting" ? "Reconnecting to the room…" : ""),
  });
  const panel = new TeamPanel(room, streamId);
  room
    .on("viewers", ({ count }) => ($("fig-viewers").textContent = count))
    .on("purchase:feed", refreshFigures)
    .on("stream:status", (s) => {
      state = { ...state, ...s };
      showPhase(showStatus(state));
    });
  await panel.load(stream);
  refreshFigures();
  setInterval(refreshFigures, 5000);
  $("go-live").addEventListener("click", goLive);
  $("end").addEventListener("click", end);
  $("camera").addEventListener("change", startCamera);
  $("mic").addEventListener("change", startCamera);
  $("main").setAttribute("aria-busy", "false");
  await startCamera();
}

main().catch((err) => pageError(err.message));
