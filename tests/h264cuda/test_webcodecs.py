"""A golden-model stream decoded by WebCodecs in a real Chromium: the pictures are the reconstruction.

The page is served by Playwright's request routing at http://localhost/ (a secure
context, which WebCodecs requires) and decodes the access units with a
``VideoDecoder`` configured from the codec string of the stream's SPS, as rfb's
viewer does. Each decoded frame is copied out as I420 planes and compared, exactly,
with the model's reconstruction.

Chromium is the Debian package (/usr/bin/chromium), launched by tests/support/chromium.py
as the other browser tests launch it; where it or Playwright is missing this skips,
except under CI=true.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from rfb.encoders import h264
from tests.support.chromium import chromium_context

from .streams import encode, nv12_pictures

pytestmark = pytest.mark.browser

W, H = 320, 240
PAGE_URL = "http://localhost/h264cuda-decode"

DECODE_JS = """
async ([codec, width, height, units]) => {
  const frames = [];
  const errors = [];
  const decoder = new VideoDecoder({
    output: async (frame) => { frames.push(frame); },
    error: (e) => errors.push(String(e)),
  });
  const support = await VideoDecoder.isConfigSupported({codec, codedWidth: width, codedHeight: height});
  if (!support.supported) return {error: `not supported: ${codec}`};
  decoder.configure({codec, codedWidth: width, codedHeight: height, optimizeForLatency: true});
  units.forEach(([key, b64], i) => {
    const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    decoder.decode(new EncodedVideoChunk({type: key ? "key" : "delta", timestamp: i * 33333, data}));
  });
  await decoder.flush();
  const out = [];
  for (const frame of frames) {
    const buffer = new Uint8Array(frame.allocationSize());
    const layout = await frame.copyTo(buffer);
    let s = "";
    for (let i = 0; i < buffer.length; i += 8192) s += String.fromCharCode(...buffer.subarray(i, i + 8192));
    out.push({format: frame.format, width: frame.visibleRect.width, height: frame.visibleRect.height,
              layout, data: btoa(s)});
    frame.close();
  }
  decoder.close();
  return {frames: out, errors};
}
"""


@pytest.fixture(scope="module")
def chromium_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as context:
        page = context.new_page()
        page.route(
            PAGE_URL,
            lambda route: route.fulfill(body="<!doctype html><title>decode</title>", content_type="text/html"),
        )
        page.goto(PAGE_URL)
        yield page


def _planes(frame: dict[str, Any]) -> list[np.ndarray]:
    data = np.frombuffer(base64.b64decode(frame["data"]), np.uint8)
    sizes = [(H, W), (H // 2, W // 2), (H // 2, W // 2)]
    planes = []
    for (rows, cols), plane in zip(sizes, frame["layout"], strict=True):
        offset, stride = plane["offset"], plane["stride"]
        planes.append(data[offset : offset + rows * stride].reshape(rows, stride)[:, :cols])
    return planes


def test_webcodecs_decodes_the_model_stream_to_its_reconstruction(chromium_page: Any) -> None:
    stream = encode(nv12_pictures("scene", W, H, 6), W, H, idr_at=(3,))
    codec = h264.codec_string(stream.units[0])
    units = [[h264.is_idr(u), base64.b64encode(u).decode()] for u in stream.units]
    result = chromium_page.evaluate(DECODE_JS, [codec, W, H, units])
    assert "error" not in result, result.get("error")
    assert result["errors"] == []
    frames = result["frames"]
    assert len(frames) == len(stream.units)
    for i, (frame, (ry, ruv)) in enumerate(zip(frames, stream.recons, strict=True)):
        assert (frame["width"], frame["height"]) == (W, H)
        assert frame["format"] == "I420", f"picture {i}: expected I420 from the software decoder, got {frame['format']}"
        y, u, v = _planes(frame)
        assert np.array_equal(y, ry), f"picture {i}: luma differs"
        assert np.array_equal(u, ruv[:, 0::2]) and np.array_equal(v, ruv[:, 1::2]), f"picture {i}: chroma differs"
