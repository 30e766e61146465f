// The control strip and the viewer's own keys: fit, fill, 1:1, zoom out and in,
// fullscreen and a screenshot. The strip is small and fades out while the pointer is
// still; it comes back when the pointer moves over the viewer or a button has focus,
// and every button is in the tab order with an aria-label.
//
// The viewer's keys are few and all carry Ctrl/⌘ (the modifier of its pointer
// gestures too), so the application keeps every plain key: Ctrl/⌘+0 fit,
// Ctrl/⌘+Shift+0 fill, Ctrl/⌘+1 1:1, Ctrl/⌘+= or + zoom in, Ctrl/⌘+- zoom out,
// the browser's own page-zoom keys. F6 (the usual "next region" key) moves focus from
// the canvas to the strip, where Escape returns it to the canvas.

const ZOOM_STEP = 2; // a button press or key zooms by this factor about the area's centre
const AWAKE_MS = 2000; // the strip stays this long after the pointer last moved

/** The viewer's action for a keydown on the canvas, or null when the key is the application's. */
export function shortcutAction(e) {
  if (e.key === "F6" && !(e.ctrlKey || e.metaKey || e.altKey || e.shiftKey)) return "strip";
  if (!(e.ctrlKey || e.metaKey) || e.altKey) return null;
  switch (e.code) {
    case "Digit0":
    case "Numpad0":
      return e.shiftKey ? "fill" : "fit";
    case "Digit1":
    case "Numpad1":
      return e.shiftKey ? null : "1:1";
    case "Equal":
    case "NumpadAdd":
      return "zoom-in";
    case "Minus":
    case "NumpadSubtract":
      return "zoom-out";
    default:
      // layouts with + and - elsewhere than the US Equal and Minus keys
      return e.key === "+" ? "zoom-in" : e.key === "-" ? "zoom-out" : null;
  }
}

/** `rfb-<UTC time>.png`, sortable and valid on every file system (no colons). */
export function screenshotName(date) {
  return `rfb-${date.toISOString().replace(/[-:]/g, "")}.png`;
}

export class Controls {
  /**
   * `strip`: the element holding buttons with `data-action`; `area`: the viewer area
   * (what goes fullscreen); `view`: the View; `screenshot()`: a Promise of
   * {blob, width, height, lastSeq} of the frame on the canvas.
   */
  constructor({ strip, area, canvas, view, screenshot }) {
    this.strip = strip;
    this.area = area;
    this.canvas = canvas;
    this.view = view;
    this.screenshot = screenshot;
    this.buttons = new Map([...strip.querySelectorAll("button[data-action]")].map((b) => [b.dataset.action, b]));
    this.awakeTimer = null;

    for (const [action, button] of this.buttons) button.addEventListener("click", () => this.run(action));
    // Escape hands focus back on its keyup, so that keyup does not land on the canvas.
    strip.addEventListener("keydown", (e) => {
      if (e.key === "Escape") e.preventDefault();
    });
    strip.addEventListener("keyup", (e) => {
      if (e.key === "Escape") canvas.focus({ preventScroll: true });
    });
    area.addEventListener("pointermove", () => this.wake());
    document.addEventListener("fullscreenchange", () => this.showFullscreen());
    if (!document.fullscreenEnabled) this.buttons.get("fullscreen").hidden = true;
    this.setFrameAvailable(false);
  }

  /** Handle a keydown on the canvas if it is one of the viewer's; says whether it was. */
  shortcut(e) {
    const action = shortcutAction(e);
    if (action === null) return false;
    this.run(action);
    return true;
  }

  run(action) {
    switch (action) {
      case "fit":
      case "fill":
      case "1:1":
        this.view.set(action);
        break;
      case "zoom-in":
        this.view.zoomBy(ZOOM_STEP);
        break;
      case "zoom-out":
        this.view.zoomBy(1 / ZOOM_STEP);
        break;
      case "fullscreen":
        this.toggleFullscreen();
        break;
      case "screenshot":
        this.saveScreenshot().catch((err) => console.warn(`rfb viewer: screenshot failed: ${err.message}`));
        break;
      case "strip":
        this.wake();
        this.strip.querySelector("button:not([disabled]):not([hidden])")?.focus();
        break;
      default:
        console.warn(`rfb viewer: unknown control action ${JSON.stringify(action)}`);
    }
  }

  /** Buttons that need a frame are disabled until one is shown. */
  setFrameAvailable(available) {
    for (const [action, button] of this.buttons) {
      if (action !== "fullscreen") button.disabled = !available;
    }
  }

  /** The view changed: the mode buttons say which mode is on. */
  viewChanged(state) {
    for (const mode of ["fit", "fill", "1:1"]) {
      this.buttons.get(mode).setAttribute("aria-pressed", String(state.mode === mode));
    }
  }

  wake() {
    this.strip.classList.add("awake");
    clearTimeout(this.awakeTimer);
    this.awakeTimer = setTimeout(() => this.strip.classList.remove("awake"), AWAKE_MS);
  }

  toggleFullscreen() {
    const request = document.fullscreenElement ? document.exitFullscreen() : this.area.requestFullscreen();
    request.catch((err) => console.warn(`rfb viewer: fullscreen request refused: ${err.message}`));
  }

  showFullscreen() {
    // The area's own root: inside a shadow root (the notebook widget) the document
    // reports the shadow host, the shadow root the area itself.
    const on = this.area.getRootNode().fullscreenElement === this.area;
    this.buttons.get("fullscreen").setAttribute("aria-pressed", String(on));
  }

  /** Download the frame on the canvas, at frame resolution, as rfb-<time>.png. */
  async saveScreenshot() {
    const shot = await this.screenshot();
    const url = URL.createObjectURL(shot.blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = screenshotName(new Date());
    link.hidden = true;
    document.body.append(link);
    try {
      link.click();
    } finally {
      link.remove();
      // The download reads the URL after click() returns: free it once it has started.
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    }
    return shot;
  }
}
