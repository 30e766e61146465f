// One viewer mounted in a piece of DOM: hands the canvas to the worker (which owns the
// connection and the decoder), places the picture (view.js), turns DOM input into
// protocol events, and shows the overlay and the control strip.
//
// The page (main.js) mounts it on index.html's document; the notebook widget
// (widget.js) mounts it in a shadow root holding the same markup, with a relay that
// carries the worker's connection over the widget's comm. `root` is anything with
// getElementById (a Document or a ShadowRoot).

import { Controls } from "./controls.js";
import { attachInput } from "./input.js";
import { Overlay } from "./overlay.js";
import { View } from "./view.js";

/**
 * Mount the viewer found in `root` (#viewer, #screen, #stats, #banner, #controls).
 *
 * `workerUrl`: where worker.js is (a URL or a Blob URL). `init`: the worker's init
 * fields besides the canvas (wsUrl, token, only, link). `relay` (optional): the far
 * end of a relayed connection, `{send(message), onMessage(handler)}`: the worker's
 * relay messages go to `send`, and what `handler` is given goes to the worker.
 * `showOverlay`: false hides the readout. Returns the hook (docs/viewer.md,
 * "window.__rfb") with `destroy()` and `finish()` (no reconnecting: the connection is
 * over for good, the last frame stays).
 */
export function mountViewer({ root, workerUrl, init, relay = null, showOverlay = true }) {
  const area = root.getElementById("viewer");
  const canvas = root.getElementById("screen");
  const statsPanel = root.getElementById("stats");
  const overlay = new Overlay(statsPanel, root.getElementById("banner"));
  statsPanel.hidden = !showOverlay;

  // Replies from the worker to snapshot and screenshot requests, by request id.
  const replies = new Map();
  let nextRequestId = 1;
  let worker = null;

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
    /** The connection is over for good: close it, keep the last frame, never reconnect. */
    finish(reason) {
      if (worker) worker.postMessage({ type: "finish", reason });
    },
    /** Stop the worker and close its connection (the view is going away). */
    destroy() {
      if (!worker) return;
      worker.terminate();
      worker = null;
      for (const reply of replies.values()) reply.reject(new Error("the viewer was closed"));
      replies.clear();
    },
  };

  function fail(message) {
    hook.state = "error";
    hook.error = message;
    overlay.update({ ...hook.stats, state: "error", error: message, width: 0, height: 0, lastSeq: 0, framesDrawn: 0 });
  }

  if (typeof Worker !== "function" || typeof canvas.transferControlToOffscreen !== "function") {
    fail("this browser lacks Web Workers or OffscreenCanvas; use a current Chromium, Edge, Firefox or Safari");
    return hook;
  }
  worker = new Worker(workerUrl, { type: "module" });
  const offscreen = canvas.transferControlToOffscreen();
  worker.postMessage({ type: "init", canvas: offscreen, ...init }, [offscreen]);
  if (relay) {
    relay.onMessage((message, transfer) => {
      if (worker) worker.postMessage({ type: "relay", ...message }, transfer || []);
    });
  }

  let frame = null;
  let sizedForConnect = -1;
  let controls = null;
  const view = new View(area, canvas, (state) => {
    hook.view = state;
    if (controls) controls.viewChanged(state);
    if (hook.stats.state) overlay.update(hook.stats, state);
  });
  controls = new Controls({
    strip: root.getElementById("controls"),
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
    send: (event) => worker && worker.postMessage({ type: "event", event }),
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
    } else if (msg.type === "relay") {
      if (relay) relay.send(msg);
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
  return hook;
}
