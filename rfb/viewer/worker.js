// The viewer's worker: it owns the WebSocket, the WebCodecs VideoDecoder and the
// transferred OffscreenCanvas, so that decoding and drawing never wait on the page's
// main thread (layout, input handling, the overlay).
//
// The connection is a WebSocket to `wsUrl`, or a relay through the page (relay.js: the
// notebook widget's comm). `link`: "websocket" (the default), "comm", or "auto": try the
// WebSocket first and, when it fails before its first `config`, use the relay from then on.
//
// Messages from the page:
//   {type: "init", canvas, wsUrl, token, only, link}   once, with the OffscreenCanvas
//   {type: "relay", op, conn, ...}                     the relay's far end (relay.js)
//   {type: "finish", reason}                           over for good: close, keep the last frame
//   {type: "event", event}                             an input event (docs/protocol.md)
//   {type: "snapshot", id, points: [[x, y], ...]}      RGBA of frame pixels, for tests
//   {type: "screenshot", id}                           the canvas as a PNG Blob
// Messages to the page:
//   {type: "stats", stats}                             see docs/viewer.md
//   {type: "relay", op, conn, ...}                     for the relay's far end (relay.js)
//   {type: "snapshot", id, width, height, lastSeq, pixels}
//   {type: "screenshot", id, blob, width, height, lastSeq}, or {type, id, error}

import * as proto from "./protocol.js";
import { RelaySocket } from "./relay.js";

const BACKOFF_START_MS = 250;
const BACKOFF_CAP_MS = 4000;
const STATS_INTERVAL_MS = 500;
const H264_PROBE_CODECS = ["avc1.42E01F", "avc1.640028"];
const AUTO_WEBSOCKET_TIMEOUT_MS = 3000; // link "auto": a WebSocket not open by then counts as unreachable

let canvas = null;
let ctx = null;
let wsUrl = "";
let token = "";
let supported = [];
let linkMode = "websocket"; // what the next connection uses: "websocket" or "comm"
let linkDecided = true; // false while "auto" has not seen the WebSocket stream yet
let finished = false;

let ws = null;
let attempt = 0;
let reconnectTimer = null;
let config = null;
let imageChain = Promise.resolve();
let framesArrived = 0; // payloads other than stills: a still older than the newest one is not drawn

const stats = {
  state: "idle",
  error: null,
  serverError: null,
  transport: null,
  codec: null,
  width: 0,
  height: 0,
  pixelRatio: null, // of the last frame drawn: its pixels per CSS pixel, null when the app gave none
  clientId: null,
  supported: [],
  framesDrawn: 0,
  framesDropped: 0,
  lastSeq: 0,
  fps: 0,
  decodeMs: 0,
  kbps: 0,
  latencyMs: null, // from the server's `stats`: publish() to our ack, median over its window
  latencyP95Ms: null,
  serverFps: null, // frames the server saw us draw per second
  connects: 0,
  decoderResets: 0,
  keyframeRequests: 0,
  eventsSent: 0,
  still: false, // the canvas shows a lossless still (until the next frame is drawn)
  stillsDrawn: 0,
  stillsSkipped: 0, // stills that a newer frame overtook
  link: null, // "websocket" or "comm" where the page asked for a link; null on the plain page
};
const drawTimes = [];
const byteLog = [];

// ---------------------------------------------------------------- page messages

self.onmessage = (e) => {
  const msg = e.data;
  switch (msg.type) {
    case "init":
      init(msg);
      break;
    case "event":
      sendEvent(msg.event);
      break;
    case "snapshot":
      snapshot(msg);
      break;
    case "screenshot":
      screenshot(msg);
      break;
    case "relay":
      if (ws instanceof RelaySocket && ws.conn === msg.conn) ws.receive(msg);
      break;
    case "finish":
      finish(msg.reason);
      break;
    default:
      console.warn(`rfb worker: unknown page message type ${JSON.stringify(msg.type)}`);
  }
};

