// The viewer page: hands the canvas to the worker (which owns the socket and the
// decoder), places the picture (view.js), turns DOM input into protocol events, and
// shows the overlay and the control strip.
//
// Page URL parameters: `token` (sent in hello), `transport=image` (never offer
// WebCodecs, e.g. to compare routes or for tests), `transport=png` (offer only PNG:
// lossless frames), `overlay=0` (hide the readout).
// `window.__rfb` is a small read-only hook for tests and embedders (docs/viewer.md).

import { Controls } from "./controls.js";
import { attachInput } from "./input.js";
import { Overlay } from "./overlay.js";
import { View } from "./view.js";

const params = new URLSearchParams(location.search);
const area = document.getElementById("viewer");
const canvas = document.getElementById("screen");
const statsPanel = document.getElementById("stats");
const overlay = new Overlay(statsPanel, document.getElementById("banner"));
statsPanel.hidden = params.get("overlay") === "0";

// Replies from the worker to snapshot and screenshot requests, by request id.
const replies = new Map();
let nextRequestId = 1;

function ask(type, fields) {
  const id = nextRequestId++;
  return new Promise((resolve, reject) => {
    if (!worker) {
      reject(new Error("the viewer worker is not running"));
      return;
    }
    replies.set(id, { resolve, reject });
    worker.postMessage({ type, id, ...fields });
  });
}

const hook = {
  state: "starting",
  error: null,
  stats: {},
  view: null,
  /** RGBA of frame pixels [[x, y], ...] as drawn on the canvas (the page can't read it). */
  snapshot(points) {
    return ask("snapshot", { points });
  },
  /** The frame on the canvas as a PNG Blob, at frame resolution: {blob, width, height, lastSeq}. */
  screenshot() {
    return ask("screenshot", {});
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
      only: ["image", "png"].includes(params.get("transport")) ? params.get("transport") : null,
    },
    [offscreen],
  );

  let frame = null;
  let sizedForConnect = -1;
  let controls = null;
  const view = new View(area, canvas, (state) => {
    hook.view = state;
    if (controls) controls.viewChanged(state);
    if (hook.stats.state) overlay.update(hook.stats, state);
  });
  controls = new Controls({
    strip: document.getElementById("controls"),
    area,
    canvas,
    view,
    screenshot: () => hook.screenshot(),
  });
  const input = attachInput({
    area,
    canvas,
    view,
    frameSize: () => frame,
    send: (event) => worker.postMessage({ type: "event", event }),
    shortcut: (e) => controls.shortcut(e),
  });
  new ResizeObserver(() => view.resize()).observe(area);
  // A new device pixel ratio (browser zoom, another monitor) moves 1:1 and the size in
  // device pixels, without necessarily resizing anything.
  const watchPixelRatio = () => {
    matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`).addEventListener(
      "change",
      () => {
        view.resize();
        input.sizeChanged();
        watchPixelRatio();
      },
      { once: true },
    );
  };
  watchPixelRatio();

  worker.onmessage = (e) => {
    const msg = e.data;
    if (msg.type === "stats") {
      const s = msg.stats;
      hook.stats = s;
      hook.state = s.state;
      hook.error = s.error;
      frame = s.state === "streaming" && s.width > 0 && s.height > 0 ? { width: s.width, height: s.height } : null;
      if (frame) view.setFrame(frame.width, frame.height, s.pixelRatio ?? null);
      controls.setFrameAvailable(s.framesDrawn > 0);
      // A fresh connection knows nothing of our size: tell it once per connect.
      if (s.state === "streaming" && sizedForConnect !== s.connects) {
        sizedForConnect = s.connects;
        input.resendSize();
      }
      overlay.update(s, hook.view);
    } else if (msg.type === "snapshot" || msg.type === "screenshot") {
      const reply = replies.get(msg.id);
      replies.delete(msg.id);
      if (!reply) return;
      const { type, id, error, ...result } = msg;
      if (error) reply.reject(new Error(error));
      else reply.resolve(result);
    }
  };
  worker.onerror = (e) => {
    fail(`the viewer worker failed: ${e.message || "could not load worker.js"}`);
  };
}
