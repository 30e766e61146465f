"""rfb.colorspace's matrices and NumPy RGB <-> NV12 (the reference of the GPU kernel):
against the standards' own formulas, round trips, layouts and errors. Runs everywhere
(no GPU)."""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest

from rfb.colorspace import color_matrix, nv12_planes, nv12_to_rgb_host, rgb_to_nv12_host
from rfb.frames import FrameError

CASES = list(itertools.product(("bt601", "bt709"), (False, True)))

# The standards' equations written out with their published constants (ITU-R BT.601 /
# BT.709): E'Y = Kr R + Kg G + Kb B, E'Pb = (B - E'Y) / 1.772 (resp. 1.8556),
# E'Pr = (R - E'Y) / 1.402 (resp. 1.5748), quantised as 16 + 219 Y, 128 + 224 C
# (limited) or 255 Y, 128 + 255 C (full).
STANDARD = {
    "bt601": ((0.299, 0.587, 0.114), 1.772, 1.402),
    "bt709": ((0.2126, 0.7152, 0.0722), 1.8556, 1.5748),
}


def standard_nv12(rgb: np.ndarray, matrix: str, full_range: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float Y (H, W), U and V (H/2, W/2) straight from the standard's equations."""
    (kr, kg, kb), pb_div, pr_div = STANDARD[matrix]
    c = rgb[..., :3].astype(np.float64) / 255.0
    y = kr * c[..., 0] + kg * c[..., 1] + kb * c[..., 2]
    pb = (c[..., 2] - y) / pb_div
    pr = (c[..., 0] - y) / pr_div
    h, w = y.shape
    pb = pb.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    pr = pr.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    if full_range:
        return 255 * y, 128 + 255 * pb, 128 + 255 * pr
    return 16 + 219 * y, 128 + 224 * pb, 128 + 224 * pr


def quantise(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x + 0.5), 0, 255).astype(int)


def test_images(height: int = 66, width: int = 98) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240601)
    yy, xx = np.mgrid[0:height, 0:width]
    gradient = np.stack(
        [xx * 255 // (width - 1), yy * 255 // (height - 1), (xx + yy) * 255 // (width + height - 2)], axis=-1
    ).astype(np.uint8)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    corners = np.array(list(itertools.product((0, 255), repeat=3)), dtype=np.uint8)  # black..white, primaries
    saturated = corners[rng.integers(0, len(corners), (height, width))]
    return {"gradient": gradient, "noise": noise, "saturated": saturated}


test_images.__test__ = False  # a helper, not a test


@pytest.mark.parametrize(("matrix", "full_range"), CASES)
@pytest.mark.parametrize("content", ["gradient", "noise", "saturated"])
def test_matches_the_standards_equations(matrix: str, full_range: bool, content: str) -> None:
    rgb = test_images()[content]
    nv12 = rgb_to_nv12_host(rgb, matrix=matrix, full_range=full_range)
    y, uv = nv12_planes(nv12)
    ey, eu, ev = standard_nv12(rgb, matrix, full_range)
    assert np.abs(y.astype(int) - quantise(ey)).max() <= 1
    assert np.abs(uv[..., 0].astype(int) - quantise(eu)).max() <= 1
    assert np.abs(uv[..., 1].astype(int) - quantise(ev)).max() <= 1
    # float32 vs float64 may differ at a rounding boundary, but not often.
    assert np.mean(y == quantise(ey)) > 0.99


@pytest.mark.parametrize(
    ("matrix", "full_range", "rgb", "yuv"),
    [
        ("bt601", False, (255, 255, 255), (235, 128, 128)),
        ("bt601", False, (0, 0, 0), (16, 128, 128)),
        ("bt601", False, (255, 0, 0), (81, 90, 240)),
        ("bt601", False, (0, 0, 255), (41, 240, 110)),
        ("bt709", False, (255, 0, 0), (63, 102, 240)),
        ("bt709", False, (0, 255, 0), (173, 42, 26)),
        ("bt709", True, (255, 255, 255), (255, 128, 128)),
        ("bt709", True, (0, 0, 0), (0, 128, 128)),
    ],
)
def test_textbook_colours(matrix: str, full_range: bool, rgb: tuple[int, int, int], yuv: tuple[int, int, int]) -> None:
    image = np.empty((2, 2, 3), dtype=np.uint8)
    image[...] = rgb
    nv12 = rgb_to_nv12_host(image, matrix=matrix, full_range=full_range)
    assert nv12.shape == (3, 2)
    assert (int(nv12[0, 0]), int(nv12[2, 0]), int(nv12[2, 1])) == yuv
    assert (nv12[:2] == yuv[0]).all()


@pytest.mark.parametrize(("matrix", "full_range"), CASES)
@pytest.mark.parametrize("content", ["gradient", "noise", "saturated"])
def test_round_trips(matrix: str, full_range: bool, content: str) -> None:
    # One colour per 2x2 block, so NV12 can hold the image: 4:2:0 of arbitrary
    # content would put colours out of gamut, which no inverse can round-trip.
    rgb = test_images(33, 49)[content].repeat(2, axis=0).repeat(2, axis=1)
    nv12 = rgb_to_nv12_host(rgb, matrix=matrix, full_range=full_range)
    back = nv12_to_rgb_host(nv12, matrix=matrix, full_range=full_range)
    assert back.shape == rgb.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - rgb).max() <= 2  # quantisation of Y, U, V
    again = rgb_to_nv12_host(back, matrix=matrix, full_range=full_range)
    assert np.abs(again.astype(int) - nv12).max() <= 1


