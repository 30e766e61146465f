// The viewer page: hands the canvas to the worker (which owns the socket and the
// decoder), turns DOM input into protocol events, and shows the overlay.
//
// Page URL parameters: `token` (sent in hello), `transport=image` (never offer
// WebCodecs, e.g. to compare routes or for tests), `overlay=0` (hide the readout).
// `window.__rfb` is a small read-only hook for tests and embedders (docs/viewer.md).

import { attachInput } from "./input.js";
import { Overlay } from "./overlay.js";

const params = new URLSearchParams(location.search);
const canvas = document.getElementById("screen");
const statsPanel = document.getElementById("stats");
const overlay = new Overlay(statsPanel, document.getElementById("banner"));
statsPanel.hidden = params.get("overlay") === "0";

const snapshots = new Map();
let nextSnapshotId = 1;

const hook = {
  state: "starting",
  error: null,
  stats: {},
  /** RGBA of frame pixels [[x, y], ...] as drawn on the canvas (the page can't read it). */
  snapshot(points) {
    const id = nextSnapshotId++;
    return new Promise((resolve) => {
      snapshots.set(id, resolve);
      worker.postMessage({ type: "snapshot", id, points });
    });
  },
};
window.__rfb = hook;

/** The socket address: `ws` next to the page, so a server mounted under a prefix works. */
function socketUrl() {
  const url = new URL("ws", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  return url.href;
}

function fail(message) {
  hook.state = "error";
  hook.error = message;
  overlay.update({ ...hook.stats, state: "error", error: message, width: 0, height: 0, lastSeq: 0, framesDrawn: 0 });
}

let worker = null;
if (typeof Worker !== "function" || typeof canvas.transferControlToOffscreen !== "function") {
  fail("this browser lacks Web Workers or OffscreenCanvas; use a current Chromium, Edge, Firefox or Safari");
} else {
  worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  const offscreen = canvas.transferControlToOffscreen();
  worker.postMessage(
    {
      type: "init",
      canvas: offscreen,
      wsUrl: socketUrl(),
      token: params.get("token") || "",
      forceImage: params.get("transport") === "image",
    },
    [offscreen],
  );

  let frame = null;
  let sizedForConnect = -1;
  const input = attachInput(
    canvas,
    () => frame,
    (event) => worker.postMessage({ type: "event", event }),
  );

  worker.onmessage = (e) => {
    const msg = e.data;
    if (msg.type === "stats") {
      const s = msg.stats;
      hook.stats = s;
      hook.state = s.state;
      hook.error = s.error;
      frame = s.state === "streaming" && s.width > 0 && s.height > 0 ? { width: s.width, height: s.height } : null;
      // A fresh connection knows nothing of our size: tell it once per connect.
      if (s.state === "streaming" && sizedForConnect !== s.connects) {
        sizedForConnect = s.connects;
        input.resendSize();
      }
      overlay.update(s);
    } else if (msg.type === "snapshot") {
      const resolve = snapshots.get(msg.id);
      snapshots.delete(msg.id);
      if (resolve) resolve({ width: msg.width, height: msg.height, lastSeq: msg.lastSeq, pixels: msg.pixels });
    }
  };
  worker.onerror = (e) => {
    fail(`the viewer worker failed: ${e.message || "could not load worker.js"}`);
  };
}