async function init(msg) {
  canvas = msg.canvas;
  ctx = canvas.getContext("2d", { alpha: false, desynchronized: true });
  wsUrl = msg.wsUrl;
  token = msg.token || "";
  if (msg.link) {
    linkMode = msg.link === "comm" || (msg.link === "auto" && !wsUrl) ? "comm" : "websocket";
    linkDecided = msg.link !== "auto" || linkMode === "comm";
    stats.link = linkMode;
  }
  supported = await detectSupported(msg.only || null);
  stats.supported = supported;
  setInterval(postStats, STATS_INTERVAL_MS);
  connect();
}

/**
 * What hello.supported lists: H.264 only where WebCodecs says it can decode it, then
 * the image types. `only` ("image" or "png", from the page URL) narrows the list.
 */
async function detectSupported(only) {
  if (only === "png") return [proto.IMAGE_PNG];
  const out = [];
  if (only !== "image" && typeof VideoDecoder === "function") {
    for (const codec of H264_PROBE_CODECS) {
      try {
        const { supported: ok } = await VideoDecoder.isConfigSupported(decoderConfig(codec));
        if (ok) {
          out.push(proto.WEBCODECS_H264);
          break;
        }
      } catch (err) {
        // isConfigSupported rejects only for a malformed config: treat it as "no".
        console.warn(`rfb worker: VideoDecoder.isConfigSupported(${codec}) failed: ${err}`);
      }
    }
  }
  out.push(...proto.IMAGE_MIMES);
  return out;
}

function decoderConfig(codec) {
  // Annex B: no `description`, so SPS/PPS come in-band with each keyframe.
  return { codec, optimizeForLatency: true, hardwareAcceleration: "no-preference" };
}

// ---------------------------------------------------------------- connection

function connect() {
  reconnectTimer = null;
  if (finished) return;
  const socket = linkMode === "comm" ? new RelaySocket((m) => self.postMessage(m)) : new WebSocket(wsUrl);
  socket.binaryType = "arraybuffer";
  ws = socket;
  if (!linkDecided) {
    setTimeout(() => {
      if (ws === socket && socket.readyState === 0) socket.close();
    }, AUTO_WEBSOCKET_TIMEOUT_MS);
  }
  setState(stats.connects === 0 ? "connecting" : "reconnecting", stats.connects === 0 ? null : stats.error);

  socket.onopen = () => {
    if (ws !== socket) return;
    stats.connects += 1;
    socket.send(proto.hello(supported, token));
    setState("open", null);
  };
  socket.onmessage = (e) => {
    if (ws !== socket) return;
    if (typeof e.data === "string") onControl(socket, e.data);
    else onBinary(socket, e.data);
  };
  socket.onclose = (e) => {
    if (ws !== socket) return;
    ws = null;
    stopVideo();
    config = null;
    clearServerStats();
    if (!linkDecided) {
      // "auto": the display's port is not reachable from here (or refuses this page): relay.
      console.info(`rfb worker: WebSocket ${wsUrl} failed (close ${e.code}); using the comm`);
      linkMode = "comm";
      linkDecided = true;
      stats.link = linkMode;
      connect();
      return;
    }
    const fatal = proto.FATAL_CLOSE_CODES.get(e.code);
    if (fatal) {
      setState("error", `${fatal} (close ${e.code}${e.reason ? `: ${e.reason}` : ""})`);
      return;
    }
    scheduleReconnect(e);
  };
  // onerror is always followed by onclose, which decides what to do.
  socket.onerror = () => {};
}

function scheduleReconnect(closeEvent) {
  const base = Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * 2 ** attempt);
  const delay = Math.round(base * (0.75 + Math.random() * 0.5));
  attempt += 1;
  const why = closeEvent.code === 1006 ? "connection lost" : `closed ${closeEvent.code}${closeEvent.reason ? ` (${closeEvent.reason})` : ""}`;
  setState("reconnecting", `${why}; retrying in ${(delay / 1000).toFixed(1)} s`);
  reconnectTimer = setTimeout(connect, delay);
}

function send(socket, text) {
  if (socket && socket.readyState === 1) socket.send(text); // WebSocket.OPEN, RelaySocket's too
}

