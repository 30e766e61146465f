// The view: where the frame sits in the viewer area. Fit (the whole frame, letterboxed),
// fill (cover the area, cropping), 1:1 (one frame pixel per device pixel), or any zoom
// and pan in between.
//
// A frame published with a pixel ratio (frame pixels per CSS pixel) has a logical size:
// fit shows it at most at that size, so a frame rendered for a 2x screen's area fills
// that area with one frame pixel per device pixel, and a larger window shows it at its
// size instead of blowing it up. Without a ratio, fit fills the area as it always did.
//
// The view is a CSS transform on the canvas element, not a transform drawn by the
// worker: the worker keeps drawing every frame at frame resolution, zoom and pan are
// composited without touching it (no redraw, no message per pointer move, no copy of
// the last frame kept for redraws), and the canvas keeps holding exactly the frame,
// so snapshots and screenshots stay frame pixels. Input maps through the same numbers
// (toFrame), so a pointer reports the frame pixel under it at any zoom.

/** Device pixels per frame pixel, at most: enough to read single pixels of a 4K frame. */
export const MAX_ZOOM = 64;
/** How far below the smaller of fit and 1:1 one may zoom out. */
export const MIN_ZOOM_OF_FIT = 0.5;

/** Round a CSS length to the device pixel grid, so 1:1 pixels land on device pixels. */
export function snap(value, dpr) {
  return Math.round(value * dpr) / dpr;
}

/**
 * Fit's scale in CSS pixels per frame pixel. A frame with a `pixelRatio` is shown at
 * most at its logical size; one that overflows the area there by a device pixel or less
 * (its size was rounded, to even sides for H.264) is shown at exactly that size, since
 * a hair smaller would resample every pixel and blur it.
 */
export function fitScale(area, frame, dpr) {
  const fit = Math.min(area.width / frame.width, area.height / frame.height);
  if (!frame.pixelRatio) return fit;
  const logical = 1 / frame.pixelRatio;
  const slack = 1 / dpr + 1e-9;
  const fits = frame.width * logical - area.width <= slack && frame.height * logical - area.height <= slack;
  return fits ? logical : fit;
}

/**
 * The placement {scale, x, y} of a `mode` ("fit", "fill" or "1:1") in an area of
 * `area` {width, height} CSS pixels: `scale` is CSS pixels per frame pixel, (x, y)
 * the frame's top-left corner relative to the area's, centred.
 */
export function placement(mode, area, frame, dpr) {
  const fit = fitScale(area, frame, dpr);
  const fill = Math.max(area.width / frame.width, area.height / frame.height);
  const scale = mode === "fill" ? fill : mode === "1:1" ? 1 / dpr : fit;
  return {
    scale,
    x: snap((area.width - frame.width * scale) / 2, dpr),
    y: snap((area.height - frame.height * scale) / 2, dpr),
  };
}

/** The scale limits in CSS pixels per frame pixel. */
export function scaleLimits(area, frame, dpr) {
  const fit = fitScale(area, frame, dpr);
  return { min: Math.min(fit, 1 / dpr) * MIN_ZOOM_OF_FIT, max: MAX_ZOOM / dpr };
}

/**
 * Keep the area's centre on the picture: a pan or zoom never loses the frame entirely,
 * yet any of its pixels can be brought to the middle of the area.
 */
export function clampPan(p, area, frame) {
  const cx = area.width / 2;
  const cy = area.height / 2;
  return {
    scale: p.scale,
    x: Math.min(Math.max(p.x, cx - frame.width * p.scale), cx),
    y: Math.min(Math.max(p.y, cy - frame.height * p.scale), cy),
  };
}

/**
 * Zoom by `factor` about the area point (px, py): the frame pixel under that point
 * stays under it (unless the scale limits or clampPan intervene).
 */
export function zoomAbout(p, factor, px, py, area, frame, dpr) {
  const { min, max } = scaleLimits(area, frame, dpr);
  const scale = Math.min(Math.max(p.scale * factor, min), max);
  const fx = (px - p.x) / p.scale;
  const fy = (py - p.y) / p.scale;
  return clampPan({ scale, x: px - fx * scale, y: py - fy * scale }, area, frame);
}

/**
 * Client (CSS) coordinates to frame pixels, through a placement `box` {left, top, scale}
 * in client coordinates. `inside` says whether the point is on the picture (not on a
 * letterbox bar or beyond a cropped edge); x and y are clamped to [0, size].
 */
