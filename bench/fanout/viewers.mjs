// A swarm of Socket.IO viewers for bench/fanout.py: official socket.io-client, one websocket
// per viewer (forceNew), each joins the room and records when every pinned card arrives.
//
//   node bench/fanout/viewers.mjs --url http://127.0.0.1:8080 --count 2500 --stream 1
//        [--namespace /live] [--batch 50] [--id 0] [--event product:pinned] [--deflate 1]
//        [--timeout 300000]   (ms for the handshake and for the join's ack)
//
// stdout, one JSON object a line:
//   {"type":"progress","joined","failed"}            after each batch of the ramp
//   {"type":"ready","joined","failed","ramp_ms","errors"}
//   {"type":"pin","k","n","first","last","products","partial"}
//        the k-th card every viewer got since the last reset (k from 0): how many viewers got
//        it, first and last receive time (epoch ms); sent as soon as all live viewers have it,
//        or on "flush" with partial=true
//   {"type":"usage",...} CPU and event-loop figures since the previous "usage"
// stdin commands: {"cmd":"flush"} {"cmd":"reset"} {"cmd":"usage"} {"cmd":"quit"}
//   {"cmd":"stop-ramp"}: open no more viewers after the batch in flight; "ready" follows

import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { io } from "socket.io-client";
import { now, onCommands, parseArgs, send } from "./common.mjs";

const args = parseArgs();
const url = args.url;
const namespace = args.namespace ?? "/live";
const count = Number(args.count ?? 100);
const streamId = Number(args.stream ?? 1);
const batch = Number(args.batch ?? 50);
const swarmId = Number(args.id ?? 0);
const pinEvent = args.event ?? "product:pinned";
const deflate = (args.deflate ?? "1") !== "0";
const timeoutMs = Number(args.timeout ?? 300000);

const sockets = [];
let seen = new Uint32Array(count); // per viewer: cards received since the last reset
let stats = new Map(); // k -> {n, first, last, products: Set, reported}
let live = 0; // joined and still connected
let disconnects = 0;
const disconnectReasons = {};
const events = {}; // every server event by name, cumulative
const errors = [];
let stopRamp = false;

function record(index, payload) {
  const t = now();
  const k = seen[index];
  seen[index] = k + 1;
  let s = stats.get(k);
  if (s === undefined) {
    s = { n: 0, first: t, last: t, products: new Set(), reported: false };
    stats.set(k, s);
  }
  s.n += 1;
  s.last = t;
  s.products.add(payload?.product?.product_id ?? payload?.product_id ?? null);
  if (s.n >= live && !s.reported) report(k, s, false);
}

function report(k, s, partial) {
  s.reported = true;
  send({
    type: "pin",
    swarm: swarmId,
    k,
    n: s.n,
    first: s.first,
    last: s.last,
    products: [...s.products],
    partial,
  });
}

function open(index) {
  return new Promise((resolve) => {
    const socket = io(url + namespace, {
      transports: ["websocket"],
      forceNew: true,
      multiplex: false,
      reconnection: false,
      timeout: timeoutMs,
      perMessageDeflate: deflate ? { threshold: 1024 } : false,
    });
    sockets[index] = socket;
    let joined = false;
    let settled = false;
    const done = (ok, why) => {
      if (settled) return;
      settled = true;
      if (!ok && errors.length < 5) errors.push(String(why));
      resolve(ok);
    };
    socket.onAny((event, payload) => {
      if (event === pinEvent) record(index, payload);
      events[event] = (events[event] ?? 0) + 1;
    });
    socket.on("connect", () => {
      socket.timeout(timeoutMs).emit("join", { stream_id: streamId }, (err, ack) => {
        if (err || !ack || ack.ok !== true) {
          done(false, err ?? JSON.stringify(ack));
          socket.close();
          return;
        }
        joined = true;
        live += 1;
        done(true);
      });
    });
    socket.on("connect_error", (err) => done(false, `connect_error: ${err?.message ?? err}`));
    socket.on("disconnect", (reason) => {
      if (joined) {
        disconnectReasons[reason] = (disconnectReasons[reason] ?? 0) + 1;
        joined = false;
        live -= 1;
        disconnects += 1;
      }
      done(false, `disconnect: ${reason}`);
    });
  });
}

async function ramp() {
  const started = now();
  let joined = 0;
  let failed = 0;
  for (let start = 0; start < count && !stopRamp; start += batch) {
    const end = Math.min(count, start + batch);
    const results = await Promise.all(
      Array.from({ length: end - start }, (_, i) => open(start + i)),
    );
    for (const ok of results) {
      if (ok) joined += 1;
      else failed += 1;
    }
    send({ type: "progress", swarm: swarmId, joined, failed });
  }
  send({
    type: "ready",
    swarm: swarmId,
    joined: live,
    failed,
    ramp_ms: now() - started,
    cut: stopRamp,
    errors,
  });
}

const lag = monitorEventLoopDelay({ resolution: 5 });
lag.enable();
let lastElu = performance.eventLoopUtilization();
let lastCpu = process.cpuUsage();
let lastWall = now();

function usage() {
  const elu = performance.eventLoopUtilization(lastElu);
  const cpu = process.cpuUsage(lastCpu);
  const wall = now();
  const figures = {
    type: "usage",
    swarm: swarmId,
    wall_ms: wall - lastWall,
    cpu_ms: (cpu.user + cpu.system) / 1000,
    elu: elu.utilization,
    lag_p99_ms: lag.percentile(99) / 1e6,
    lag_max_ms: lag.max / 1e6,
    live,
    disconnects,
    disconnect_reasons: disconnectReasons,
    events,
    rss_kb: Math.round(process.memoryUsage.rss() / 1024),
  };
  lastElu = performance.eventLoopUtilization();
  lastCpu = process.cpuUsage();
  lastWall = wall;
  lag.reset();
  return figures;
}

onCommands((command) => {
  switch (command.cmd) {
    case "flush":
      for (const [k, s] of [...stats.entries()].sort((a, b) => a[0] - b[0])) {
        if (!s.reported) report(k, s, true);
      }
      send({ type: "flushed", swarm: swarmId });
      break;
    case "reset":
      stats = new Map();
      seen = new Uint32Array(count);
      send({ type: "reset", swarm: swarmId });
      break;
    case "usage":
      send(usage());
      break;
    case "stop-ramp":
      stopRamp = true;
      break;
    case "quit":
      for (const socket of sockets) socket?.close();
      process.exit(0);
      break;
    default:
      send({ type: "error", message: `unknown command ${command.cmd}` });
  }
});

ramp().catch((err) => {
  send({ type: "error", message: String(err?.stack ?? err) });
  process.exit(1);
});