def test_round_trip_of_gradient_stays_close_per_pixel() -> None:
    # Smooth content without block structure: the chroma of neighbours is close,
    # so 4:2:0 costs little.
    rgb = test_images()["gradient"]
    back = nv12_to_rgb_host(rgb_to_nv12_host(rgb))
    assert np.abs(back.astype(int) - rgb).max() <= 6


def test_matrices_are_inverses() -> None:
    for matrix, full_range in CASES:
        cm = color_matrix(matrix, full_range)
        assert np.allclose(np.asarray(cm.forward) @ np.asarray(cm.inverse), np.eye(3))
        assert len(cm.kernel_coefficients()) == 11
    assert color_matrix("bt709").offset == (16.0, 128.0, 128.0)
    assert color_matrix("bt709", True).offset == (0.0, 128.0, 128.0)


def test_default_is_bt709_limited_like_the_h264_routes() -> None:
    rgb = test_images()["noise"]
    assert np.array_equal(rgb_to_nv12_host(rgb), rgb_to_nv12_host(rgb, matrix="bt709", full_range=False))
    assert not np.array_equal(rgb_to_nv12_host(rgb), rgb_to_nv12_host(rgb, matrix="bt601"))


def test_the_routes_shorthands_are_the_reference_in_bt709_limited() -> None:
    from rfb import colorspace, videocolour

    rgb = test_images()["noise"]
    ours = rgb_to_nv12_host(rgb)
    assert np.array_equal(colorspace.rgb_to_nv12(rgb), ours)
    assert np.array_equal(colorspace.nv12_to_rgb(ours, 98, 66), nv12_to_rgb_host(ours))
    with pytest.raises(FrameError, match=r"expected nv12 of shape \(99, 96\), got \(99, 98\)"):
        colorspace.nv12_to_rgb(ours, 96, 66)
    # The default is what the routes' SPS says: matrix 1 (BT.709), not full range.
    assert (colorspace.DEFAULT_MATRIX, videocolour.MATRIX_BT709, colorspace.FULL_RANGE) == ("bt709", 1, False)


def test_rgba_ignores_alpha_and_strided_input_is_read_correctly() -> None:
    rgb = test_images()["noise"]
    rgba = np.concatenate([rgb, np.random.default_rng(1).integers(0, 256, rgb.shape[:2] + (1,), dtype=np.uint8)], -1)
    expected = rgb_to_nv12_host(rgb)
    assert np.array_equal(rgb_to_nv12_host(rgba), expected)
    wide = np.zeros((66, 130, 3), dtype=np.uint8)
    wide[:, 16:114] = rgb
    assert np.array_equal(rgb_to_nv12_host(wide[:, 16:114]), expected)


def test_out_is_filled_and_returned() -> None:
    rgb = test_images()["gradient"]
    out = np.zeros((99, 98), dtype=np.uint8)
    assert rgb_to_nv12_host(rgb, out=out) is out
    assert np.array_equal(out, rgb_to_nv12_host(rgb))
    with pytest.raises(FrameError, match=r"out must be uint8 of shape \(99, 98\), got uint8 \(98, 98\)"):
        rgb_to_nv12_host(rgb, out=np.zeros((98, 98), dtype=np.uint8))


def test_smallest_frame() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    nv12 = rgb_to_nv12_host(rgb, matrix="bt601")
    ey, eu, ev = standard_nv12(rgb, "bt601", False)
    assert np.array_equal(nv12[:2], quantise(ey))
    assert (nv12[2, 0], nv12[2, 1]) == (quantise(eu)[0, 0], quantise(ev)[0, 0])


