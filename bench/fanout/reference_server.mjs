// The reference of bench/fanout.py: the Node `socket.io` v4 server doing what livecommerce's
// /live namespace does for a pin, and nothing else (no SQL, no Redis).
//
//   node bench/fanout/reference_server.mjs --port 0 --token T [--viewer-counts 0]
//
// Namespace /live: `join {stream_id}` joins room "stream:<id>" and acks {ok:true, state};
// `pin {stream_id, product_id}` from a socket that connected with auth {token: T} broadcasts
// `product:pinned` (the same payload shape as livecommerce's) to the room and acks
// {ok:true, pinned}. With --viewer-counts 1 every join also tells the room its viewer count,
// as livecommerce does. Engine.IO settings match livecommerce's (ping 20 s / 20 s, 64 KB);
// perMessageDeflate stays at socket.io's default (off).
// stdout: {"type":"listening","port"} once, then nothing.

import { createServer } from "node:http";
import { Server } from "socket.io";
import { parseArgs, send } from "./common.mjs";

const args = parseArgs();
const token = args.token ?? "moderator";
const viewerCounts = (args["viewer-counts"] ?? "0") !== "0";

const products = new Map(
  [1, 2].map((id) => [
    id,
    {
      product_id: id,
      sku_id: 100 + id,
      title: id === 1 ? "Bench hoodie" : "Bench tee",
      image_url: "https://example.com/hoodie.jpg",
      price: 4900,
      currency: "USD",
    },
  ]),
);
const pinned = new Map(); // stream id -> card

const http = createServer();
const io = new Server(http, {
  serveClient: false,
  pingInterval: 20000,
  pingTimeout: 20000,
  maxHttpBufferSize: 64 * 1024,
});
const live = io.of("/live");

const error = (code, message) => ({ error: { code, message } });

live.on("connection", (socket) => {
  const moderator = socket.handshake.auth?.token === token;
  socket.on("join", (data, ack) => {
    if (typeof ack !== "function") return;
    const streamId = data?.stream_id;
    if (!Number.isInteger(streamId) || streamId < 1) {
      ack(error("invalid_input", "stream_id"));
      return;
    }
    const room = `stream:${streamId}`;
    socket.join(room);
    const viewers = live.adapter.rooms.get(room)?.size ?? 0;
    ack({
      ok: true,
      state: { stream_id: streamId, pinned: pinned.get(streamId) ?? null, viewers },
    });
    if (viewerCounts) live.to(room).emit("viewers", { stream_id: streamId, count: viewers });
  });
  socket.on("pin", (data, ack) => {
    if (typeof ack !== "function") return;
    if (!moderator) {
      ack(error("forbidden", "moderators only"));
      return;
    }
    const streamId = data?.stream_id;
    const product = products.get(data?.product_id);
    if (!Number.isInteger(streamId) || product === undefined) {
      ack(error("invalid_input", "stream_id, product_id"));
      return;
    }
    const card = { ...product, pinned_at: Date.now() };
    pinned.set(streamId, card);
    live
      .to(`stream:${streamId}`)
      .emit("product:pinned", { stream_id: streamId, product: card, stock: 20 });
    ack({ ok: true, pinned: card });
  });
});

http.listen(Number(args.port ?? 0), "127.0.0.1", () => {
  send({ type: "listening", port: http.address().port, pid: process.pid });
});
