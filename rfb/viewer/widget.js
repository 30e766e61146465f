// The notebook widget's entry (anywidget: `export default { render }`). It mounts the
// viewer (app.js) in a shadow root holding index.html's markup and style.css, so the
// same modules run in a notebook as on the page, without a build step and without a
// copy: the kernel sends the package's viewer files as the model's `_modules`, and each
// becomes a Blob URL whose relative imports ("./view.js") name the other Blob URLs.
//
// The link: a WebSocket to the display's port where the browser can reach it ("auto"
// tries it first), else the widget's comm: the worker's relay messages (relay.js) go out
// as `model.send({view, conn, op, text})`, and the kernel's replies come back as custom
// messages with the payload in a binary buffer. Before the WebSocket, the view tells the
// kernel its page's origin (`{view, op: "origin", origin}`) and waits for the answer
// (`{view, op: "origin", ok, origin | reason}`, at most ORIGIN_WAIT_MS): the display
// then accepts WebSockets from this page without `allowed_origins` (docs/viewer.md, "In
// a notebook", says why that is safe). Every view of the model is a viewer of its own,
// named by a random `view` id. Removing the view (re-running the cell) closes
// its connection; the model's `closed` turning true (the display closed) keeps the last
// frame on the canvas and stops reconnecting.

const IMPORT = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])\.\/([\w.-]+\.js)\2/g;
const ALIVE_MS = 5000; // "alive" per open comm connection: the kernel ends one silent for 20 s (a closed tab)
// The kernel's answer to the page's origin; a kernel busy in a cell answers late, and the
// view goes on as without it (the WebSocket then needs the origin in allowed_origins).
const ORIGIN_WAIT_MS = 2000;
const urlCache = new Map(); // sources text -> {name: Blob URL}: one set per distinct package version

/** Each module as a Blob URL with its relative imports rewritten to the others' Blob URLs. */
function moduleUrls(sources) {
  const key = JSON.stringify(sources);
  if (urlCache.has(key)) return urlCache.get(key);
  const urls = {};
  const visiting = new Set();
  const build = (name) => {
    if (urls[name]) return urls[name];
    if (!(name in sources)) throw new Error(`expected the viewer module ${name} among ${Object.keys(sources)}`);
    if (visiting.has(name)) throw new Error(`the viewer modules import each other in a cycle through ${name}`);
    visiting.add(name);
    const text = sources[name].replace(IMPORT, (_, head, quote, dep) => `${head}${quote}${build(dep)}${quote}`);
    urls[name] = URL.createObjectURL(new Blob([text], { type: "text/javascript" }));
    return urls[name];
  };
  for (const name of Object.keys(sources)) build(name);
  urlCache.set(key, urls);
  return urls;
}

function randomId() {
  return Math.random().toString(36).slice(2, 10);
}

/** The buffer a comm message carries, as an ArrayBuffer of its own (transferable to the worker). */
function ownBuffer(view) {
  return view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
}