/** The display is gone for good: close the connection, keep the last frame, never reconnect. */
function finish(reason) {
  finished = true;
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  const socket = ws;
  ws = null;
  stopVideo();
  config = null;
  clearServerStats();
  if (socket) socket.close(1000, "finished");
  setState("closed", reason || null);
}

function sendEvent(event) {
  if (!ws || !config) return; // no stream yet: the event has no frame to refer to
  send(ws, proto.inputEvent(event));
  stats.eventsSent += 1;
}

// ---------------------------------------------------------------- control messages

function onControl(socket, text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch (err) {
    console.warn(`rfb worker: expected a JSON control message, got ${text.slice(0, 80)}: ${err}`);
    return;
  }
  switch (msg.type) {
    case "config":
      onConfig(socket, msg);
      break;
    case "error":
      stats.serverError = String(msg.message);
      console.warn(`rfb server error: ${msg.message}`);
      postStats();
      break;
    case "stats":
      onServerStats(msg);
      break;
    default:
      console.warn(`rfb worker: ignoring unknown control message type ${JSON.stringify(msg.type)}`);
  }
}

function onConfig(socket, msg) {
  config = msg;
  attempt = 0;
  linkDecided = true;
  stats.transport = msg.transport;
  stats.codec = msg.codec ?? null;
  stats.clientId = msg.client_id ?? null;
  resizeCanvas(msg.width, msg.height);
  stopVideo();
  // A null codec means "the encoder is being rebuilt; wait for the next config":
  // chunks until then find no decoder and are acked as dropped.
  if (msg.transport === "webcodecs" && msg.codec) startVideo(socket, msg.codec);
  setState("streaming", null);
}

/** The server's view of this viewer: latency from publish() to our ack, and drawn fps. */
function onServerStats(msg) {
  const latency = msg.latency_ms && typeof msg.latency_ms === "object" ? msg.latency_ms : null;
  stats.latencyMs = latency && Number.isFinite(latency.median) ? latency.median : null;
  stats.latencyP95Ms = latency && Number.isFinite(latency.p95) ? latency.p95 : null;
  stats.serverFps = Number.isFinite(msg.fps) ? msg.fps : null;
  postStats();
}

function clearServerStats() {
  stats.latencyMs = null;
  stats.latencyP95Ms = null;
  stats.serverFps = null;
}

function resizeCanvas(width, height) {
  if (!(width > 0 && height > 0)) return;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width; // clears the canvas, and any still with it
    canvas.height = height;
    stats.still = false;
  }
  stats.width = width;
  stats.height = height;
}

// ---------------------------------------------------------------- binary payloads

function onBinary(socket, buffer) {
  const receivedAt = performance.now();
  logBytes(receivedAt, buffer.byteLength);
  let header;
  let payload;
  try {
    ({ header, payload } = proto.parseBinary(buffer));
  } catch (err) {
    console.warn(`rfb worker: dropping a malformed binary message: ${err.message}`);
    return;
  }
  if (proto.isStill(header)) onStill(socket, header, payload, receivedAt);
  else if (header.type === "video_chunk") {
    framesArrived += 1;
    onVideoChunk(socket, header, payload, receivedAt);
  } else if (header.type === "image_frame") {
    framesArrived += 1;
    onImage(socket, header, payload, receivedAt);
  } else {
    console.warn(`rfb worker: ignoring binary message of unknown type ${JSON.stringify(header.type)}`);
    if (Number.isInteger(header.seq)) dropped(socket, header.seq);
  }
}

function dropped(socket, seq) {
  stats.framesDropped += 1;
  send(socket, proto.ack(seq));
}

function drew(socket, seq, width, height, pixelRatio, receivedAt) {
  const now = performance.now();
  const decodeMs = now - receivedAt;
  stats.framesDrawn += 1;
  stats.lastSeq = seq;
  stats.decodeMs = stats.framesDrawn === 1 ? decodeMs : stats.decodeMs * 0.9 + decodeMs * 0.1;
  stats.width = width;
  stats.height = height;
  stats.pixelRatio = pixelRatio;
  stats.still = false;
  drawTimes.push(now);
  send(socket, proto.ack(seq, decodeMs));
  postStats();
}