def test_errors_say_what_was_expected() -> None:
    with pytest.raises(FrameError, match=r"even, non-zero width and height, got 97x66"):
        rgb_to_nv12_host(np.zeros((66, 97, 3), dtype=np.uint8))
    with pytest.raises(FrameError, match=r"uint8 \(H, W, 3\) or \(H, W, 4\) array, got float32 \(2, 2, 3\)"):
        rgb_to_nv12_host(np.zeros((2, 2, 3), dtype=np.float32))
    with pytest.raises(FrameError, match=r"got uint8 \(2, 2\)"):
        rgb_to_nv12_host(np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"matrix must be one of \('bt601', 'bt709'\), got 'bt2020'"):
        rgb_to_nv12_host(np.zeros((2, 2, 3), dtype=np.uint8), matrix="bt2020")
    with pytest.raises(FrameError, match=r"expected a uint8 nv12 array, got int16"):
        nv12_to_rgb_host(np.zeros((3, 2), dtype=np.int16))


def test_nv12_planes_are_views_of_one_allocation() -> None:
    nv12 = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4)
    y, uv = nv12_planes(nv12)
    assert y.shape == (4, 4) and uv.shape == (2, 2, 2)
    assert np.shares_memory(y, nv12) and np.shares_memory(uv, nv12)
    assert list(uv[0, 1]) == [18, 19]  # U, V of the second chroma sample of row 0
    uv[1, 0] = (7, 9)
    assert list(nv12[5, :2]) == [7, 9]


def test_nv12_planes_keep_a_padded_pitch() -> None:
    buffer = np.zeros((6, 8), dtype=np.uint8)
    nv12 = buffer[:, :4]  # pitch 8, width 4
    y, uv = nv12_planes(nv12)
    assert y.strides == (8, 1) and uv.strides == (8, 2, 1)
    uv[...] = 5
    assert (buffer[4:, :4] == 5).all() and (buffer[4:, 4:] == 0).all()


@pytest.mark.parametrize("shape", [(5, 4), (6, 3), (0, 4), (6, 4, 1), (6,)])
def test_nv12_planes_reject_other_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(FrameError, match=r"nv12|even"):
        nv12_planes(np.zeros(shape, dtype=np.uint8))


# -- OpenCV's conversion (the CPU routes' host RGB path) ---------------------------------

needs_cv2 = pytest.mark.skipif(
    importlib.util.find_spec("cv2") is None, reason="OpenCV (opencv-python-headless) is not installed"
)


def i420_planes(i420: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat, quarter = i420.reshape(-1), width * height // 4
    y = flat[: width * height].reshape(height, width)
    u = flat[width * height : width * height + quarter].reshape(height // 2, width // 2)
    return y, u, flat[width * height + quarter :].reshape(height // 2, width // 2)


@needs_cv2
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("content", ["gradient", "noise", "saturated"])
def test_opencv_converter_is_the_bt601_reference(content: str, channels: int) -> None:
    from rfb.converters import OpenCVConverter

    rgb = test_images()[content]
    if channels == 4:
        rgb = np.ascontiguousarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]))
    converter = OpenCVConverter()
    y, u, v = i420_planes(converter.to_i420(rgb), 98, 66)
    ref_y, ref_uv = nv12_planes(rgb_to_nv12_host(rgb, matrix="bt601", full_range=False))
    assert np.abs(y.astype(int) - ref_y).max() <= 1
    # chroma is the 2x2 block average, as the reference: noise would be ~100 off otherwise
    assert np.abs(u.astype(int) - ref_uv[..., 0]).max() <= 1
    assert np.abs(v.astype(int) - ref_uv[..., 1]).max() <= 1


@needs_cv2
@pytest.mark.parametrize(
    ("rgb", "yuv"),
    [
        ((255, 255, 255), (235, 128, 128)),
        ((0, 0, 0), (16, 128, 128)),
        ((255, 0, 0), (81, 90, 240)),
        ((0, 255, 0), (145, 54, 34)),
        ((0, 0, 255), (41, 240, 110)),
    ],
)
def test_opencv_converter_textbook_colours(rgb: tuple[int, int, int], yuv: tuple[int, int, int]) -> None:
    from rfb.converters import OpenCVConverter

    image = np.empty((4, 4, 3), np.uint8)
    image[...] = rgb
    y, u, v = i420_planes(OpenCVConverter().to_i420(image), 4, 4)
    got = (int(y[0, 0]), int(u[0, 0]), int(v[0, 0]))
    assert all(abs(a - b) <= 1 for a, b in zip(got, yuv, strict=True)), (got, yuv)  # OpenCV's red luma is 82
    # decoding those as BT.709 would be visibly wrong: the VUI must say BT.601 for them
    if rgb in ((255, 0, 0), (0, 255, 0), (0, 0, 255)):
        nv12 = np.array([[got[0]] * 2, [got[0]] * 2, [got[1], got[2]]], np.uint8)
        assert np.abs(nv12_to_rgb_host(nv12, matrix="bt709")[0, 0].astype(int) - rgb).max() > 10
        assert np.abs(nv12_to_rgb_host(nv12, matrix="bt601")[0, 0].astype(int) - rgb).max() <= 3