function websocketUrl(httpUrl) {
  if (!httpUrl) return "";
  const url = new URL("ws", httpUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  return url.href;
}

/**
 * Tell the kernel this page's origin and wait for its answer (or ORIGIN_WAIT_MS): what
 * the hook's `pageOrigin` shows, {origin, answer: "granted" | "refused" | "no answer", reason}.
 */
function announceOrigin(model, view) {
  const origin = window.location.origin;
  return new Promise((resolve) => {
    let timer = null;
    const done = (answer, reason) => {
      clearTimeout(timer);
      model.off("msg:custom", onAnswer);
      if (answer !== "granted") console.info(`rfb widget: page origin ${origin} ${answer}: ${reason}`);
      resolve({ origin, answer, reason });
    };
    const onAnswer = (msg) => {
      if (!msg || msg.view !== view || msg.op !== "origin") return;
      if (msg.ok) done("granted", null);
      else done("refused", String(msg.reason));
    };
    const late = `the kernel did not answer within ${ORIGIN_WAIT_MS} ms (busy in a cell?)`;
    timer = setTimeout(() => done("no answer", late), ORIGIN_WAIT_MS);
    model.on("msg:custom", onAnswer);
    model.send({ view, op: "origin", origin });
  });
}

// model -> the promise of its page origin's answer: the grant belongs to the widget, and
// every view of it on this page has the same origin, so one ask serves them all (asked
// again by the next view when it was not granted).
const originAnswers = new WeakMap();

function pageOriginOf(model, view) {
  let answer = originAnswers.get(model);
  if (!answer) {
    answer = announceOrigin(model, view);
    originAnswers.set(model, answer);
    answer.then((a) => {
      if (a.answer !== "granted") originAnswers.delete(model);
    });
  }
  return answer;
}

function widgetStyle(model) {
  const width = model.get("frame_width") || 16;
  const height = model.get("frame_height") || 9;
  const fixed = model.get("height");
  const size = fixed > 0 ? `height: ${fixed}px;` : `aspect-ratio: ${width} / ${height}; max-height: 80vh;`;
  return `:host { display: block; }
#viewer { position: relative; inset: auto; width: 100%; ${size} }`;
}

async function render({ model, el }) {
  const urls = moduleUrls(model.get("_modules"));
  const { mountViewer } = await import(urls["app.js"]);
  const shadow = el.attachShadow({ mode: "open" });
  const style = document.createElement("style");
  style.textContent = `${model.get("_style")}\n${widgetStyle(model)}`;
  const page = new DOMParser().parseFromString(model.get("_page"), "text/html");
  shadow.append(style, document.importNode(page.getElementById("viewer"), true));
  // Lumino (JupyterLab) leaves keys alone inside an element carrying this attribute.
  el.dataset.lmSuppressShortcuts = "true";

  const view = randomId();
  const transport = model.get("transport");
  // The display accepts this page's WebSocket once the kernel has its origin: ask first.
  const pageOrigin = transport === "comm" ? null : await pageOriginOf(model, view);
  const open = new Set(); // relay connections this view has opened and not closed
  let deliver = null;
  const relay = {
    send(msg) {
      const { type, ...fields } = msg;
      if (fields.op === "open") open.add(fields.conn);
      if (fields.op === "close") open.delete(fields.conn);
      model.send({ view, ...fields });
    },
    onMessage(handler) {
      deliver = handler;
    },
  };
  const onCustom = (msg, buffers) => {
    if (!msg || msg.view !== view || !deliver) return;
    if (msg.op === "close") open.delete(msg.conn);
    if (msg.op === "bytes" && buffers && buffers.length) {
      const buffer = ownBuffer(buffers[0]);
      deliver({ ...msg, buffer }, [buffer]);
    } else {
      deliver(msg);
    }
  };
  model.on("msg:custom", onCustom);
  const alive = setInterval(() => {
    for (const conn of open) model.send({ view, op: "alive", conn });
  }, ALIVE_MS);

  const hook = mountViewer({
    root: shadow,
    workerUrl: urls["worker.js"],
    init: {
      wsUrl: transport === "comm" ? "" : websocketUrl(model.get("url")),
      token: model.get("token"),
      only: model.get("only") || null,
      link: transport,
    },
    relay,
    showOverlay: model.get("overlay"),
  });
  hook.view_id = view;
  hook.pageOrigin = pageOrigin;
  el.__rfb = hook;
  const registry = (window.__rfbWidgets = window.__rfbWidgets || []);
  registry.push(hook);

  const onClosed = () => {
    if (model.get("closed")) hook.finish("Display closed: the last frame stays");
  };
  model.on("change:closed", onClosed);
  onClosed();

  return () => {
    clearInterval(alive);
    model.off("msg:custom", onCustom);
    model.off("change:closed", onClosed);
    for (const conn of open) model.send({ view, op: "close", conn });
    open.clear();
    hook.destroy();
    registry.splice(registry.indexOf(hook), 1);
  };
}

export default { render };