function draw(source, width, height) {
  if (width > 0 && height > 0 && (canvas.width !== width || canvas.height !== height)) {
    canvas.width = width;
    canvas.height = height;
  }
  ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
}

// ---- images: decoded in arrival order, one after another

function onImage(socket, header, payload, receivedAt) {
  const blob = new Blob([payload], { type: header.mime || "image/jpeg" });
  imageChain = imageChain.then(async () => {
    let bitmap;
    try {
      bitmap = await createImageBitmap(blob);
    } catch (err) {
      console.warn(`rfb worker: could not decode ${header.mime} frame ${header.seq}: ${err}`);
      dropped(socket, header.seq);
      return;
    }
    try {
      draw(bitmap, header.width, header.height);
    } finally {
      bitmap.close();
    }
    drew(socket, header.seq, header.width, header.height, proto.pixelRatioOf(header), receivedAt);
  });
}

// ---- stills: the frame on screen once more, losslessly, when the scene settles

/**
 * Draw a still over the picture, without clearing first (no flash). It is skipped when
 * a frame arrived after it or one is still in the decoder: that frame is newer, and
 * drawing the still now would put an older picture back. Acked either way, like any
 * payload; only a drawn still counts as drawn.
 */
function onStill(socket, header, payload, receivedAt) {
  const arrivedBefore = framesArrived;
  const blob = new Blob([payload], { type: header.mime || "image/png" });
  imageChain = imageChain.then(async () => {
    let bitmap;
    try {
      bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    } catch (err) {
      console.warn(`rfb worker: could not decode still ${header.seq}: ${err}`);
      send(socket, proto.ack(header.seq));
      return;
    }
    let shown = false;
    try {
      const current = framesArrived === arrivedBefore && video.pending.size === 0;
      if (current && canvas.width === header.width && canvas.height === header.height) {
        ctx.drawImage(bitmap, 0, 0);
        shown = true;
      }
    } finally {
      bitmap.close();
    }
    if (!shown) {
      stats.stillsSkipped += 1;
      send(socket, proto.ack(header.seq));
      return;
    }
    stats.still = true;
    stats.stillsDrawn += 1;
    send(socket, proto.ack(header.seq, performance.now() - receivedAt));
    postStats();
  });
}

// ---- video: a VideoDecoder per configuration, behind a keyframe gate

const video = {
  decoder: null,
  codec: null,
  socket: null,
  generation: 0,
  waitingForKeyframe: true,
  keyframeRequested: false,
  pending: new Map(), // seq -> {receivedAt, width, height, pixelRatio}, in decode order
};

function startVideo(socket, codec) {
  video.generation += 1;
  const generation = video.generation;
  video.socket = socket;
  video.codec = codec;
  video.waitingForKeyframe = true;
  video.keyframeRequested = false;
  video.decoder = new VideoDecoder({
    output: (frame) => onDecoded(generation, frame),
    error: (err) => onDecoderError(generation, err),
  });
  try {
    video.decoder.configure(decoderConfig(codec));
  } catch (err) {
    stats.error = `VideoDecoder.configure(${codec}) failed: ${err.message}`;
    video.decoder = null;
  }
}

/** Close the decoder; frames still inside it count as dropped so the server's window frees. */
function stopVideo() {
  video.generation += 1;
  if (video.decoder && video.decoder.state !== "closed") video.decoder.close();
  video.decoder = null;
  for (const seq of video.pending.keys()) dropped(video.socket, seq);
  video.pending.clear();
}

