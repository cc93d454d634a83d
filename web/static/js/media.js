// WebRTC: publish with WHIP (the studio), play with WHEP (viewers). One HTTP exchange each;
// no trickle ICE (the server's answer carries its candidates).
import { api } from "/static/js/api.js";

let config;
async function iceServers() {
  if (!config) config = await api("GET", "/api/config");
  return config.ice_servers;
}

function gathered(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

async function exchange(url, pc, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  if (response.status !== 201) {
    const body = await response.json().catch(() => ({}));
    const error = new Error((body.error && body.error.message) || response.statusText);
    error.code = (body.error && body.error.code) || "http_" + response.status;
    error.status = response.status;
    throw error;
  }
  const location = new URL(response.headers.get("Location"), response.url).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return location;
}

/** A WHIP or WHEP session: the peer connection and the resource to DELETE when done. */
class Session {
  constructor(pc, resource) {
    this.pc = pc;
    this.resource = resource;
  }

  async close(token) {
    this.pc.close();
    if (this.resource) {
      const headers = token ? { Authorization: "Bearer " + token } : {};
      await fetch(this.resource, { method: "DELETE", headers }).catch(() => {});
      this.resource = null;
    }
  }
}

/** Go live: send the camera and microphone to /whip/{id}; the stream key is the Bearer token. */
export async function publish(streamId, streamKey, media) {
  const pc = new RTCPeerConnection({ iceServers: await iceServers() });
  for (const track of media.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
  try {
    return new Session(pc, await exchange(`/whip/${streamId}`, pc, streamKey));
  } catch (err) {
    pc.close();
    throw err;
  }
}

/** Watch: receive /whep/{id} into a <video>. Throws with code "stream_offline" if not live. */
export async function play(streamId, video) {
  const pc = new RTCPeerConnection({ iceServers: await iceServers() });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const media = new MediaStream();
  pc.addEventListener("track", (event) => {
    media.addTrack(event.track);
    video.srcObject = media;
  });
  try {
    return new Session(pc, await exchange(`/whep/${streamId}`, pc));
  } catch (err) {
    pc.close();
    throw err;
  }
}
