// A live-room client on the official socket.io-client, driven by a test over stdin/stdout.
// Usage: node live_client.mjs <server url> [token]
// stdin:  one JSON command per line: {"id": 1, "emit": "join", "data": {...}}  (answered by its ack)
// stdout: one JSON line per thing that happened: {"connected": true}, {"connect_error": {...}},
//         {"id": 1, "ack": {...}}, {"event": "product:pinned", "data": {...}}, {"disconnected": "..."}
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const [url, token] = process.argv.slice(2);
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const socket = io(`${url}/live`, {
  transports: ["websocket"],
  reconnection: false,
  auth: token ? { token } : {},
});
socket.on("connect", () => say({ connected: true }));
socket.on("connect_error", (err) => say({ connect_error: { message: err.message, data: err.data ?? null } }));
socket.on("disconnect", (reason) => say({ disconnected: reason }));
socket.onAny((event, data) => say({ event, data }));

createInterface({ input: process.stdin }).on("line", async (line) => {
  const command = JSON.parse(line);
  if (command.close) {
    socket.close();
    process.exit(0);
  }
  try {
    const ack = await socket.timeout(10_000).emitWithAck(command.emit, command.data);
    say({ id: command.id, ack });
  } catch (err) {
    say({ id: command.id, timeout: String(err) });
  }
});
