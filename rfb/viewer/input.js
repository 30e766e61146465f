// Input capture: DOM pointer, wheel, key and resize events become protocol events
// (docs/protocol.md, "Input events") with coordinates in FRAME pixels.
//
// The canvas fills the window and shows the frame with `object-fit: contain`, so the
// picture is letterboxed inside the element's CSS box; mapping must undo both the
// scale and the bars, or a click lands beside what the user pointed at.

const LINE_PX = 16; // protocol: wheel deltas are pixels, lines x 16

// Keys the browser itself needs (reload, dev tools, tab and window management):
// they are still sent, but their default action is kept.
const BROWSER_KEYS = new Set(["F5", "F11", "F12"]);
const BROWSER_CTRL_KEYS = new Set(["r", "R", "l", "L", "t", "T", "w", "W", "n", "N", "Tab"]);

/** Where the frame's pixels sit inside an element box (a DOMRect-like {left, top, width, height}). */
export function contentBox(rect, frameWidth, frameHeight) {
  const scale = Math.min(rect.width / frameWidth, rect.height / frameHeight);
  const width = frameWidth * scale;
  const height = frameHeight * scale;
  return {
    scale,
    left: rect.left + (rect.width - width) / 2,
    top: rect.top + (rect.height - height) / 2,
    width,
    height,
  };
}

/**
 * Client (CSS) coordinates to frame pixels. `inside` says whether the point is on the
 * picture rather than on a letterbox bar; x and y are clamped to [0, size].
 */
export function toFrame(clientX, clientY, rect, frameWidth, frameHeight) {
  const box = contentBox(rect, frameWidth, frameHeight);
  const x = (clientX - box.left) / box.scale;
  const y = (clientY - box.top) / box.scale;
  const inside = x >= 0 && y >= 0 && x <= frameWidth && y <= frameHeight;
  return {
    x: Math.min(Math.max(x, 0), frameWidth),
    y: Math.min(Math.max(y, 0), frameHeight),
    inside,
  };
}

export function modifiers(e) {
  const out = [];
  if (e.shiftKey) out.push("shift");
  if (e.ctrlKey) out.push("ctrl");
  if (e.altKey) out.push("alt");
  if (e.metaKey) out.push("meta");
  return out;
}

/** Wheel deltas in pixels whatever the DOM deltaMode (0 pixels, 1 lines, 2 pages). */
export function wheelPixels(e, pageHeight) {
  const factor = e.deltaMode === 1 ? LINE_PX : e.deltaMode === 2 ? pageHeight : 1;
  return { dx: e.deltaX * factor, dy: e.deltaY * factor };
}

function browserKeepsDefault(e) {
  return BROWSER_KEYS.has(e.key) || ((e.ctrlKey || e.metaKey) && BROWSER_CTRL_KEYS.has(e.key));
}

/**
 * Listen on `canvas` and call `send(event)` with protocol events. `frameSize()` returns
 * the current {width, height} of the frame, or null before the first config.
 * Returns {resendSize(), detach()}.
 */
export function attachInput(canvas, frameSize, send) {
  let pendingMove = null;
  let moveScheduled = false;
  let resizeTimer = null;
  let lastSize = "";

  const mapped = (e) => {
    const size = frameSize();
    if (!size) return null;
    return toFrame(e.clientX, e.clientY, canvas.getBoundingClientRect(), size.width, size.height);
  };

  const pointerEvent = (type, e, p) => ({
    type,
    x: p.x,
    y: p.y,
    button: e.button,
    buttons: e.buttons,
    modifiers: modifiers(e),
  });

  const flushMove = () => {
    moveScheduled = false;
    if (pendingMove) send(pendingMove);
    pendingMove = null;
  };

  const onPointerDown = (e) => {
    const p = mapped(e);
    if (!p || !p.inside) return;
    canvas.focus({ preventScroll: true });
    canvas.setPointerCapture(e.pointerId);
    flushMove(); // order: a move that happened before the press goes first
    send(pointerEvent("pointerdown", e, p));
    e.preventDefault();
  };

  const onPointerUp = (e) => {
    const p = mapped(e);
    const captured = canvas.hasPointerCapture(e.pointerId);
    if (!p || (!captured && !p.inside)) return;
    if (captured) canvas.releasePointerCapture(e.pointerId);
    flushMove();
    send(pointerEvent("pointerup", e, p));
  };

  const onPointerMove = (e) => {
    const p = mapped(e);
    // Outside the picture a move only matters while dragging (then it is clamped).
    if (!p || (!p.inside && e.buttons === 0)) return;
    pendingMove = pointerEvent("pointermove", e, p);
    if (!moveScheduled) {
      moveScheduled = true;
      requestAnimationFrame(flushMove);
    }
  };

  const onWheel = (e) => {
    const p = mapped(e);
    if (!p || !p.inside) return;
    e.preventDefault();
    const size = frameSize();
    const { dx, dy } = wheelPixels(e, size.height);
    send({ type: "wheel", x: p.x, y: p.y, dx, dy, modifiers: modifiers(e) });
  };

  const onKey = (e) => {
    if (!frameSize()) return;
    send({ type: e.type, key: e.key, code: e.code, repeat: e.repeat, modifiers: modifiers(e) });
    if (!browserKeepsDefault(e)) e.preventDefault();
  };

  const sendResize = (force) => {
    resizeTimer = null;
    const dpr = window.devicePixelRatio || 1;
    const width = Math.round(canvas.clientWidth * dpr);
    const height = Math.round(canvas.clientHeight * dpr);
    if (!width || !height || (!force && `${width}x${height}` === lastSize)) return;
    lastSize = `${width}x${height}`;
    send({ type: "resize", width, height });
  };
  const scheduleResize = () => {
    if (resizeTimer === null) resizeTimer = setTimeout(() => sendResize(false), 100);
  };
  const observer = new ResizeObserver(scheduleResize);
  observer.observe(canvas);

  const onContextMenu = (e) => e.preventDefault(); // right button belongs to the app

  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("pointercancel", onPointerUp);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("wheel", onWheel, { passive: false });
  canvas.addEventListener("keydown", onKey);
  canvas.addEventListener("keyup", onKey);
  canvas.addEventListener("contextmenu", onContextMenu);

  return {
    /** Send the current canvas size again (after a (re)connect the server knows nothing). */
    resendSize: () => sendResize(true),
    detach() {
      observer.disconnect();
      if (resizeTimer !== null) clearTimeout(resizeTimer);
      canvas.removeEventListener("pointerdown", onPointerDown);
      canvas.removeEventListener("pointerup", onPointerUp);
      canvas.removeEventListener("pointercancel", onPointerUp);
      canvas.removeEventListener("pointermove", onPointerMove);
      canvas.removeEventListener("wheel", onWheel);
      canvas.removeEventListener("keydown", onKey);
      canvas.removeEventListener("keyup", onKey);
      canvas.removeEventListener("contextmenu", onContextMenu);
    },
  };
}