function onVideoChunk(socket, header, payload, receivedAt) {
  if (!video.decoder || video.socket !== socket) {
    dropped(socket, header.seq);
    return;
  }
  if (video.waitingForKeyframe) {
    if (!header.keyframe) {
      dropped(socket, header.seq);
      if (!video.keyframeRequested) {
        video.keyframeRequested = true;
        stats.keyframeRequests += 1;
        send(socket, proto.requestKeyframe("waiting for a keyframe after configure"));
      }
      return;
    }
    video.waitingForKeyframe = false;
  }
  video.pending.set(header.seq, {
    receivedAt,
    width: header.width,
    height: header.height,
    pixelRatio: proto.pixelRatioOf(header),
  });
  try {
    video.decoder.decode(
      new EncodedVideoChunk({ type: header.keyframe ? "key" : "delta", timestamp: header.seq, data: payload }),
    );
  } catch (err) {
    onDecoderError(video.generation, err);
  }
}

function onDecoded(generation, frame) {
  try {
    if (generation !== video.generation) return;
    const seq = frame.timestamp;
    const info = video.pending.get(seq);
    // Frames the decoder skipped (older seqs with no output) are acked as dropped.
    for (const older of video.pending.keys()) {
      if (older >= seq) break;
      video.pending.delete(older);
      dropped(video.socket, older);
    }
    video.pending.delete(seq);
    const width = info ? info.width : frame.displayWidth;
    const height = info ? info.height : frame.displayHeight;
    draw(frame, width, height);
    const pixelRatio = info ? info.pixelRatio : stats.pixelRatio;
    drew(video.socket, seq, width, height, pixelRatio, info ? info.receivedAt : performance.now());
  } finally {
    frame.close();
  }
}

function onDecoderError(generation, err) {
  if (generation !== video.generation) return;
  const socket = video.socket;
  stats.decoderResets += 1;
  stats.error = `decoder error, resetting: ${err && err.message ? err.message : err}`;
  console.warn(`rfb worker: ${stats.error}`);
  stopVideo();
  if (socket && socket === ws && config && config.transport === "webcodecs") {
    startVideo(socket, config.codec);
    video.keyframeRequested = true;
    stats.keyframeRequests += 1;
    send(socket, proto.requestKeyframe("decoder error"));
  }
  postStats();
}

// ---------------------------------------------------------------- stats and snapshots

function logBytes(now, n) {
  byteLog.push([now, n]);
}

function setState(state, error) {
  stats.state = state;
  stats.error = error;
  postStats();
}

function postStats() {
  const now = performance.now();
  while (drawTimes.length && now - drawTimes[0] > 1000) drawTimes.shift();
  while (byteLog.length && now - byteLog[0][0] > 1000) byteLog.shift();
  stats.fps = drawTimes.length;
  stats.kbps = Math.round(byteLog.reduce((sum, [, n]) => sum + n, 0) * 8 / 1000);
  self.postMessage({ type: "stats", stats: { ...stats } });
}

/** RGBA at frame pixels, read back from the canvas the page cannot read itself. */
function snapshot({ id, points }) {
  const pixels = [];
  for (const [x, y] of points || []) {
    if (!ctx || x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) {
      pixels.push(null);
    } else {
      pixels.push(Array.from(ctx.getImageData(Math.floor(x), Math.floor(y), 1, 1).data));
    }
  }
  self.postMessage({
    type: "snapshot",
    id,
    width: canvas ? canvas.width : 0,
    height: canvas ? canvas.height : 0,
    lastSeq: stats.lastSeq,
    pixels,
  });
}

/**
 * The canvas as a PNG, at frame resolution: the canvas holds exactly the last frame
 * drawn (the view's zoom and pan are the page's CSS), so this is that frame.
 */
async function screenshot({ id }) {
  if (!canvas || stats.framesDrawn === 0) {
    self.postMessage({ type: "screenshot", id, error: "expected a drawn frame to save, but none has been drawn yet" });
    return;
  }
  // convertToBlob copies the bitmap when called: size and seq are those of this copy.
  const width = canvas.width;
  const height = canvas.height;
  const lastSeq = stats.lastSeq;
  try {
    const blob = await canvas.convertToBlob({ type: "image/png" });
    self.postMessage({ type: "screenshot", id, blob, width, height, lastSeq });
  } catch (err) {
    self.postMessage({ type: "screenshot", id, error: `OffscreenCanvas.convertToBlob(image/png) failed: ${err.message}` });
  }
}
