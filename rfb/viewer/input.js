// Input capture: DOM pointer, wheel, key and resize events become protocol events
// (docs/protocol.md, "Input events") with coordinates in FRAME pixels.
//
// The picture sits in the viewer area through the view (view.js: fit, fill, 1:1, zoom
// and pan), so mapping goes through the view's placement, or a click lands beside
// what the user pointed at. Gestures with Ctrl/⌘ held (wheel: zoom about the pointer,
// drag: pan) and the viewer's own keys (controls.js) belong to the viewer and are not
// sent; everything else goes to the application.

import { toFrame } from "./view.js";

const LINE_PX = 16; // protocol: wheel deltas are pixels, lines x 16
// Ctrl/⌘+wheel: this many pixels of wheel zoom by 2x (one notch: 100 to 120 px). A
// Chromium pinch sends -100 ln(scale), so it zooms by scale^0.58 (1.5x for 2x).
const ZOOM_WHEEL_PX = 120;

// Keys the browser itself needs (reload, dev tools, tab and window management):
// they are still sent, but their default action is kept.
const BROWSER_KEYS = new Set(["F5", "F11", "F12"]);
const BROWSER_CTRL_KEYS = new Set(["r", "R", "l", "L", "t", "T", "w", "W", "n", "N", "Tab"]);

/** Ctrl, or ⌘ on macOS: the modifier that gives a pointer gesture to the viewer. */
export function viewerModifier(e) {
  return e.ctrlKey || e.metaKey;
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
 * Listen on the viewer `area` and its `canvas`, call `send(event)` with protocol events.
 * `frameSize()` returns the current {width, height} of the frame, or null before the
 * first config; `view` is the View (view.js); `shortcut(e)` handles a keydown that is
 * the viewer's own and says whether it was. Returns {resendSize(), detach()}.
 */
export function attachInput({ area, canvas, view, frameSize, send, shortcut }) {
  let pendingMove = null;
  let moveScheduled = false;
  let resizeTimer = null;
  let lastSize = "";
  let pan = null; // {pointerId, x, y} while a Ctrl/⌘ drag moves the picture
  const claimedKeys = new Set(); // codes whose keydown was the viewer's: their keyup is too
  const sentKeys = new Set(); // codes whose keydown was sent: only their keyup is sent

  const mapped = (e) => {
    const size = frameSize();
    if (!size) return null;
    return toFrame(e.clientX, e.clientY, view.box(), size.width, size.height);
  };

  // The strip's buttons sit in the area too: their events are theirs, not the app's.
  const onPicture = (e) => e.target === canvas || e.target === area;

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
    if (!onPicture(e)) return;
    if (viewerModifier(e) && e.button === 0 && frameSize()) {
      pan = { pointerId: e.pointerId, x: e.clientX, y: e.clientY };
      canvas.focus({ preventScroll: true });
      area.setPointerCapture(e.pointerId);
      area.classList.add("panning");
      e.preventDefault();
      return;
    }
    const p = mapped(e);
    if (!p || !p.inside) return;
    canvas.focus({ preventScroll: true });
    area.setPointerCapture(e.pointerId);
    flushMove(); // order: a move that happened before the press goes first
    send(pointerEvent("pointerdown", e, p));
    e.preventDefault();
  };

  const onPointerUp = (e) => {
    const captured = area.hasPointerCapture(e.pointerId);
    if (pan && pan.pointerId === e.pointerId) {
      pan = null;
      if (captured) area.releasePointerCapture(e.pointerId);
      area.classList.remove("panning");
      return;
    }
    const p = mapped(e);
    if (!p || (!captured && !(p.inside && onPicture(e)))) return;
    if (captured) area.releasePointerCapture(e.pointerId);
    flushMove();
    send(pointerEvent("pointerup", e, p));
  };

  const onPointerMove = (e) => {
    if (pan && pan.pointerId === e.pointerId) {
      view.panBy(e.clientX - pan.x, e.clientY - pan.y);
      pan.x = e.clientX;
      pan.y = e.clientY;
      return;
    }
    const p = mapped(e);
    // Outside the picture a move only matters while dragging (then it is clamped).
    if (!p || (e.buttons === 0 && !(p.inside && onPicture(e)))) return;
    pendingMove = pointerEvent("pointermove", e, p);
    if (!moveScheduled) {
      moveScheduled = true;
      requestAnimationFrame(flushMove);
    }
  };

  const onWheel = (e) => {
    if (!onPicture(e)) return;
    const size = frameSize();
    if (viewerModifier(e)) {
      // The browser's page zoom (and a touchpad pinch, which Chromium sends as
      // Ctrl+wheel) becomes the viewer's zoom about the pointer.
      e.preventDefault();
      if (size) view.zoomBy(2 ** (-wheelPixels(e, size.height).dy / ZOOM_WHEEL_PX), e.clientX, e.clientY);
      return;
    }
    const p = mapped(e);
    if (!p || !p.inside) return;
    e.preventDefault();
    const { dx, dy } = wheelPixels(e, size.height);
    send({ type: "wheel", x: p.x, y: p.y, dx, dy, modifiers: modifiers(e) });
  };

  const onKey = (e) => {
    if (e.type === "keydown" && shortcut(e)) {
      claimedKeys.add(e.code);
      e.preventDefault();
      return;
    }
    if (e.type === "keyup" && claimedKeys.delete(e.code)) {
      e.preventDefault();
      return;
    }
    if (!frameSize()) return;
    // A keyup whose keydown went elsewhere (focus arrived with the key held, say by Tab
    // from the strip) would be a release the application never saw pressed.
    if (e.type === "keydown") sentKeys.add(e.code);
    else if (!sentKeys.delete(e.code)) return;
    send({ type: e.type, key: e.key, code: e.code, repeat: e.repeat, modifiers: modifiers(e) });
    if (!browserKeepsDefault(e)) e.preventDefault();
  };

  const sendResize = (force) => {
    resizeTimer = null;
    const dpr = window.devicePixelRatio || 1;
    const width = Math.round(area.clientWidth * dpr);
    const height = Math.round(area.clientHeight * dpr);
    const key = `${width}x${height}@${dpr}`;
    if (!width || !height || (!force && key === lastSize)) return;
    lastSize = key;
    send({ type: "resize", width, height, pixel_ratio: dpr });
  };
  const scheduleResize = () => {
    if (resizeTimer === null) resizeTimer = setTimeout(() => sendResize(false), 100);
  };
  const observer = new ResizeObserver(scheduleResize);
  observer.observe(area);

  const onContextMenu = (e) => {
    if (onPicture(e)) e.preventDefault(); // the right button belongs to the app
  };

  const listeners = [
    [area, "pointerdown", onPointerDown],
    [area, "pointerup", onPointerUp],
    [area, "pointercancel", onPointerUp],
    [area, "pointermove", onPointerMove],
    [area, "wheel", onWheel, { passive: false }],
    [area, "contextmenu", onContextMenu],
    [canvas, "keydown", onKey],
    [canvas, "keyup", onKey],
  ];
  for (const [target, type, fn, options] of listeners) target.addEventListener(type, fn, options);

  return {
    /** Send the current area size again (after a (re)connect the server knows nothing). */
    resendSize: () => sendResize(true),
    /** The device pixel ratio changed: the size in device pixels did too. */
    sizeChanged: scheduleResize,
    detach() {
      observer.disconnect();
      if (resizeTimer !== null) clearTimeout(resizeTimer);
      for (const [target, type, fn] of listeners) target.removeEventListener(type, fn);
    },
  };
}
