// A connection relayed through the page, with the WebSocket's shape, so that the
// worker's connection code serves both links alike.
//
// The notebook widget has no socket of its own to the display when the browser cannot
// reach the display's port: its frames and events travel over the widget's comm. The
// worker posts each outgoing message to the page, which sends it on the comm; the
// page posts what the comm brings back. Messages, both ways, name the connection:
//   to the page:   {type: "relay", op: "open" | "text" | "close", conn, text}
//   from the page: {type: "relay", op: "text" | "bytes" | "close", conn, text, buffer, code, reason}
// A relay is open at once (the far end creates the viewer on "open"; the comm keeps
// messages in order), like a WebSocket whose handshake cannot fail.

let nextConn = 1;

export class RelaySocket {
  /** `post(message)`: hand a message to the page (self.postMessage in the worker). */
  constructor(post) {
    this.conn = nextConn++;
    this.post = post;
    this.readyState = 0; // WebSocket.CONNECTING
    this.binaryType = "arraybuffer";
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    this.post({ type: "relay", op: "open", conn: this.conn });
    queueMicrotask(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1; // WebSocket.OPEN
      if (this.onopen) this.onopen();
    });
  }

  send(text) {
    if (this.readyState !== 1) return;
    this.post({ type: "relay", op: "text", conn: this.conn, text });
  }

  close(code = 1000, reason = "") {
    if (this.readyState >= 2) return;
    this.post({ type: "relay", op: "close", conn: this.conn, code, reason });
    this.ended(code, reason);
  }

  /** A message for this connection from the page. */
  receive(msg) {
    if (this.readyState >= 2) return;
    if (msg.op === "text") {
      if (this.onmessage) this.onmessage({ data: msg.text });
    } else if (msg.op === "bytes") {
      if (this.onmessage) this.onmessage({ data: msg.buffer });
    } else if (msg.op === "close") {
      this.ended(msg.code ?? 1006, msg.reason || "");
    }
  }

  ended(code, reason) {
    this.readyState = 3; // WebSocket.CLOSED
    if (this.onclose) this.onclose({ code, reason });
  }
}
