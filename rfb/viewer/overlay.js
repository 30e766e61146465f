// The overlay: a small always-on readout of what the stream is doing (state, transport,
// codec, size, fps, receive-to-draw time, the server's publish-to-ack latency, bit rate),
// plus a banner for the states a user must notice (reconnecting, errors). It only reads
// the worker's stats.

function fmt(n, digits = 0) {
  return Number.isFinite(n) ? n.toFixed(digits) : "-";
}

export class Overlay {
  constructor(panel, banner) {
    this.panel = panel;
    this.banner = banner;
  }

  /** `s`: the worker's stats; `view`: the view's state (view.js), or null before a frame. */
  update(s, view = null) {
    const images = (s.supported || []).includes("image/jpeg") ? "jpeg/png" : "png";
    const codec = s.transport === "webcodecs" ? s.codec || "?" : s.transport === "image" ? images : "-";
    const lines = [
      `${s.state}  ${s.transport || "-"} ${codec}${s.link ? `  via ${s.link}` : ""}`,
      `${s.width}x${s.height}  ${fmt(s.fps)} fps  draw ${fmt(s.decodeMs, 1)} ms`,
      `latency ${fmt(s.latencyMs, 1)} ms  p95 ${fmt(s.latencyP95Ms, 1)} ms`,
      `${fmt(s.kbps / 1000, 2)} Mbit/s  seq ${s.lastSeq}  drawn ${s.framesDrawn}${s.still ? "  exact still" : ""}`,
    ];
    // zoom: device pixels per frame pixel (1 at 1:1)
    if (view && view.frame) lines.push(`view ${view.mode}  zoom ${fmt(view.zoom, 2)}x`);
    this.panel.textContent = lines.join("\n");
    let message = "";
    if (s.state === "error") message = `Error: ${s.error}`;
    else if (s.state === "reconnecting") message = `Reconnecting… ${s.error || ""}`;
    else if (s.state === "connecting") message = "Connecting…";
    else if (s.state === "closed") message = s.error || "Closed: the last frame stays";
    this.banner.textContent = message;
    this.banner.hidden = message === "";
    this.banner.dataset.state = s.state;
  }
}
