"""Streams of the golden model decoded by FFmpeg: exactly the encoder's reconstruction.

The reconstruction is what P pictures predict from, so any difference between it and
the decoder's picture would grow from picture to picture (drift): every plane of
every picture is compared exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfb.encoders import h264
from rfb.h264cuda.model.encoder import ModelEncoder
from rfb.h264cuda.model.picture import I_16X16, P_L0_16X16, P_SKIP
from rfb.h264cuda.model.ratecontrol import VBV_LIMIT

from .streams import assert_decodes_to_reconstruction, encode, nv12_pictures, psnr


@pytest.mark.parametrize(("width", "height"), [(320, 240), (328, 248)])
def test_scene_with_motion_and_a_forced_idr(width: int, height: int) -> None:
    pictures = nv12_pictures("scene", width, height, 10)
    stream = encode(pictures, width, height, idr_at=(6,))
    assert [h264.is_idr(u) for u in stream.units] == [i in (0, 6) for i in range(10)]
    decoded = assert_decodes_to_reconstruction(stream)
    for (y, _, _), source in zip(decoded, pictures, strict=True):
        assert psnr(y, source[:height]) > 30
    payloads = h264.PayloadStream(width, height).payloads(stream.units)
    assert payloads[0].codec == h264.codec_string(stream.units[0]) == "avc1.42C014"
    assert all(p.codec == "avc1.42C014" for p in payloads)
    kinds = [np.bincount(info.macroblocks.kind.ravel(), minlength=3) for info in stream.infos]
    assert all(k[I_16X16] == k.sum() for k in (kinds[0], kinds[6]))
    assert all(k[P_SKIP] > 0 and k[P_L0_16X16] > 0 for i, k in enumerate(kinds) if i not in (0, 6))


def test_1280x720_once() -> None:
    stream = encode(nv12_pictures("scene", 1280, 720, 3), 1280, 720, bitrate=4_000_000)
    assert_decodes_to_reconstruction(stream)
    assert h264.codec_string(stream.units[0]) == "avc1.42C01F"


@pytest.mark.parametrize(("pattern", "qp"), [("noise", 10), ("gradient", 10), ("noise", 51)])
def test_extreme_content_and_qp(pattern: str, qp: int) -> None:
    # Noise at QP 10 codes large levels (the 12-bit level escapes); QP 51 codes few.
    stream = encode(nv12_pictures(pattern, 64, 48, 3), 64, 48, qp=qp)
    assert_decodes_to_reconstruction(stream)
    assert all(info.qp == qp for info in stream.infos)


def test_p_pictures_turn_to_intra_where_nothing_predicts() -> None:
    # A cut from gradient to noise, then noise: no reference helps, intra macroblocks do.
    pictures = nv12_pictures("gradient", 96, 64, 2) + nv12_pictures("noise", 96, 64, 2)
    stream = encode(pictures, 96, 64, qp=28)
    assert_decodes_to_reconstruction(stream)
    for info in stream.infos[2:]:
        assert not info.idr
        assert np.count_nonzero(info.macroblocks.kind == I_16X16) >= 20  # of 24
    scene = encode(nv12_pictures("scene", 320, 240, 3), 320, 240, qp=26)
    mixed = scene.infos[2].macroblocks.kind
    assert (mixed == P_SKIP).any() and (mixed == P_L0_16X16).any()
    assert_decodes_to_reconstruction(scene)


def test_a_long_stream_does_not_drift() -> None:
    pictures = nv12_pictures("gradient", 96, 64, 30) + nv12_pictures("scene", 96, 64, 10)
    stream = encode(pictures, 96, 64, idr_at=(17,))
    decoded = assert_decodes_to_reconstruction(stream)
    assert min(psnr(y, p[:64]) for (y, _, _), p in zip(decoded, pictures, strict=True)) > 30


@pytest.mark.parametrize("qp", [18, 26, 34])
def test_static_pictures_settle_into_p_skip_and_tiny_pictures(qp: int) -> None:
    picture = nv12_pictures("scene", 320, 240, 1)[0]
    stream = encode([picture] * 4, 320, 240, qp=qp)
    assert_decodes_to_reconstruction(stream)
    # The first P picture may still refine what the IDR quantised; then nothing changes.
    assert all(np.count_nonzero(info.macroblocks.kind == P_SKIP) >= 299 for info in stream.infos[2:])
    assert (stream.infos[3].macroblocks.kind == P_SKIP).all()
    # AUD (6 bytes), start code and NAL header (5), slice header (<= 4) and one skip run of 300 (3).
    assert stream.infos[3].size <= 6 + 5 + 4 + 3


def test_motion_search_finds_a_shifted_picture() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 256, (96, 128), dtype=np.uint8)
    uv = np.full((48, 128), 128, np.uint8)
    shifted = np.roll(y, shift=(2, 3), axis=(0, 1))  # content moves right 3, down 2
    stream = encode([np.vstack([y, uv]), np.vstack([shifted, uv])], 128, 96, qp=24)
    assert_decodes_to_reconstruction(stream)
    mv = stream.infos[1].macroblocks.mv[1:-1, 1:-1]  # interior: the wrapped edge has no match
    assert (mv == [-12, -8]).all()  # quarter samples: the reference 3 left and 2 up


def test_rate_control_holds_p_pictures_near_the_budget() -> None:
    bitrate, fps = 150_000, 30
    stream = encode(nv12_pictures("scene", 320, 240, 16), 320, 240, bitrate=bitrate, fps=fps)
    target = bitrate // fps
    assert stream.infos[0].retried  # the IDR at QP 30 is far over 5,000 bits: coded again
    sizes = [8 * info.size for info in stream.infos[1:]]
    assert max(sizes) <= VBV_LIMIT * target, (sizes, target)  # the one-picture buffer
    assert target / 3 < sum(sizes) / len(sizes) < target, (sizes, target)
    assert min(info.qp for info in stream.infos[1:]) > 30  # 150 kbit/s asks for more than QP 30 gives


def test_wrong_input_is_refused_with_what_was_expected() -> None:
    with pytest.raises(ValueError, match="positive even width and height"):
        ModelEncoder(321, 240, 30, 1_000_000)
    with pytest.raises(ValueError, match="QP in 10..51, got 9"):
        ModelEncoder(320, 240, 30, 1_000_000, qp=9)
    enc = ModelEncoder(64, 48, 30, 1_000_000)
    with pytest.raises(RuntimeError, match="before reading its reconstruction"):
        _ = enc.reconstruction
    expected = r"expected uint8 Y \(48, 64\) and UV \(24, 64\), got uint8 \(48, 64\) and uint8 \(48, 64\)"
    with pytest.raises(ValueError, match=expected):
        enc.encode(np.zeros((48, 64), np.uint8), np.zeros((48, 64), np.uint8))


def test_the_model_command_prints_a_line_per_picture(capsys: pytest.CaptureFixture[str]) -> None:
    from rfb.h264cuda.model.__main__ import main

    assert main(["--pattern", "gradient", "--size", "64x48", "--frames", "3", "--qp", "30", "--idr-every", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[2:5]]
    assert [r[1] for r in rows] == ["IDR", "P", "IDR"]
    assert all(r[2] == "30" and int(r[3]) > 0 for r in rows)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    qp=st.integers(10, 51),
    size=st.sampled_from([(16, 16), (32, 48), (48, 32), (34, 18)]),
    smooth=st.booleans(),
)
def test_random_pictures_decode_to_the_reconstruction(seed: int, qp: int, size: tuple[int, int], smooth: bool) -> None:
    # Random content, random QP, small and cropped sizes, pictures that partly move and
    # partly change: every path of the coder meets the decoder eventually.
    width, height = size
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)
    if smooth:
        first = (np.cumsum(rng.integers(-3, 4, first.shape), axis=1) + 128).clip(0, 255).astype(np.uint8)
    pictures = [first]
    for _ in range(3):
        nxt = np.roll(pictures[-1], shift=tuple(int(v) for v in rng.integers(-5, 6, 2)), axis=(0, 1))
        patch = rng.integers(0, 256, (4, 6), dtype=np.uint8)
        y, x = int(rng.integers(0, height - 4)), int(rng.integers(0, width - 6))
        nxt[y : y + 4, x : x + 6] = patch
        pictures.append(nxt)
    stream = encode(pictures, width, height, qp=qp)
    assert_decodes_to_reconstruction(stream)