@needs_cv2
def test_opencv_own_i420_chroma_is_point_sampled() -> None:
    # Why OpenCVConverter remakes the chroma planes: cvtColor takes each block's top-left
    # pixel. If a future OpenCV averages, this fails and the extra pass can go.
    import cv2

    block = np.zeros((2, 2, 3), np.uint8)
    block[1, 1] = (255, 0, 0)  # one red pixel, bottom right
    _, u, v = i420_planes(cv2.cvtColor(block, cv2.COLOR_RGB2YUV_I420), 2, 2)
    assert (int(u[0, 0]), int(v[0, 0])) == (128, 128)  # the red is gone from the chroma
    from rfb.converters import OpenCVConverter

    _, u, v = i420_planes(OpenCVConverter().to_i420(block), 2, 2)
    assert int(v[0, 0]) > 150  # averaged: a quarter of red's V excursion remains


@needs_cv2
def test_opencv_converter_labels_and_reuses() -> None:
    from rfb.converters import OpenCVConverter
    from rfb.frames import frame_from_array
    from rfb.videocolour import BT601_LIMITED, BT709_LIMITED, colour_of

    converter = OpenCVConverter()
    rgb = test_images()["gradient"]
    first = converter.convert(frame_from_array(rgb))
    second = converter.convert(frame_from_array(np.ascontiguousarray(np.dstack([rgb, rgb[..., :1]]))))
    assert first.format.name == second.format.name == "yuv420p"
    assert colour_of(first) == colour_of(second) == BT601_LIMITED
    assert first.planes[0].buffer_ptr == second.planes[0].buffer_ptr  # the same buffer, rgb24 or rgba8
    nv12 = rgb_to_nv12_host(rgb)
    wrapped = converter.convert(frame_from_array(nv12, "nv12"))
    assert wrapped.format.name == "nv12" and colour_of(wrapped) == BT709_LIMITED
    assert np.shares_memory(np.frombuffer(wrapped.planes[0], np.uint8), nv12)
    with pytest.raises(FrameError, match=r"even, non-zero width and height, got 3x2"):
        converter.to_i420(np.zeros((2, 3, 3), np.uint8))
    converter.close()
    with pytest.raises(RuntimeError, match="closed"):
        converter.convert(frame_from_array(rgb))


def test_colour_of_frames() -> None:
    from av.video.frame import VideoFrame

    from rfb.converters import HostConverter
    from rfb.frames import frame_from_array
    from rfb.videocolour import BT601_LIMITED, BT709_LIMITED, colour_of, label

    plain = VideoFrame.from_numpy_buffer(np.zeros((6, 4), np.uint8), format="nv12")
    assert colour_of(plain) == BT709_LIMITED  # unlabelled: rfb's convention
    assert colour_of(label(plain, BT601_LIMITED)) == BT601_LIMITED
    swscale = HostConverter("nv12").convert(frame_from_array(test_images()["gradient"]))
    assert colour_of(swscale) == BT709_LIMITED and swscale.colorspace == 1
    plain.color_range = 2
    with pytest.raises(FrameError, match="full-range"):
        colour_of(plain)
    plain.color_range, plain.colorspace = 1, 9  # BT.2020
    with pytest.raises(FrameError, match="AVColorSpace 9"):
        colour_of(plain)


def test_the_converters_and_vui_labels_resolve_from_rfb_colorspace_too() -> None:
    from rfb import colorspace, converters, videocolour

    for name in ("HostConverter", "OpenCVConverter", "host_converter", "default_threads", "AV_FORMATS"):
        assert getattr(colorspace, name) is getattr(converters, name), name
    for name in ("VideoColour", "BT601_LIMITED", "BT709_LIMITED", "colour_of", "label", "MATRIX_BT601"):
        assert getattr(colorspace, name) is getattr(videocolour, name), name
    with pytest.raises(AttributeError, match="module 'rfb.colorspace' has no attribute 'rgb_to_yuv'"):
        _ = colorspace.rgb_to_yuv
