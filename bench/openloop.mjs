// Load for bench/openloop.py: one JSON argument, one RESULT line.
//
//   node bench/openloop.mjs '{"url", "path", "method", "connections", "seconds",
//                             "rate", "tokens", "body", "run"}'
//
// Without "rate": autocannon, closed loop (each connection sends when answered). With "rate"
// (requests/s): an open loop of our own. autocannon's overallRate lets every connection send its
// whole second's share at once and then wait for the next second, so arrivals come in bursts at
// each second; here a request leaves every 1/rate s on an idle keep-alive connection, and its
// time is counted from when it was due, so a queue in the server (or in this client) is counted,
// not hidden. As autocannon and wrk do, the "connections" are opened before the clock starts (a
// GET /healthz on each) and kept open: a shopper's browser taps Buy on the connection it already
// has, and a client on the same two cores opening a thousand sockets in a sale's first 100 ms
// would measure its own connection set-up. Should one close, a new one is opened and counted
// ("opened" in the result). Every answer's time is kept
// with its status, so the buyers who won (201) and the crowd refused (409) are reported apart.
import autocannon from "autocannon";
import { readFileSync } from "node:fs";
import http from "node:http";

const args = JSON.parse(process.argv[2]);
const tokens = args.tokens ? readFileSync(args.tokens, "utf8").split("\n").filter(Boolean) : [];
let counter = 0;

const request = { method: args.method || "GET", path: args.path };
if (tokens.length) {
  request.setupRequest = (req) => ({ ...req, headers: headersFor(), body: args.body });
}

function headersFor() {
  counter += 1;
  if (!tokens.length) return {};
  return {
    Authorization: `Bearer ${tokens[counter % tokens.length]}`,
    "Idempotency-Key": `${args.run}-${counter}`,
    "Content-Type": "application/json",
  };
}

async function openLoop() {
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: args.connections,
    maxFreeSockets: args.connections, // Node's default (256) would close the rest when idle
  });
  const target = new URL(args.path, args.url);
  const known = new WeakSet();
  await Promise.all(
    Array.from(
      { length: args.connections },
      () =>
        new Promise((resolve) => {
          const req = http.request(new URL("/healthz", args.url), { agent }, (res) => {
            res.resume();
            res.on("end", resolve);
          });
          req.on("socket", (socket) => known.add(socket));
          req.on("error", resolve);
          req.end();
        }),
    ),
  );
  let opened = 0;
  const times = {};
  let errors = 0;
  let dropped = 0;
  let inFlight = 0;
  const started = performance.now();
  const end = started + args.seconds * 1000;
  const interval = 1000 / args.rate;
  let due = started;
  let pending = 0;
  let allSent = false;
  await new Promise((resolve) => {
    const send = (dueAt) => {
      inFlight += 1;
      pending += 1;
      const req = http.request(
        target,
        { method: args.method || "GET", agent, headers: headersFor() },
        (res) => {
          res.resume();
          res.on("end", () => {
            const ms = performance.now() - dueAt;
            (times[res.statusCode] ||= []).push(ms);
            inFlight -= 1;
            if (--pending === 0 && allSent) resolve();
          });
        },
      );
      req.on("socket", (socket) => {
        if (!known.has(socket)) {
          known.add(socket);
          opened += 1;
        }
      });
      req.setTimeout(30000, () => req.destroy(new Error("timeout")));
      req.on("error", () => {
        errors += 1;
        inFlight -= 1;
        if (--pending === 0 && allSent) resolve();
      });
      if (args.body) req.end(args.body);
      else req.end();
    };
    const tick = () => {
      const now = performance.now();
      while (due <= now && due < end) {
        if (inFlight >= args.connections) dropped += 1;  // no connection free: counted, not sent
        else send(due);
        due += interval;
      }
      if (due < end) setTimeout(tick, Math.max(0, Math.min(1, due - performance.now())));
      else {
        allSent = true;
        if (pending === 0) resolve();
      }
    };
    tick();
  });
  agent.destroy();
  const answered = Object.values(times).reduce((n, list) => n + list.length, 0);
  return {
    answered,
    seconds: args.seconds,
    errors,
    timeouts: 0,
    unsent: dropped,
    opened,
    statuses: times,
  };
}

async function closedLoop() {
  const times = {};
  const instance = autocannon({
    url: args.url,
    connections: args.connections,
    duration: args.seconds,
    requests: [request],
    timeout: 30,
  });
  instance.on("response", (_client, status, _bytes, ms) => {
    (times[status] ||= []).push(ms);
  });
  const done = await new Promise((resolve, reject) => {
    instance.on("done", resolve);
    instance.on("error", reject);
  });
  const answered = Object.values(times).reduce((n, list) => n + list.length, 0);
  return {
    answered,
    seconds: done.duration,
    errors: done.errors,
    timeouts: done.timeouts,
    statuses: times,
  };
}

const result = args.rate ? await openLoop() : await closedLoop();
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0));
