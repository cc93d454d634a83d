// Shared by the fan-out bench's Node helpers: argv parsing, JSON-lines I/O, the clock.

import { performance } from "node:perf_hooks";
import readline from "node:readline";

/** Epoch milliseconds with sub-ms resolution, comparable across processes on one machine. */
export const now = () => performance.timeOrigin + performance.now();

/** `--name value` pairs into an object of strings (`--flag` alone is "1"). */
export function parseArgs(argv = process.argv.slice(2)) {
  const args = {};
  for (let i = 0; i < argv.length; i += 1) {
    const key = argv[i].replace(/^--/, "");
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) {
      args[key] = "1";
    } else {
      args[key] = next;
      i += 1;
    }
  }
  return args;
}

/** One JSON object per stdout line: the driver's only input from this process. */
export function send(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/** Call `handle(command)` for every JSON line on stdin; exit when stdin closes. */
export function onCommands(handle) {
  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (!line.trim()) return;
    let command;
    try {
      command = JSON.parse(line);
    } catch {
      send({ type: "error", message: `bad command line: ${line}` });
      return;
    }
    Promise.resolve(handle(command)).catch((err) => {
      send({ type: "error", message: String(err?.stack ?? err) });
    });
  });
  lines.on("close", () => process.exit(0));
}
