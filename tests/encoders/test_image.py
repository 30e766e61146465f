"""The image route: JPEG per frame (simplejpeg), PNG for lossless stills (Pillow)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from rfb.benchmark import patterns
from rfb.benchmark.metrics import decode_image, psnr
from rfb.colorspace import nv12_to_rgb, rgb_to_nv12
from rfb.encoders.base import EncoderBackend, EncoderConfig
from rfb.encoders.image import (
    ENTRIES,
    JPEG_MIME,
    NAME,
    PNG_MIME,
    ImageEncoder,
    create,
    join_jpeg_strips,
    probe,
    strip_rows,
)
from rfb.frames import FrameError, RawFrame, frame_from_array

W, H = 320, 240


def rgba_of(rgb: np.ndarray, alpha: int = 0) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), alpha, np.uint8)], axis=2))


def test_entry_and_probe() -> None:
    assert probe() is None
    (entry,) = ENTRIES
    assert entry.name == NAME == "image" and entry.transport == "image" and not entry.reads_cuda
    with entry.factory(EncoderConfig(W, H)) as backend:
        assert isinstance(backend, EncoderBackend)
        assert backend.transport == "image"


@pytest.mark.parametrize("pattern", ["gradient", "scene"])
def test_jpeg_round_trip(pattern: str) -> None:
    src = patterns.make(pattern, W, H, 2)
    with create(EncoderConfig(W, H, quality=85)) as enc:
        (payload,) = enc.encode(frame_from_array(src))
    assert payload.mime == JPEG_MIME and payload.data[:2] == b"\xff\xd8"
    assert payload.keyframe and payload.transport == "image" and payload.codec is None
    assert (payload.width, payload.height) == (W, H)
    with Image.open(io.BytesIO(payload.data)) as img:
        assert img.format == "JPEG" and img.size == (W, H) and img.mode == "RGB"
    assert psnr(src, decode_image(payload.data)) > 28.0


def test_quality_changes_size_and_fidelity() -> None:
    src = patterns.scene(W, H)
    sizes, scores = [], []
    for q in (30, 95):
        with create(EncoderConfig(W, H, quality=q)) as enc:
            (p,) = enc.encode(frame_from_array(src))
        sizes.append(len(p.data))
        scores.append(psnr(src, decode_image(p.data)))
    assert sizes[0] < sizes[1] and scores[0] < scores[1]


def test_rgba8_jpeg_ignores_alpha_and_equals_rgb24() -> None:
    src = patterns.scene(W, H)
    with create(EncoderConfig(W, H)) as enc:
        (a,) = enc.encode(frame_from_array(src))
        (b,) = enc.encode(frame_from_array(rgba_of(src, alpha=0)))
        (c,) = enc.encode(frame_from_array(rgba_of(src, alpha=255)))
    assert a.data == b.data == c.data


def test_png_is_lossless_for_rgb24_and_rgba8() -> None:
    src = patterns.noise(W, H, 1)  # the hardest content: every bit must survive
    with create(EncoderConfig(W, H)) as enc:
        (p,) = enc.encode(frame_from_array(src), lossless=True)
        (q,) = enc.encode(frame_from_array(rgba_of(src, alpha=10)), lossless=True, force_keyframe=True)
    for payload in (p, q):
        assert payload.mime == PNG_MIME and payload.data[:8] == b"\x89PNG\r\n\x1a\n" and payload.keyframe
        assert np.array_equal(decode_image(payload.data), src)


def test_nv12_frames_give_the_colours_of_the_bt709_conversion() -> None:
    src = patterns.gradient(W, H, 4)
    nv12 = rgb_to_nv12(src)
    expected = nv12_to_rgb(nv12, W, H)  # what the nv12 frame means
    with create(EncoderConfig(W, H, quality=95)) as enc:
        (jpeg,) = enc.encode(frame_from_array(nv12, "nv12"))
        (png,) = enc.encode(frame_from_array(nv12, "nv12"), lossless=True)
    assert psnr(expected, decode_image(png.data)) > 38.0
    assert psnr(expected, decode_image(jpeg.data)) > 32.0
    red = np.empty((16, 16, 3), np.uint8)
    red[:] = (255, 0, 0)
    with create(EncoderConfig(16, 16)) as enc:
        (png,) = enc.encode(frame_from_array(rgb_to_nv12(red), "nv12"), lossless=True)
    assert np.all(np.abs(decode_image(png.data).astype(int) - (255, 0, 0)) <= 3)


def test_flush_is_empty_and_close_is_idempotent() -> None:
    enc = create(EncoderConfig(W, H))
    enc.encode(frame_from_array(rgb_to_nv12(patterns.gradient(W, H)), "nv12"))
    assert enc.flush() == []
    enc.close()
    enc.close()
    with pytest.raises(RuntimeError, match="image encoder is closed"):
        enc.encode(frame_from_array(patterns.gradient(W, H)))
    with pytest.raises(RuntimeError, match="closed"):
        enc.flush()


def test_bad_frames_and_settings_are_rejected() -> None:
    with create(EncoderConfig(W, H)) as enc:
        with pytest.raises(FrameError, match=r"opened for 320x240 frames, got 64x64"):
            enc.encode(frame_from_array(patterns.gradient(64, 64)))
        with pytest.raises(FrameError, match=r"host frames; got memory='cuda'"):
            enc.encode(RawFrame(np.zeros((H, W, 3), np.uint8), W, H, "rgb24", "cuda"))
        with pytest.raises(FrameError, match=r"expected a RawFrame, got ndarray"):
            enc.encode(patterns.gradient(W, H))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"quality must be 1..100, got 0"):
        create(EncoderConfig(W, H, quality=0))


def test_odd_sizes_are_fine_for_images() -> None:
    src = patterns.scene(33, 17)
    with create(EncoderConfig(33, 17)) as enc:
        (jpeg,) = enc.encode(frame_from_array(src))
        (png,) = enc.encode(frame_from_array(src), lossless=True)
    assert decode_image(jpeg.data).shape == (17, 33, 3)
    assert np.array_equal(decode_image(png.data), src)


# -- strip-parallel JPEG ---------------------------------------------------------


@pytest.mark.parametrize(("width", "height", "strips"), [(640, 480, 2), (641, 483, 3), (1280, 720, 4), (400, 300, 2)])
def test_strip_jpeg_decodes_exactly_like_one_piece(width: int, height: int, strips: int) -> None:
    import av

    src = patterns.scene(width, height, 1)
    with create(EncoderConfig(width, height)) as one_piece_enc:
        one_piece_enc.strips = 1
        (whole,) = one_piece_enc.encode(frame_from_array(src))
    with ImageEncoder(EncoderConfig(width, height), strips=strips) as enc:
        (joined,) = enc.encode(frame_from_array(src))
    rows = strip_rows(width, height, strips)
    assert rows is not None and rows % 16 == 0
    assert b"\xff\xdd" in joined.data and b"\xff\xdd" not in whole.data  # DRI: restart markers in use
    assert joined.data.count(b"\xff\xd0") >= 1
    # three independent decoders agree, pixel for pixel, with the one-piece JPEG
    reference = simplejpeg.decode_jpeg(whole.data, colorspace="RGB")
    assert np.array_equal(simplejpeg.decode_jpeg(joined.data, colorspace="RGB"), reference)
    with Image.open(io.BytesIO(joined.data)) as img:
        assert img.size == (width, height)
        with Image.open(io.BytesIO(whole.data)) as ref_img:
            assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(ref_img.convert("RGB")))
    ffmpeg = av.CodecContext.create("mjpeg", "r")
    (a,) = ffmpeg.decode(av.Packet(joined.data))
    (b,) = av.CodecContext.create("mjpeg", "r").decode(av.Packet(whole.data))
    assert np.array_equal(a.to_ndarray(format="rgb24"), b.to_ndarray(format="rgb24"))
    assert abs(len(joined.data) - len(whole.data)) < 0.01 * len(whole.data) + 64


def test_strip_rows_rules() -> None:
    assert strip_rows(1920, 1080, 2) == 544
    assert strip_rows(1920, 1080, 1) is None  # one strip: one piece
    assert strip_rows(160, 120, 2) is None  # small frames: threads are not worth it
    assert strip_rows(6000, 16, 8) is None  # one MCU row cannot be split
    assert strip_rows(6000, 20, 8) == 16  # two MCU rows: two strips, the last one short
    assert strip_rows(600_000, 64, 2) is None  # restart interval would not fit 16 bits


def test_join_refuses_strips_with_different_tables() -> None:
    top = simplejpeg.encode_jpeg(patterns.gradient(64, 32), quality=80, colorsubsampling="420")
    bottom = simplejpeg.encode_jpeg(patterns.gradient(64, 32), quality=50, colorsubsampling="420")
    assert join_jpeg_strips([top, bottom], 64, 64, 32) is None
    same = join_jpeg_strips([top, top], 64, 64, 32)
    assert same is not None and simplejpeg.decode_jpeg(same).shape == (64, 64, 3)
    with pytest.raises(ValueError, match="expected a JPEG starting with SOI"):
        join_jpeg_strips([b"not a jpeg"], 64, 32, 32)


def test_close_joins_the_strip_threads() -> None:
    import threading

    before = threading.active_count()
    enc = ImageEncoder(EncoderConfig(640, 480), strips=2)
    enc.encode(frame_from_array(patterns.scene(640, 480)))
    assert threading.active_count() > before
    enc.close()
    assert threading.active_count() == before
