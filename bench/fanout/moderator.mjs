// The moderator of bench/fanout.py: one socket.io-client socket that pins on command.
//
//   node bench/fanout/moderator.mjs --url http://127.0.0.1:8080 --stream 1 [--token T]
//        [--namespace /live] [--deflate 1]
//
// stdout, one JSON object a line:
//   {"type":"connected"}
//   {"type":"ack","seq","product_id","t_send","t_ack","ok","error"}       one pin
//   {"type":"burst","count","t_first","t_sent","t_last_ack","ok","errors"} a burst of pins
// stdin commands:
//   {"cmd":"pin","seq":0,"product_id":1}     t_send is taken right before the emit
//   {"cmd":"burst","count":50,"products":[1,2]}  back to back, acks awaited all together
//   {"cmd":"quit"}

import { io } from "socket.io-client";
import { now, onCommands, parseArgs, send } from "./common.mjs";

const args = parseArgs();
const streamId = Number(args.stream ?? 1);
const deflate = (args.deflate ?? "1") !== "0";
const ACK_TIMEOUT_MS = 60000;

const socket = io(args.url + (args.namespace ?? "/live"), {
  transports: ["websocket"],
  forceNew: true,
  reconnection: false,
  auth: args.token ? { token: args.token } : undefined,
  perMessageDeflate: deflate ? { threshold: 1024 } : false,
});
socket.on("connect", () => send({ type: "connected" }));
socket.on("connect_error", (err) => {
  send({ type: "error", message: `moderator connect_error: ${err?.message ?? err}` });
  process.exit(1);
});
socket.on("disconnect", (reason) => send({ type: "error", message: `moderator: ${reason}` }));

function pin(productId) {
  return new Promise((resolve) => {
    socket
      .timeout(ACK_TIMEOUT_MS)
      .emit("pin", { stream_id: streamId, product_id: productId }, (err, ack) => {
        resolve({ t_ack: now(), ok: !err && ack?.ok === true, error: err ? String(err) : ack?.error });
      });
  });
}

onCommands(async (command) => {
  if (command.cmd === "pin") {
    const t_send = now();
    const result = await pin(command.product_id);
    send({ type: "ack", seq: command.seq, product_id: command.product_id, t_send, ...result });
  } else if (command.cmd === "burst") {
    const products = command.products;
    const t_first = now();
    const pending = [];
    for (let i = 0; i < command.count; i += 1) pending.push(pin(products[i % products.length]));
    const t_sent = now();
    const results = await Promise.all(pending);
    send({
      type: "burst",
      count: command.count,
      t_first,
      t_sent,
      t_last_ack: Math.max(...results.map((r) => r.t_ack)),
      ok: results.filter((r) => r.ok).length,
      errors: results.filter((r) => !r.ok).slice(0, 3).map((r) => r.error),
    });
  } else if (command.cmd === "quit") {
    socket.close();
    process.exit(0);
  } else {
    send({ type: "error", message: `unknown command ${command.cmd}` });
  }
});