export function toFrame(clientX, clientY, box, frameWidth, frameHeight) {
  const x = (clientX - box.left) / box.scale;
  const y = (clientY - box.top) / box.scale;
  const inside = x >= 0 && y >= 0 && x <= frameWidth && y <= frameHeight;
  return {
    x: Math.min(Math.max(x, 0), frameWidth),
    y: Math.min(Math.max(y, 0), frameHeight),
    inside,
  };
}

/**
 * The view of one canvas inside its area element. `mode` is "fit", "fill", "1:1" or
 * "free" (after a zoom or pan). Fit, fill and 1:1 follow the area's size and the frame
 * size; a free view keeps its zoom and the frame pixel at the area's centre when the
 * area is resized, and returns to fit when the frame size changes (a new picture).
 */
export class View {
  constructor(area, canvas, onChange = () => {}) {
    this.area = area;
    this.canvas = canvas;
    this.onChange = onChange;
    this.mode = "fit";
    this.frame = null;
    this.size = { width: area.clientWidth, height: area.clientHeight };
    this.p = { scale: 1, x: 0, y: 0 };
    this.canvas.classList.add("empty"); // nothing to place before the first frame size
  }

  dpr() {
    return window.devicePixelRatio || 1;
  }

  /** The frame size or pixel ratio (null: none given) changed, or a frame arrived: re-place it. */
  setFrame(width, height, pixelRatio = null) {
    const old = this.frame;
    if (old && old.width === width && old.height === height && old.pixelRatio === pixelRatio) return;
    this.frame = { width, height, pixelRatio };
    if (old && old.width === width && old.height === height) {
      if (this.mode !== "free") this.place(); // a free view stays where the user put it
      return;
    }
    if (this.mode === "free") this.mode = "fit";
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    this.canvas.classList.remove("empty");
    this.place();
  }

  /** The area's size (or the device pixel ratio) changed. */
  resize() {
    const size = { width: this.area.clientWidth, height: this.area.clientHeight };
    if (!(size.width > 0 && size.height > 0)) return; // not laid out (a hidden frame): keep the view
    if (this.frame && this.mode === "free") {
      // keep the zoom and the frame pixel at the centre
      const fx = (this.size.width / 2 - this.p.x) / this.p.scale;
      const fy = (this.size.height / 2 - this.p.y) / this.p.scale;
      const { min, max } = scaleLimits(size, this.frame, this.dpr());
      const scale = Math.min(Math.max(this.p.scale, min), max);
      this.size = size;
      this.commit({ scale, x: size.width / 2 - fx * scale, y: size.height / 2 - fy * scale });
    } else {
      this.size = size;
      this.place();
    }
  }

  /** "fit", "fill" or "1:1". */
  set(mode) {
    this.mode = mode;
    this.place();
  }

  /** Zoom by `factor` about a client point (the area's centre by default). */
  zoomBy(factor, clientX, clientY) {
    if (!this.frame) return;
    const rect = this.area.getBoundingClientRect();
    const px = clientX === undefined ? rect.width / 2 : clientX - rect.left;
    const py = clientY === undefined ? rect.height / 2 : clientY - rect.top;
    this.mode = "free";
    this.commit(zoomAbout(this.p, factor, px, py, this.size, this.frame, this.dpr()));
  }

  /** Move the picture by (dx, dy) CSS pixels. */
  panBy(dx, dy) {
    if (!this.frame) return;
    this.mode = "free";
    this.commit({ scale: this.p.scale, x: this.p.x + dx, y: this.p.y + dy });
  }

  /** The picture's placement in client coordinates, for toFrame. */
  box() {
    const rect = this.area.getBoundingClientRect();
    return { left: rect.left + this.p.x, top: rect.top + this.p.y, scale: this.p.scale };
  }

  /** What the view is now: mode, zoom (device pixels per frame pixel), placement. */
  state() {
    return {
      mode: this.mode,
      zoom: this.p.scale * this.dpr(),
      scale: this.p.scale,
      x: this.p.x,
      y: this.p.y,
      frame: this.frame ? { ...this.frame } : null,
      area: { ...this.size },
    };
  }

  place() {
    if (!this.frame) return;
    this.commit(placement(this.mode, this.size, this.frame, this.dpr()));
  }

  commit(p) {
    const dpr = this.dpr();
    const clamped = this.mode === "free" ? clampPan(p, this.size, this.frame) : p;
    this.p = { scale: clamped.scale, x: snap(clamped.x, dpr), y: snap(clamped.y, dpr) };
    const { scale, x, y } = this.p;
    this.canvas.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
    // Magnified: show frame pixels as crisp squares (scientists zoom to read pixels).
    this.canvas.classList.toggle("magnified", scale * dpr > 1 + 1e-9);
    this.onChange(this.state());
  }
}
