// The WebSocket gateway (docs/realtime.md): authenticate with the first frame, resume
// from the last cursor after any reconnect, ping every 25 s, back off when the server
// is away. Emits "event" (detail: the event object), "status" ("connecting" | "live" |
// "offline") and "reset" (the cursor was refused or expired: reload the state).

const PING_MS = 25_000;
const MAX_BACKOFF_MS = 30_000;

export class Gateway extends EventTarget {
  constructor(api) {
    super();
    this.api = api;
    this.cursor = null;
    this.socket = null;
    this.running = false;
    this.attempts = 0;
    this.status = "offline";
    this.pinger = null;
    this.retry = null;
    window.addEventListener("online", () => this.#reconnectNow());
  }

  start(cursor = null) {
    this.cursor = cursor;
    this.running = true;
    this.#connect();
  }

  stop() {
    this.running = false;
    clearTimeout(this.retry);
    this.#stopPing();
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "bye");
    this.#setStatus("offline");
  }

  /** Tell the other members that we are typing (ephemeral; dropped when not live). */
  typing(conversationId) {
    this.#send({ type: "typing", conversation_id: conversationId });
  }

  #send(frame) {
    if (this.socket?.readyState === WebSocket.OPEN && this.status === "live") {
      this.socket.send(JSON.stringify(frame));
    }
  }

  #setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: status }));
  }

  async #connect() {
    if (!this.running) return;
    this.#setStatus("connecting");
    let token;
    try {
      token = await this.api.accessToken();
    } catch (error) {
      if (this.api.signedIn) this.#later();
      return;
    }
    if (!this.running) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/v1/ws`);
    this.socket = socket;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "auth", token, cursor: this.cursor }));
    });
    socket.addEventListener("message", (e) => {
      if (socket === this.socket) this.#receive(e.data);
    });
    socket.addEventListener("close", (e) => {
      if (socket === this.socket) this.#closed(e.code);
    });
  }

  #receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === "event") {
      if (frame.cursor) this.cursor = frame.cursor;
      this.dispatchEvent(new CustomEvent("event", { detail: frame.event }));
    } else if (frame.type === "ready") {
      this.cursor = frame.cursor;
      this.attempts = 0;
      this.#setStatus("live");
      this.#startPing();
    } else if (frame.type === "error") {
      this.dispatchEvent(new CustomEvent("socketerror", { detail: frame }));
    }
  }

  async #closed(code) {
    this.socket = null;
    this.#stopPing();
    if (!this.running) return;
    this.#setStatus("connecting");
    if (code === 4401) {
      // The token was refused or the session revoked: a refresh tells which.
      try {
        await this.api.refresh();
      } catch {
        this.stop();
        return;
      }
    } else if (code === 4400 || code === 4410) {
      this.cursor = null; // refused or expired: start over from the current position
      this.dispatchEvent(new CustomEvent("reset"));
    }
    this.#later();
  }

  #later() {
    this.#setStatus(this.attempts > 0 ? "offline" : "connecting");
    const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempts);
    this.attempts += 1;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.#connect(), base / 2 + Math.random() * (base / 2));
  }

  #reconnectNow() {
    if (!this.running || this.socket) return;
    clearTimeout(this.retry);
    this.attempts = 0;
    this.#connect();
  }

  #startPing() {
    this.#stopPing();
    this.pinger = setInterval(() => this.#send({ type: "ping" }), PING_MS);
  }

  #stopPing() {
    clearInterval(this.pinger);
    this.pinger = null;
  }
}
