// The client side of the wire protocol (docs/protocol.md): framing and message builders.
//
// Kept apart from the worker so the byte layout lives in one place and reads like
// the document: a binary message is a uint32 LE header length, a UTF-8 JSON header,
// then the payload.

const utf8 = new TextDecoder("utf-8");

/** Media types this viewer can consume, in the names `hello.supported` uses. */
export const WEBCODECS_H264 = "webcodecs/h264-annexb";
export const IMAGE_PNG = "image/png";
export const IMAGE_MIMES = ["image/jpeg", IMAGE_PNG];

/** Close codes after which reconnecting cannot help (the same request would be refused). */
export const FATAL_CLOSE_CODES = new Map([
  [4001, "unauthorized: the token in the page URL is missing or wrong"],
  [4003, "origin not allowed"],
  [4400, "the server rejected the hello"],
  [4406, "the server can send nothing this browser can show"],
]);

/**
 * Split one binary message into its JSON header and payload bytes.
 * Throws an Error naming what was expected and what arrived on malformed input.
 */
export function parseBinary(buffer) {
  if (buffer.byteLength < 4) {
    throw new Error(`expected a binary message of at least 4 bytes, got ${buffer.byteLength}`);
  }
  const headerLength = new DataView(buffer).getUint32(0, true);
  if (4 + headerLength > buffer.byteLength) {
    throw new Error(`header length ${headerLength} runs past the message end (${buffer.byteLength} bytes)`);
  }
  const header = JSON.parse(utf8.decode(new Uint8Array(buffer, 4, headerLength)));
  if (header === null || typeof header !== "object" || typeof header.type !== "string") {
    throw new Error(`expected a JSON header object with a "type", got ${JSON.stringify(header)}`);
  }
  return { header, payload: new Uint8Array(buffer, 4 + headerLength) };
}

/**
 * A payload header's `pixel_ratio` (frame pixels per CSS pixel, from publish()), or
 * null when the application gave none or sent something that is not a sane ratio.
 */
export function pixelRatioOf(header) {
  const r = header.pixel_ratio;
  return typeof r === "number" && Number.isFinite(r) && r > 0 ? r : null;
}

/**
 * A lossless still of the frame on screen (`image_frame` with `"still": true`): drawn
 * over the picture, dropped when the next frame is drawn (docs/protocol.md).
 */
export function isStill(header) {
  return header.type === "image_frame" && header.still === true;
}

export function hello(supported, token) {
  const msg = { type: "hello", supported, client: "rfb-viewer/1" };
  if (token) msg.token = token;
  return JSON.stringify(msg);
}

export function ack(seq, decodeMs) {
  const msg = { type: "ack", seq };
  if (Number.isFinite(decodeMs)) msg.decode_ms = Math.round(decodeMs * 100) / 100;
  return JSON.stringify(msg);
}

export function requestKeyframe(reason) {
  return JSON.stringify({ type: "request_keyframe", reason });
}

export function inputEvent(event) {
  return JSON.stringify({ type: "event", event });
}
