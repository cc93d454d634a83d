// A live room over Socket.IO (namespace /live): joins, keeps the clock in step with the server,
// rejoins after a reconnect, and turns acks into results or thrown errors.
import { io } from "/static/vendor/socket.io.esm.min.js";

export class LiveError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.code = code;
    Object.assign(this, details);
  }
}

export class LiveRoom {
  constructor(streamId, { onState, onConnection } = {}) {
    this.streamId = streamId;
    this.offsetMs = 0; // server time = Date.now() + offsetMs
    this.state = null;
    this.onState = onState || (() => {});
    this.onConnection = onConnection || (() => {});
    // The session cookie authenticates the socket; websocket only, so no sticky sessions needed.
    this.socket = io("/live", { transports: ["websocket"], reconnectionDelayMax: 4000 });
    this.socket.on("connect", () => this._joined());
    // The server ends a socket whose session was logged out (here or elsewhere) or that flooded
    // it; socket.io-client does not come back by itself after a server-side disconnect.
    this.loggedOut = false;
    this.socket.on("session:ended", () => {
      this.loggedOut = true;
    });
    this.socket.on("disconnect", (reason) => {
      if (this.loggedOut) return this.onConnection("logged-out");
      this.onConnection("reconnecting");
      if (reason === "io server disconnect") setTimeout(() => this.socket.connect(), 2000);
    });
    this.socket.on("connect_error", (err) => this.onConnection(err.message === "not_authenticated" ? "logged-out" : "reconnecting"));
    this.socket.on("room:state", (state) => {
      this.state = state;
      this.onState(state);
    });
  }

  on(event, handler) {
    this.socket.on(event, handler);
    return this;
  }

  async _joined() {
    try {
      await this.call("join", { stream_id: this.streamId });
      await this.syncClock();
      this.onConnection("connected");
    } catch (err) {
      this.onConnection("error", err);
    }
  }

  /** Emit and wait for the ack; an error ack throws a LiveError with the server's code. */
  async call(event, data, timeoutMs = 10000) {
    let ack;
    try {
      ack = await this.socket.timeout(timeoutMs).emitWithAck(event, data);
    } catch (err) {
      throw new LiveError("timeout", "The server did not answer in time. Try again.");
    }
    if (ack && ack.error) {
      const { code, message, ...details } = ack.error;
      throw new LiveError(code, message, details);
    }
    return ack;
  }

  /** Three round trips; the fastest one gives the offset (NTP's idea, in miniature). */
  async syncClock() {
    let best = null;
    for (let i = 0; i < 3; i++) {
      const sent = Date.now();
      const { server_time: server } = await this.call("clock:sync", { client_time: sent });
      const received = Date.now();
      const rtt = received - sent;
      if (best === null || rtt < best.rtt) best = { rtt, offset: server + rtt / 2 - received };
    }
    this.offsetMs = best.offset;
    return best;
  }

  serverNow() {
    return Date.now() + this.offsetMs;
  }

  close() {
    this.socket.close();
  }
}

export function idempotencyKey() {
  return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2);
}
