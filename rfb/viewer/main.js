// The viewer page: mounts the viewer (app.js) on index.html, with the WebSocket next
// to the page.
//
// Page URL parameters: `token` (sent in hello), `transport=image` (never offer
// WebCodecs, e.g. to compare routes or for tests), `transport=png` (offer only PNG:
// lossless frames), `overlay=0` (hide the readout).
// `window.__rfb` is a small read-only hook for tests and embedders (docs/viewer.md).

import { mountViewer } from "./app.js";

const params = new URLSearchParams(location.search);

/** The socket address: `ws` next to the page, so a server mounted under a prefix works. */
function socketUrl() {
  const url = new URL("ws", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  return url.href;
}

window.__rfb = mountViewer({
  root: document,
  workerUrl: new URL("./worker.js", import.meta.url),
  init: {
    wsUrl: socketUrl(),
    token: params.get("token") || "",
    only: ["image", "png"].includes(params.get("transport")) ? params.get("transport") : null,
  },
  showOverlay: params.get("overlay") !== "0",
});
