"""The NVENC emulator, tested through a C client of the official API (selftest.c).

The emulator's output is decoded with PyAV (FFmpeg's H.264 decoder) and compared
with the input the self-test generated: bit-exact for YUV inputs, within rounding
for RGB. The same deterministic pattern is computed here (``pattern_*``) and in
``selftest.c``; keep them in step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from rfb.encoders import h264
from tests.nvenc_emulator import (
    Emulator,
    EmulatorBuildError,
    build_emulator,
    build_selftest,
    nvenc_status_codes,
    require_emulator,
)

PIC_P, PIC_I, PIC_IDR = 0, 2, 3


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def lib() -> Path:
    return require_emulator()


@pytest.fixture(scope="module")
def selftest_exe(lib: Path) -> Path:
    return build_selftest()


@pytest.fixture(scope="module")
def selftest_so(lib: Path) -> ctypes.CDLL:
    so = ctypes.CDLL(str(build_selftest(shared=True)))
    so.selftest_run.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
    so.selftest_run.restype = ctypes.c_int
    return so


@pytest.fixture
def emu(lib: Path) -> Emulator:
    emulator = Emulator(lib)
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture(scope="module")
def status() -> dict[str, int]:
    return nvenc_status_codes()


# ------------------------------------------------------------------- helpers


@dataclass
class Run:
    rc: int
    lines: list[dict]
    stream: bytes = b""
    headers: bytes = b""
    stderr: str = ""
    frames: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.frames = [line for line in self.lines if "frame" in line and "type" in line]

    def call(self, name: str) -> list[dict]:
        return [line for line in self.lines if line.get("call") == name]

    @property
    def ledger(self) -> dict[str, int]:
        found = [line["ledger"] for line in self.lines if "ledger" in line]
        assert found, f"no ledger line in the report: {self.lines}"
        return found[-1]

    def access_units(self) -> list[bytes]:
        """The stream cut at the sizes nvEncLockBitstream reported."""
        units, pos = [], 0
        for f in self.frames:
            units.append(self.stream[pos : pos + f["size"]])
            pos += f["size"]
        assert pos == len(self.stream), "reported sizes do not add up to the stream"
        return units


def _read(tmp: Path, name: str) -> bytes:
    p = tmp / name
    return p.read_bytes() if p.exists() else b""


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_selftest(exe: Path, lib: Path, tmp: Path, mode: str, *args: str, wrapper: tuple[str, ...] = ()) -> Run:
    """Run the self-test program as a subprocess."""
    report = tmp / "report.jsonl"
    cmd = [*wrapper, str(exe), str(lib), mode, "--report", str(report)]
    if mode == "encode":
        cmd += ["--out", str(tmp / "out.h264"), "--headers", str(tmp / "headers.h264")]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=600)
    lines = _lines(report) if report.exists() else []
    return Run(proc.returncode, lines, _read(tmp, "out.h264"), _read(tmp, "headers.h264"), proc.stderr)


def run_inprocess(so: ctypes.CDLL, lib: Path, tmp: Path, mode: str, *args: str) -> Run:
    """Run the self-test in this process, against the emulator instance `Emulator` controls."""
    report = tmp / "report.jsonl"
    argv = ["selftest", str(lib), mode, "--report", str(report)]
    if mode == "encode":
        argv += ["--out", str(tmp / "out.h264")]
    argv += list(args)
    arr = (ctypes.c_char_p * len(argv))(*(a.encode() for a in argv))
    rc = so.selftest_run(len(argv), arr)
    return Run(rc, _lines(report), _read(tmp, "out.h264"))


def decode(stream: bytes) -> tuple[list[av.VideoFrame], av.CodecContext]:
    ctx = av.CodecContext.create("h264", "r")
    frames: list[av.VideoFrame] = []
    for packet in ctx.parse(stream) + ctx.parse(None):
        frames += ctx.decode(packet)
    frames += ctx.decode(None)
    return frames, ctx


def planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V of a decoded 4:2:0 frame (yuvj420p when the VUI says full range), without line padding."""
    assert frame.format.name in ("yuv420p", "yuvj420p"), frame.format.name
    out = []
    for p in frame.planes:
        a = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)
        out.append(a[:, : p.width])
    return out[0], out[1], out[2]


# The generated picture (mirrors selftest.c).


def _zero_block(x: np.ndarray, y: np.ndarray, f: int) -> np.ndarray:
    return ((x >> 4) + (y >> 4) + f) % 5 == 0


def pattern_yuv(w: int, h: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w]
    luma = (x * 7 + y * 13 + ((x * y) >> 4) + f * 29) & 255
    luma = np.where(_zero_block(x, y, f), np.where((x >> 2) & 1, 0, x & 3), luma)
    cy, cx = np.mgrid[0 : h // 2, 0 : w // 2]
    zc = _zero_block(2 * cx, 2 * cy, f)
    u = np.where(zc, 0, (cx * 11 + cy * 3 + f * 5 + 64) & 255)
    v = np.where(zc, 1, (cx * 5 + cy * 17 + f * 13 + 128) & 255)
    return luma.astype(np.uint8), u.astype(np.uint8), v.astype(np.uint8)


def pattern_rgb(w: int, h: int, f: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 4 + f * 16) & 255
    g = (y * 4 + f * 8) & 255
    b = ((x + y) * 2 + f * 4) & 255
    return np.stack([r, g, b], axis=-1).astype(np.float64)


def rgb_to_yuv420(rgb: np.ndarray, *, bt709: bool, full_range: bool) -> tuple[np.ndarray, ...]:
    """Reference conversion in floating point (the emulator uses fixed point)."""
    kr, kb = (0.2126, 0.0722) if bt709 else (0.299, 0.114)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    yp = kr * r + (1 - kr - kb) * g + kb * b
    cb = (b - yp) / (2 * (1 - kb))
    cr = (r - yp) / (2 * (1 - kr))
    ys, cs, yo = (1.0, 1.0, 0.0) if full_range else (219 / 255, 224 / 255, 16.0)
    y = yp * ys + yo
    h, w = y.shape

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)) * cs + 128

    return y, sub(cb), sub(cr)


def assert_exact(frame: av.VideoFrame, w: int, h: int, f: int) -> None:
    assert (frame.width, frame.height) == (w, h)
    got = planes(frame)
    want = pattern_yuv(w, h, f)
    for name, g, e in zip("YUV", got, want, strict=True):
        if not np.array_equal(g, e):
            bad = np.argwhere(g != e)
            raise AssertionError(
                f"frame {f} {w}x{h}: plane {name} differs at {len(bad)} samples, first (row, col) {bad[0].tolist()}"
            )


def nal_types_of(au: bytes) -> list[int]:
    return h264.nal_types(au)


# --------------------------------------------------------------------- build


def test_build_is_cached_and_named_like_the_driver(lib: Path) -> None:
    assert lib.name == "libnvidia-encode.so.1"
    assert build_emulator() == lib
    assert lib.stat().st_size > 0


def test_exports_only_the_driver_entry_points_and_controls(lib: Path) -> None:
    so = ctypes.CDLL(str(lib))
    for name in ("NvEncodeAPICreateInstance", "NvEncodeAPIGetMaxSupportedVersion", "emu_ledger", "emu_reset"):
        assert hasattr(so, name), name
    # the implementation and the header's prototypes stay private
    for name in ("api_encode_picture", "NvEncEncodePicture", "NvEncOpenEncodeSessionEx", "g_emu", "derive_config"):
        assert not hasattr(so, name), name


def test_wrapper_refuses_a_library_that_is_not_the_emulator() -> None:
    libm = ctypes.util.find_library("m")
    assert libm
    with pytest.raises(EmulatorBuildError, match="not the NVENC emulator"):
        Emulator(libm)


def test_status_codes_come_from_the_official_header(status: dict[str, int]) -> None:
    assert status["NV_ENC_SUCCESS"] == 0
    assert status["NV_ENC_ERR_UNSUPPORTED_DEVICE"] == 2
    assert status["NV_ENC_ERR_INVALID_VERSION"] == 15
    assert status["NV_ENC_ERR_NEED_MORE_OUTPUT"] == max(status.values())


# ------------------------------------------------------------ API validation


def test_api_battery(selftest_exe: Path, lib: Path, tmp_path: Path) -> None:
    run = run_selftest(selftest_exe, lib, tmp_path, "api")
    summary = run.lines[-1]
    failed = [line["check"] for line in run.lines if line.get("ok") is False]
    assert run.rc == 0 and summary["failures"] == 0, f"failed checks: {failed}\n{run.stderr}"
    assert summary["checks"] >= 150
    ledger = run.ledger
    assert ledger["sessions"] == 0
    # the battery destroys its session with a registration, a bitstream and an input buffer outstanding
    assert (ledger["leaked_registered"], ledger["leaked_bitstream_buffers"], ledger["leaked_input_buffers"]) == (
        1,
        1,
        1,
    )
    assert ledger["reconfigures"] == 2 and ledger["eos"] == 1


def test_last_error_names_function_status_and_cause(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path
) -> None:
    run = run_inprocess(selftest_so, lib, tmp_path, "api")
    assert run.rc == 0
    # the battery's last failing call is nvEncGetEncodeGUIDCount on a destroyed session
    msg = emu.last_error()
    assert msg.startswith("nvEncGetEncodeGUIDCount: NV_ENC_ERR_INVALID_ENCODERDEVICE (3): ")
    assert "not an open encode session" in msg
    assert emu.ledger()["errors"] > 50


def test_version_query_and_function_list(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, status: dict[str, int]
) -> None:
    (report,) = run_inprocess(selftest_so, lib, tmp_path, "version").lines
    assert report["max_version"] == (13 << 4) | 0  # driver 580 answers 13.0
    assert report["create_status"] == 0 and report["complete"] is True
    assert report["create_old_struct"] == status["NV_ENC_ERR_INVALID_VERSION"]
    assert report["create_null"] == status["NV_ENC_ERR_INVALID_PTR"]

    emu.set_max_version(12, 0)
    (report,) = run_inprocess(selftest_so, lib, tmp_path, "version").lines
    assert report["max_version"] == (12 << 4) | 0
    assert report["create_status"] == status["NV_ENC_ERR_INVALID_VERSION"]
    run = run_inprocess(selftest_so, lib, tmp_path, "encode")
    assert run.call("NvEncodeAPICreateInstance")[0]["status"] == status["NV_ENC_ERR_INVALID_VERSION"]
    assert emu.last_error() == (
        "NvEncodeAPICreateInstance: NV_ENC_ERR_INVALID_VERSION (15): "
        "the function list is for API 12.1, newer than the driver supports (12.0)"
    )

    emu.set_max_version(12, 1)
    (report,) = run_inprocess(selftest_so, lib, tmp_path, "version").lines
    assert report["create_status"] == 0

    emu.reset()
    (report,) = run_inprocess(selftest_so, lib, tmp_path, "version").lines
    assert report["max_version"] == 13 << 4


def test_unsupported_device_like_an_h100(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, status: dict[str, int]
) -> None:
    emu.set_unsupported_device(True)
    run = run_inprocess(selftest_so, lib, tmp_path, "encode")
    (opened,) = run.call("nvEncOpenEncodeSessionEx")
    assert opened["status"] == status["NV_ENC_ERR_UNSUPPORTED_DEVICE"] == 2
    assert opened["handle"] is True  # a failed open still hands out a session to destroy
    assert run.call("nvEncDestroyEncoder")[0]["status"] == 0
    assert "no NVENC engine" in emu.last_error()
    ledger = emu.ledger()
    assert ledger["sessions"] == 0 and ledger["sessions_opened"] == 0 and ledger["failed_open_leaks"] == 0
    emu.set_unsupported_device(False)
    assert run_inprocess(selftest_so, lib, tmp_path, "encode").rc == 0


# ------------------------------------------------------------- pixel oracle


@pytest.mark.parametrize(
    ("size", "pitch", "frames"),
    [
        ((1920, 1080), 0, 2),
        ((1920, 1080), 2048, 1),
        ((1280, 720), 1280, 2),
        ((640, 360), 704, 3),  # cropping at the bottom
        ((330, 250), 336, 3),  # cropping in both directions
        ((852, 480), 864, 2),  # 852 is no multiple of 16: the next pitch that is
        ((1366, 768), 1376, 2),  # 1366 is not even a multiple of 4
        ((1366, 768), 1536, 1),  # a 256-byte pitch (cuMemAllocPitch, FFmpeg's CUDA frames)
    ],
)
def test_nv12_is_pixel_exact(
    selftest_exe: Path, lib: Path, tmp_path: Path, size: tuple[int, int], pitch: int, frames: int
) -> None:
    w, h = size
    run = run_selftest(
        selftest_exe, lib, tmp_path, "encode", "--size", f"{w}x{h}", "--pitch", str(pitch), "--frames", str(frames)
    )
    assert run.rc == 0, run.stderr
    assert [f["type"] for f in run.frames] == [PIC_IDR] + [PIC_P] * (frames - 1)
    decoded, _ = decode(run.stream)
    assert len(decoded) == frames
    for i, frame in enumerate(decoded):
        assert_exact(frame, w, h, i)


@pytest.mark.parametrize("fmt", ["iyuv", "yv12"])
def test_planar_yuv_is_pixel_exact(selftest_exe: Path, lib: Path, tmp_path: Path, fmt: str) -> None:
    run = run_selftest(
        selftest_exe, lib, tmp_path, "encode", "--fmt", fmt, "--size", "352x288", "--pitch", "384", "--frames", "2"
    )
    assert run.rc == 0, run.stderr
    decoded, _ = decode(run.stream)
    assert len(decoded) == 2
    for i, frame in enumerate(decoded):
        assert_exact(frame, 352, 288, i)


def test_input_buffers_are_pixel_exact(selftest_exe: Path, lib: Path, tmp_path: Path) -> None:
    """nvEncCreateInputBuffer/Lock/Unlock (the path FFmpeg's nvenc uses for system memory)."""
    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--input-buffers", "--size", "852x480", "--frames", "2")
    assert run.rc == 0, run.stderr
    decoded, _ = decode(run.stream)
    assert len(decoded) == 2
    for i, frame in enumerate(decoded):
        assert_exact(frame, 852, 480, i)
    assert run.ledger["input_buffers"] == 0 and run.ledger["leaked"] == 0


@pytest.mark.parametrize(
    ("fmt", "flags", "bt709", "full"),
    [
        ("abgr", (), False, False),
        ("argb", (), False, False),
        ("abgr", ("--bt709",), True, False),
        ("abgr", ("--full-range",), False, True),
    ],
)
def test_rgb_is_converted(
    selftest_exe: Path, lib: Path, tmp_path: Path, fmt: str, flags: tuple[str, ...], bt709: bool, full: bool
) -> None:
    w, h = 320, 240
    run = run_selftest(
        selftest_exe,
        lib,
        tmp_path,
        "encode",
        "--fmt",
        fmt,
        "--size",
        f"{w}x{h}",
        "--pitch",
        "1536",
        "--frames",
        "2",
        *flags,
    )
    assert run.rc == 0, run.stderr
    decoded, _ = decode(run.stream)
    assert len(decoded) == 2
    for i, frame in enumerate(decoded):
        want = rgb_to_yuv420(pattern_rgb(w, h, i), bt709=bt709, full_range=full)
        for name, g, e in zip("YUV", planes(frame), want, strict=True):
            diff = np.abs(g.astype(np.float64) - e)
            assert diff.max() <= 1.5, f"{fmt} frame {i} plane {name}: max error {diff.max():.2f}"


def test_several_outputs_in_flight_are_locked_in_order(selftest_exe: Path, lib: Path, tmp_path: Path) -> None:
    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--frames", "7", "--buffers", "3")
    assert run.rc == 0, run.stderr
    assert [f["frame_idx"] for f in run.frames] == list(range(7))
    assert [f["ts"] for f in run.frames] == [i * 1000 + 7 for i in range(7)]
    assert {f["duration"] for f in run.frames} == {1000}
    decoded, _ = decode(run.stream)
    assert len(decoded) == 7
    for i, frame in enumerate(decoded):
        assert_exact(frame, 320, 240, i)


# ----------------------------------------------------- picture type decision


@pytest.mark.parametrize(
    ("args", "types"),
    [
        ((), [PIC_IDR] + [PIC_P] * 9),  # infinite GOP: only the first picture is intra
        (("--gop", "4"), [PIC_IDR, PIC_P, PIC_P, PIC_P] * 2 + [PIC_IDR, PIC_P]),  # idrPeriod defaults to gopLength
        (
            ("--gop", "3", "--idr-period", "6"),
            [PIC_IDR, PIC_P, PIC_P, PIC_I, PIC_P, PIC_P] + [PIC_IDR, PIC_P, PIC_P, PIC_I],
        ),
        (("--force-idr", "3,7"), [PIC_IDR, PIC_P, PIC_P, PIC_IDR, PIC_P, PIC_P, PIC_P, PIC_IDR, PIC_P, PIC_P]),
        (("--force-intra", "2"), [PIC_IDR, PIC_P, PIC_I] + [PIC_P] * 7),
        (("--intra-only", "--idr-period", "5"), [PIC_IDR, PIC_I, PIC_I, PIC_I, PIC_I] * 2),
        # FORCEIDR is only honoured with enablePTD = 1; without it the client's pictureType rules
        (("--no-ptd", "--force-idr", "2"), [PIC_IDR] + [PIC_P] * 9),
        (
            ("--no-ptd", "--idr-types", "2,5"),
            [PIC_IDR, PIC_P, PIC_IDR, PIC_P, PIC_P, PIC_IDR, PIC_P, PIC_P, PIC_P, PIC_P],
        ),
    ],
)
def test_picture_types(selftest_exe: Path, lib: Path, tmp_path: Path, args: tuple[str, ...], types: list[int]) -> None:
    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--frames", "10", *args)
    assert run.rc == 0, run.stderr
    assert [f["type"] for f in run.frames] == types
    # the bitstream agrees: IDR NAL units exactly where the driver reported IDR
    for f, au in zip(run.frames, run.access_units(), strict=True):
        assert (5 in nal_types_of(au)) == (f["type"] == PIC_IDR), (f, nal_types_of(au))
    decoded, _ = decode(run.stream)
    assert [fr.key_frame for fr in decoded] == [t == PIC_IDR for t in types]
    for i, frame in enumerate(decoded):
        assert_exact(frame, 320, 240, i)
    assert run.ledger["idr_frames"] == types.count(PIC_IDR)


# ---------------------------------------------------------- sequence headers


@pytest.mark.parametrize(
    ("profile", "profile_idc", "constraints"),
    [
        ("auto", 100, 0x00),
        ("baseline", 66, 0xC0),
        ("main", 77, 0x00),
        ("high", 100, 0x00),
        ("progressive-high", 100, 0x08),
        ("constrained-high", 100, 0x0C),
        ("high444", 244, 0x00),
    ],
)
def test_sps_profile(
    selftest_exe: Path, lib: Path, tmp_path: Path, profile: str, profile_idc: int, constraints: int
) -> None:
    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--frames", "2", "--profile", profile)
    assert run.rc == 0, run.stderr
    sps = h264.sps_of(run.stream)
    assert (sps.profile_idc, sps.constraint_flags) == (profile_idc, constraints)
    decoded, _ = decode(run.stream)
    assert_exact(decoded[1], 320, 240, 1)


def test_unsupported_profile_is_refused(selftest_exe: Path, lib: Path, tmp_path: Path, status: dict[str, int]) -> None:
    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--profile", "hevc-main")
    (init,) = run.call("nvEncInitializeEncoder")
    assert init["status"] == status["NV_ENC_ERR_UNSUPPORTED_PARAM"]
    assert run.rc != 0


@pytest.mark.parametrize(
    ("size", "fps", "level", "level_idc"),
    [
        ("1920x1080", "60/1", 0, 42),
        ("1920x1080", "30/1", 0, 40),
        ("1280x720", "30/1", 0, 31),
        ("640x360", "30/1", 0, 30),
        ("3840x2160", "30/1", 0, 51),
        ("640x360", "30/1", 51, 51),  # explicit level wins
    ],
)
def test_sps_level(
    selftest_exe: Path, lib: Path, tmp_path: Path, size: str, fps: str, level: int, level_idc: int
) -> None:
    run = run_selftest(
        selftest_exe, lib, tmp_path, "encode", "--size", size, "--frames", "0", "--fps", fps, "--level", str(level)
    )
    assert run.rc == 0, run.stderr
    assert h264.sps_of(run.headers).level_idc == level_idc


def test_sps_cropping_vui_and_timing(selftest_exe: Path, lib: Path, tmp_path: Path) -> None:
    run = run_selftest(
        selftest_exe, lib, tmp_path, "encode", "--size", "330x250", "--frames", "2", "--fps", "30000/1001",
        "--bt709", "--full-range", "--bitstream-restriction", "--pitch", "336",
    )  # fmt: skip
    assert run.rc == 0, run.stderr
    sps = h264.sps_of(run.stream)
    assert (sps.coded_width, sps.coded_height, sps.width, sps.height) == (336, 256, 330, 250)
    assert sps.crop == (0, 6, 0, 6)
    assert sps.vui_present and sps.video_full_range is True
    assert (sps.colour_primaries, sps.transfer_characteristics, sps.matrix_coefficients) == (1, 1, 1)
    assert sps.bitstream_restriction and sps.max_num_reorder_frames == 0 and sps.max_dec_frame_buffering == 1
    assert sps.chroma_format_idc == 1 and sps.bit_depth_luma == 8 and sps.frame_mbs_only
    decoded, ctx = decode(run.stream)
    assert ctx.framerate == Fraction(30000, 1001)
    assert_exact(decoded[0], 330, 250, 0)


def test_sps_without_vui_options(selftest_exe: Path, lib: Path, tmp_path: Path) -> None:
    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--frames", "1")
    sps = h264.sps_of(run.stream)
    assert not sps.vui_present  # no frame rate, no colour, no restriction: nothing to say
    assert sps.crop == (0, 0, 0, 0)


def test_sequence_params_match_the_in_band_headers(selftest_exe: Path, lib: Path, tmp_path: Path) -> None:
    run = run_selftest(
        selftest_exe, lib, tmp_path, "encode", "--size", "640x360", "--frames", "1", "--fps", "30/1", "--bt709"
    )
    (call,) = run.call("nvEncGetSequenceParams")
    assert call["status"] == 0 and call["size"] == len(run.headers)
    assert run.headers.startswith(b"\x00\x00\x00\x01")
    assert h264.nal_types(run.headers) == [7, 8]
    first_au = run.access_units()[0]
    assert first_au.startswith(run.headers)  # SPS, PPS, then the IDR slice
    assert h264.nal_types(first_au) == [7, 8, 5]


def test_headers_only_on_the_first_idr_unless_repeated(selftest_exe: Path, lib: Path, tmp_path: Path) -> None:
    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--frames", "6", "--gop", "3")
    assert [h264.nal_types(au) for au in run.access_units()] == [[7, 8, 5], [1], [1], [5], [1], [1]]

    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--frames", "6", "--gop", "3", "--repeat-spspps")
    assert [h264.nal_types(au) for au in run.access_units()] == [[7, 8, 5], [1], [1], [7, 8, 5], [1], [1]]

    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--frames", "3", "--aud", "--output-spspps", "1")
    assert [h264.nal_types(au) for au in run.access_units()] == [[9, 7, 8, 5], [9, 7, 8, 1], [9, 1]]

    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--frames", "2", "--disable-spspps")
    assert [h264.nal_types(au) for au in run.access_units()] == [[5], [1]]
    # out of band headers make the stream decodable
    decoded, _ = decode(run.headers + run.stream)
    assert len(decoded) == 2
    assert_exact(decoded[1], 320, 240, 1)


# -------------------------------------------------------------- reconfigure


def test_reconfigure_resolution_forces_an_idr_with_new_headers(selftest_exe: Path, lib: Path, tmp_path: Path) -> None:
    run = run_selftest(
        selftest_exe, lib, tmp_path, "encode", "--max", "640x480", "--frames", "5",
        "--reconfigure", "2:640x480", "--reconfigure", "4:352x288",
    )  # fmt: skip
    assert run.rc == 0, run.stderr
    assert [c["status"] for c in run.call("nvEncReconfigureEncoder")] == [0, 0]
    assert [f["type"] for f in run.frames] == [PIC_IDR, PIC_P, PIC_IDR, PIC_P, PIC_IDR]
    assert [h264.nal_types(au)[0] for au in run.access_units()] == [7, 1, 7, 1, 7]
    decoded, _ = decode(run.stream)
    sizes = [(320, 240), (320, 240), (640, 480), (640, 480), (352, 288)]
    assert [(fr.width, fr.height) for fr in decoded] == sizes
    for i, (frame, (w, h)) in enumerate(zip(decoded, sizes, strict=True)):
        assert_exact(frame, w, h, i)
    assert run.ledger["reconfigures"] == 2


@pytest.mark.parametrize(
    ("flags", "types"),
    [("", [PIC_IDR, PIC_P, PIC_P]), ("i", [PIC_IDR, PIC_P, PIC_IDR]), ("r", [PIC_IDR, PIC_P, PIC_IDR])],
)
def test_reconfigure_bitrate_keeps_the_gop_unless_asked(
    selftest_exe: Path, lib: Path, tmp_path: Path, flags: str, types: list[int]
) -> None:
    spec = f"2:320x240:9000000:{flags}" if flags else "2:320x240:9000000"
    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--frames", "3", "--fps", "30/1", "--reconfigure", spec)
    assert run.rc == 0, run.stderr
    assert [f["type"] for f in run.frames] == types
    assert 7 not in h264.nal_types(run.access_units()[2])  # no new SPS for a bitrate change


def test_reconfigure_beyond_the_maximum_is_refused(
    selftest_exe: Path, lib: Path, tmp_path: Path, status: dict[str, int]
) -> None:
    run = run_selftest(
        selftest_exe, lib, tmp_path, "encode", "--max", "640x480", "--frames", "3", "--reconfigure", "1:1280x480"
    )
    (call,) = run.call("nvEncReconfigureEncoder")
    assert call["status"] == status["NV_ENC_ERR_INVALID_PARAM"]
    decoded, _ = decode(run.stream)  # the session goes on at the old size
    assert [(fr.width, fr.height) for fr in decoded] == [(320, 240)] * 3

    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--frames", "2", "--reconfigure", "1:352x288")
    (call,) = run.call("nvEncReconfigureEncoder")
    assert call["status"] == status["NV_ENC_ERR_INVALID_PARAM"]  # no maxEncodeWidth/Height at init


def test_session_info_reflects_reconfigure(selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path) -> None:
    # Keep the session alive past the self-test by failing its nvEncDestroyEncoder once.
    emu.inject_fault("nvEncDestroyEncoder", "NV_ENC_ERR_GENERIC")
    run = run_inprocess(
        selftest_so, lib, tmp_path, "encode", "--max", "640x480", "--fps", "60/1",
        "--frames", "3", "--reconfigure", "1:640x480:7000000",
    )  # fmt: skip
    assert run.call("nvEncDestroyEncoder")[0]["status"] != 0
    (info,) = emu.sessions()
    assert (info["width"], info["height"], info["max_width"], info["max_height"]) == (640, 480, 640, 480)
    assert info["average_bitrate"] == 7000000
    assert (info["frame_rate_num"], info["frame_rate_den"]) == (60, 1)
    assert info["frames"] == 3 and info["reconfigures"] == 1 and info["enable_ptd"] == 1
    assert info["preset"] == 4 and info["tuning_info"] == 2  # P4, low latency (the self-test's defaults)
    assert info["registered"] == 0 and info["bitstream_buffers"] == 0
    assert emu.ledger()["sessions"] == 1 and emu.ledger()["faults_fired"] == 1
    emu.reset()
    assert emu.sessions() == [] and emu.ledger()["sessions"] == 0


# ----------------------------------------------------------- fault injection


def test_injected_encode_fault(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, status: dict[str, int]
) -> None:
    emu.inject_fault("nvEncEncodePicture", "NV_ENC_ERR_ENCODER_BUSY", after=2, count=2)
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--frames", "6", "--keep-going")
    failed = run.call("nvEncEncodePicture")
    assert [(f["frame"], f["status"]) for f in failed] == [(2, status["NV_ENC_ERR_ENCODER_BUSY"])] * 1 + [
        (3, status["NV_ENC_ERR_ENCODER_BUSY"])
    ]
    assert [f["frame"] for f in run.frames] == [0, 1, 4, 5]
    ledger = emu.ledger()
    assert ledger["faults_fired"] == 2 and ledger["encodes"] == 4
    assert ledger["sessions"] == 0 and ledger["registered"] == 0 and ledger["leaked"] == 0
    assert "injected fault" in emu.last_error()
    decoded, _ = decode(run.stream)  # what was produced is still a valid stream
    assert len(decoded) == 4


def test_injected_fault_forever_and_cleared(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, status: dict[str, int]
) -> None:
    emu.inject_fault("nvEncEncodePicture", status["NV_ENC_ERR_GENERIC"], count=-1)
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--frames", "3", "--keep-going")
    assert [c["status"] for c in run.call("nvEncEncodePicture")] == [status["NV_ENC_ERR_GENERIC"]] * 3
    assert run.frames == [] and emu.ledger()["faults_fired"] == 3
    emu.clear_faults()
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--frames", "3")
    assert run.rc == 0 and len(run.frames) == 3


def test_injected_fault_on_create_instance_and_open(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, status: dict[str, int]
) -> None:
    emu.inject_fault("NvEncodeAPICreateInstance", "NV_ENC_ERR_INVALID_VERSION")
    run = run_inprocess(selftest_so, lib, tmp_path, "encode")
    assert run.call("NvEncodeAPICreateInstance")[0]["status"] == status["NV_ENC_ERR_INVALID_VERSION"]
    emu.inject_fault("nvEncOpenEncodeSessionEx", "NV_ENC_ERR_NO_ENCODE_DEVICE")
    run = run_inprocess(selftest_so, lib, tmp_path, "encode")
    assert run.call("nvEncOpenEncodeSessionEx")[0]["status"] == status["NV_ENC_ERR_NO_ENCODE_DEVICE"]
    assert emu.ledger()["sessions_opened"] == 0


def test_inject_fault_validates_its_arguments(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="unknown API function 'nvEncEncode'"):
        emu.inject_fault("nvEncEncode", 8)
    with pytest.raises(ValueError, match="status must be non-zero"):
        emu.inject_fault("nvEncEncodePicture", 0)
    with pytest.raises(ValueError, match="unknown NVENCSTATUS"):
        emu.inject_fault("nvEncEncodePicture", "NV_ENC_ERR_NOPE")
    assert "nvEncEncodePicture" in emu.functions and "nvEncGetLastErrorString" not in emu.functions


def test_sessions_on_two_threads(selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path) -> None:
    """Two clients encoding at once (ctypes releases the GIL): one lock, no mixing."""
    from concurrent.futures import ThreadPoolExecutor

    sizes = {"a": (352, 288), "b": (320, 240)}
    for name in sizes:
        (tmp_path / name).mkdir()

    def client(name: str) -> Run:
        w, h = sizes[name]
        return run_inprocess(
            selftest_so,
            lib,
            tmp_path / name,
            "encode",
            "--size",
            f"{w}x{h}",
            "--frames",
            "12",
            "--buffers",
            "2",
            "--gop",
            "5",
        )

    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip(sizes, pool.map(client, sizes), strict=True))
    for name, run in runs.items():
        w, h = sizes[name]
        assert run.rc == 0
        decoded, _ = decode(run.stream)
        assert len(decoded) == 12
        for i, frame in enumerate(decoded):
            assert_exact(frame, w, h, i)
    ledger = emu.ledger()
    assert (ledger["sessions_opened"], ledger["encodes"], ledger["idr_frames"]) == (2, 24, 6)
    assert ledger["sessions"] == 0 and ledger["errors"] == 0


# ----------------------------------------------------------- special modes


def test_no_pixel_work_mode(selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path) -> None:
    emu.set_no_pixel_work(True)
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--size", "1920x1080", "--frames", "4", "--gop", "3")
    assert run.rc == 0
    assert [f["type"] for f in run.frames] == [PIC_IDR, PIC_P, PIC_P, PIC_IDR]
    idr, p = run.frames[0]["size"], run.frames[1]["size"]
    assert idr < 12_000 and p < 100  # one byte per macroblock; an all-skip P picture
    decoded, _ = decode(run.stream)
    assert [(fr.width, fr.height) for fr in decoded] == [(1920, 1080)] * 4
    for frame in decoded:
        for plane in planes(frame):
            assert np.all(plane == 128)
    emu.set_no_pixel_work(False)
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--size", "1920x1080", "--frames", "1")
    assert run.frames[0]["size"] > 1920 * 1080 * 3 // 2


def test_end_of_stream(selftest_exe: Path, lib: Path, tmp_path: Path) -> None:
    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--frames", "2", "--eos")
    assert run.call("eos")[0]["status"] == 0
    assert run.ledger["eos"] == 1 and run.ledger["encodes"] == 2


def test_ledger_returns_to_zero(selftest_exe: Path, lib: Path, tmp_path: Path) -> None:
    run = run_selftest(selftest_exe, lib, tmp_path, "encode", "--frames", "4", "--buffers", "2", "--gop", "2", "--eos")
    live = (
        "sessions",
        "registered",
        "mapped",
        "bitstream_buffers",
        "input_buffers",
        "locked_bitstreams",
        "pending_bitstreams",
    )
    assert {k: run.ledger[k] for k in live} == dict.fromkeys(live, 0)
    assert run.ledger["leaked"] == 0 and run.ledger["errors"] == 0
    misuse = ("unflushed_destroys", "stale_registrations", "dead_stream_pointers", "null_session_calls",
              "failed_open_leaks", "pitch_faults", "poisoned_sessions", "reserved_field_errors")  # fmt: skip
    assert {k: run.ledger[k] for k in misuse} == dict.fromkeys(misuse, 0)
    assert (run.ledger["sessions_opened"], run.ledger["encodes"], run.ledger["idr_frames"]) == (1, 4, 2)


# -------------------------------------------------------------- CUDA memory


def _cuda_unavailable() -> str | None:
    """Why CUDA device memory cannot be used here, or None."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return f"no CUDA driver: {exc}"
    count = ctypes.c_int(0)
    if (rc := cuda.cuInit(0)) != 0:
        return f"cuInit failed with CUresult {rc}"
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "no CUDA device"
    return None


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("fmt", "size", "pitch"), [("nv12", (1920, 1080), 2048), ("nv12", (852, 480), 1024), ("iyuv", (352, 288), 384)]
)
def test_cuda_device_memory_is_pixel_exact(
    selftest_exe: Path, lib: Path, tmp_path: Path, fmt: str, size: tuple[int, int], pitch: int
) -> None:
    """Pictures in CUDA device memory (cuMemAlloc), read by the emulator through libcuda."""
    if reason := _cuda_unavailable():
        pytest.skip(reason)
    w, h = size
    run = run_selftest(
        selftest_exe,
        lib,
        tmp_path,
        "encode",
        "--cuda",
        "--fmt",
        fmt,
        "--size",
        f"{w}x{h}",
        "--pitch",
        str(pitch),
        "--frames",
        "2",
    )
    assert run.rc == 0, run.stderr
    decoded, _ = decode(run.stream)
    assert len(decoded) == 2
    for i, frame in enumerate(decoded):
        assert_exact(frame, w, h, i)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("memory", "why"), [("async", "stream-ordered pool memory"), ("host", "is host memory (CU_MEMORYTYPE_HOST)")]
)
def test_cuda_pool_and_pinned_host_memory_are_refused(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, status: dict[str, int], memory: str, why: str
) -> None:
    """With a real libcuda the registration asks cuPointerGetAttribute, as a driver does."""
    if reason := _cuda_unavailable():
        pytest.skip(reason)
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--cuda", "--cuda-memory", memory)
    (setup,) = run.call("setup")
    assert setup["status"] == status["NV_ENC_ERR_RESOURCE_REGISTER_FAILED"]
    assert why in emu.last_error()
    assert emu.ledger()["sessions"] == 0 and emu.ledger()["leaked"] == 0


@pytest.mark.gpu
def test_cuda_memory_freed_under_a_registration_is_stale(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path
) -> None:
    if reason := _cuda_unavailable():
        pytest.skip(reason)
    run = run_inprocess(
        selftest_so,
        lib,
        tmp_path,
        "encode",
        "--cuda",
        "--frames",
        "4",
        "--eos",
        "--keep-going",
        "--cuda-realloc-at",
        "2",
    )
    (realloc,) = run.call("realloc")
    assert realloc["status"] == 0
    assert emu.ledger()["stale_registrations"] == 1  # a new BUFFER_ID at the old address, or no allocation there
    assert [f["frame"] for f in run.frames][:2] == [0, 1]


# ------------------------------------------------------------------ memory


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.parametrize(
    ("args", "rc"),
    [
        (("api",), 0),
        (("encode", "--size", "330x250", "--pitch", "336", "--frames", "4", "--buffers", "2", "--max", "352x288",
          "--reconfigure", "2:352x288", "--eos", "--fps", "30/1", "--bt709", "--describe", "device",
          "--streams", "live"), 0),
        (("encode", "--fmt", "abgr", "--frames", "2", "--input-buffers"), 0),
        # a pitch fault (failed calls), then teardown
        (("encode", "--size", "852x480", "--frames", "2", "--keep-going"), 1),
    ],
)  # fmt: skip
def test_no_leaks_or_memory_errors_under_valgrind(
    selftest_exe: Path, lib: Path, tmp_path: Path, args: tuple[str, ...], rc: int
) -> None:
    wrapper = (
        "valgrind",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect,possible",
        "--error-exitcode=99",
        "-q",
    )
    run = run_selftest(selftest_exe, lib, tmp_path, args[0], *args[1:], wrapper=wrapper)
    assert run.rc == rc, f"valgrind/selftest exit {run.rc} (99: valgrind found errors):\n{run.stderr[-4000:]}"
    assert run.ledger["sessions"] == 0
    if args[0] == "encode":  # the battery leaks three objects on purpose
        assert run.ledger["leaked"] == 0


# ------------------------------------------------ driver-strict rules
# One test per rule; docs/nvenc_emulator.md says which driver behaviour each stands for.


def _failed_setup(run: Run) -> dict:
    (setup,) = run.call("setup")
    return setup


def test_caps_are_a_real_h264_encoders_and_configurable(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, status: dict[str, int]
) -> None:
    assert emu.caps == {
        "width_min": 145,
        "height_min": 49,
        "width_max": 4096,
        "height_max": 4096,
        "custom_vbv": 1,
        "dyn_res_change": 1,
    }
    for size in ("144x240", "320x48"):  # one below NV_ENC_CAPS_WIDTH_MIN, one below HEIGHT_MIN
        run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--size", size)
        assert run.call("nvEncInitializeEncoder")[0]["status"] == status["NV_ENC_ERR_INVALID_PARAM"]
        assert "Frame Dimension less than the minimum supported value" in emu.last_error()
    assert (
        run_inprocess(selftest_so, lib, tmp_path, "encode", "--size", "146x50", "--pitch", "160").rc == 0
    )  # the smallest even size

    emu.set_caps(width_min=320, height_min=240, width_max=1920, height_max=1080)
    assert (emu.caps["width_min"], emu.caps["width_max"]) == (320, 1920)
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--size", "1922x1080")
    assert run.call("nvEncInitializeEncoder")[0]["status"] == status["NV_ENC_ERR_INVALID_PARAM"]
    assert "Frame Dimension greater than the maximum supported value" in emu.last_error()
    run = run_inprocess(
        selftest_so, lib, tmp_path, "encode", "--max", "1920x1080", "--frames", "2", "--reconfigure", "1:318x240"
    )
    assert run.call("nvEncReconfigureEncoder")[0]["status"] == status["NV_ENC_ERR_INVALID_PARAM"]

    emu.set_caps(custom_vbv=False)  # the other caps back to their defaults
    assert emu.caps["width_min"] == 145 and emu.caps["custom_vbv"] == 0
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--vbv", "166666")
    assert run.call("nvEncInitializeEncoder")[0]["status"] == status["NV_ENC_ERR_UNSUPPORTED_PARAM"]
    assert "NV_ENC_CAPS_SUPPORT_CUSTOM_VBV_BUF_SIZE is 0" in emu.last_error()
    emu.set_caps()
    assert run_inprocess(selftest_so, lib, tmp_path, "encode", "--vbv", "166666").rc == 0

    emu.set_caps(dyn_res_change=False)
    run = run_inprocess(
        selftest_so, lib, tmp_path, "encode", "--max", "640x480", "--frames", "2", "--reconfigure", "1:640x480"
    )
    assert run.call("nvEncReconfigureEncoder")[0]["status"] == status["NV_ENC_ERR_UNSUPPORTED_PARAM"]
    assert "NV_ENC_CAPS_SUPPORT_DYN_RES_CHANGE is 0" in emu.last_error()
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--frames", "2", "--reconfigure", "1:320x240:9000000")
    assert run.call("nvEncReconfigureEncoder")[0]["status"] == 0  # the same size still reconfigures

    with pytest.raises(ValueError, match="expected 1 <= min <= max <= 4096"):
        emu.set_caps(width_max=8192)
    emu.reset()
    assert emu.caps["dyn_res_change"] == 1 and emu.caps["custom_vbv"] == 1


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("host", "is host memory (CU_MEMORYTYPE_HOST)"),
        ("mempool", "stream-ordered pool memory"),
        ("device1", "is device memory of device 1; this session's context is on device 0"),
        ("context", "belongs to CUDA context 0xc0de0000"),
    ],
)
def test_registration_refuses_memory_a_driver_cannot_use(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, status: dict[str, int], kind: str, why: str
) -> None:
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--describe", kind)
    assert _failed_setup(run)["status"] == status["NV_ENC_ERR_RESOURCE_REGISTER_FAILED"]
    assert why in emu.last_error()
    assert emu.ledger()["registered"] == 0 and emu.ledger()["sessions"] == 0


@pytest.mark.parametrize("kind", ["device", "managed"])
def test_registration_accepts_device_memory_of_the_session(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, kind: str
) -> None:
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--describe", kind, "--frames", "2", "--eos")
    assert run.rc == 0 and len(run.frames) == 2
    decoded, _ = decode(run.stream)
    assert_exact(decoded[1], 320, 240, 1)


def test_pointer_descriptions_and_the_session_context(emu: Emulator) -> None:
    """The control API CI uses instead of cuPointerGetAttribute."""
    base = 0x7F00_0000_0000
    assert emu.pointer_info(base) is None  # undescribed: taken for the session's device memory
    emu.describe_pointer(base, 1 << 20, context=0xC0DE, buffer_id=7)
    want = {
        "kind": "device",
        "device": 0,
        "context": 0xC0DE,
        "mempool": False,
        "buffer_id": 7,
        "start": base,
        "size": 1 << 20,
    }
    assert emu.pointer_info(base + 4096) == want
    assert emu.pointer_info(base + (1 << 20)) is None  # one past the end
    emu.describe_pointer(base + 4096, 256, kind="host", mempool=True, buffer_id=8)  # overlaps: replaces the first
    assert emu.pointer_info(base) is None
    assert emu.pointer_info(base + 4096)["kind"] == "host"
    emu.forget_pointer(base + 4100)
    assert emu.pointer_info(base + 4096) is None
    with pytest.raises(KeyError, match="no described range"):
        emu.forget_pointer(base)
    with pytest.raises(ValueError, match="kind must be one of"):
        emu.describe_pointer(base, 16, kind="pinned")
    emu.describe_pointer(base, 16)
    emu.reset()
    assert emu.pointer_info(base) is None


def test_registration_checks_the_context_set_for_the_sessions(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, status: dict[str, int]
) -> None:
    # The self-test opens its sessions with a NULL device; memory of context 0xC0DE0000 is refused...
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--describe", "context")
    assert _failed_setup(run)["status"] == status["NV_ENC_ERR_RESOURCE_REGISTER_FAILED"]
    # ...unless that is the context the sessions are said to have
    emu.set_session_context(0xC0DE0000)
    assert run_inprocess(selftest_so, lib, tmp_path, "encode", "--describe", "context").rc == 0
    # a session on device 1: memory of device 1 (its context left 0: "the session's own") is
    # accepted, memory of context 0xC0DE0000 on device 0 is not
    emu.set_session_context(0xC0DE0000, device=1)
    assert run_inprocess(selftest_so, lib, tmp_path, "encode", "--describe", "device1").rc == 0
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--describe", "context")
    assert _failed_setup(run)["status"] == status["NV_ENC_ERR_RESOURCE_REGISTER_FAILED"]
    assert "device 0; this session's context is on device 1" in emu.last_error()
    emu.set_session_context(None)  # back to each session's own device (0 here)
    assert run_inprocess(selftest_so, lib, tmp_path, "encode", "--describe", "device1").rc != 0


@pytest.mark.parametrize(("size", "pitch"), [((852, 480), 852), ((852, 480), 856), ((1366, 768), 1368)])
def test_pitch_not_a_multiple_of_16_faults_and_poisons_the_session(
    selftest_so: ctypes.CDLL,
    lib: Path,
    emu: Emulator,
    tmp_path: Path,
    status: dict[str, int],
    size: tuple[int, int],
    pitch: int,
) -> None:
    w, h = size
    run = run_inprocess(
        selftest_so,
        lib,
        tmp_path,
        "encode",
        "--size",
        f"{w}x{h}",
        "--pitch",
        str(pitch),
        "--frames",
        "3",
        "--keep-going",
    )
    assert run.call("setup") == []  # the header's rule (a multiple of 4) lets it register
    (fault,) = run.call("nvEncEncodePicture")
    assert fault["frame"] == 0 and fault["status"] == status["NV_ENC_ERR_GENERIC"]
    # every later call on the session fails; the release calls still release their objects
    assert [u["status"] for u in run.call("unmap after failure")] == [status["NV_ENC_ERR_GENERIC"]]
    assert [m["status"] for m in run.call("map")] == [status["NV_ENC_ERR_GENERIC"]] * 2
    assert run.call("nvEncDestroyEncoder")[0]["status"] == 0
    assert "the session is unusable after an earlier fault (cudaErrorMisalignedAddress" in emu.last_error()
    assert run.frames == []
    ledger = emu.ledger()
    assert (ledger["pitch_faults"], ledger["poisoned_sessions"]) == (1, 1)
    assert ledger["sessions"] == 0 and ledger["leaked"] == 0 and ledger["encodes"] == 0


def test_pitch_rules_at_registration(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, status: dict[str, int]
) -> None:
    # 1366 bytes is no multiple of 4: the header's own rule refuses it at registration
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--size", "1366x768", "--pitch", "1366")
    assert _failed_setup(run)["status"] == status["NV_ENC_ERR_INVALID_PARAM"]
    assert "pitch 1366 is not a multiple of 4" in emu.last_error()
    assert emu.ledger()["pitch_faults"] == 0


def test_reserved_fields_must_be_zero(selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path) -> None:
    """The battery sets one reserved word in seven kinds of input structure (open, caps,
    initialize, H.264 config, register, H.264 picture params, and a reused lock)."""
    run = run_inprocess(selftest_so, lib, tmp_path, "api")
    checks = {line["check"]: line["ok"] for line in run.lines if "check" in line}
    for name in (
        "open: reserved1 not zero", "open: reserved error names the field",
        "caps: reserved not zero", "caps: reserved error names the field",
        "init: reserved not zero", "init: reserved error names the field",
        "init: H.264 config reserved not zero", "init: config reserved error names the field",
        "register: reserved2 not NULL", "register: reserved error names the field",
        "encode: H.264 pic params reserved not zero", "encode: reserved error names the field",
    ):  # fmt: skip
        assert checks[name] is True, name
    assert run.rc == 0 and emu.ledger()["reserved_field_errors"] == 7


def test_driver_owned_fields_are_scribbled(selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path) -> None:
    """A reused, unzeroed NV_ENC_LOCK_BITSTREAM carries what the driver wrote into it."""
    run = run_inprocess(selftest_so, lib, tmp_path, "api")
    checks = {line["check"]: line["ok"] for line in run.lines if "check" in line}
    assert checks["lock: the same structure again, not zeroed"] is True
    assert checks["lock: reuse error names reservedInternal"] is True
    assert checks["bitstream buffer: bitstreamBufferPtr is junk, it should not be used"] is True
    assert checks["lock: twice"] is True  # zeroed again, the structure is accepted (and the state checked)
    # the encode client zeroes its structures for every call: nothing is refused there
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--frames", "4", "--buffers", "2")
    assert run.rc == 0 and emu.ledger()["reserved_field_errors"] == 7


@pytest.mark.parametrize(("eos", "count"), [(False, 1), (True, 0)])
def test_ledger_unflushed_destroys(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, eos: bool, count: int
) -> None:
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--frames", "2", *(("--eos",) if eos else ()))
    assert run.rc == 0
    assert emu.ledger()["unflushed_destroys"] == count


@pytest.mark.parametrize(("args", "count"), [((), 0), (("--replace-at", "2"), 1), (("--forget-at", "2"), 1)])
def test_ledger_stale_registrations(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, args: tuple[str, ...], count: int
) -> None:
    """An encode through a registration whose allocation was freed, or replaced by another
    buffer at the same address, reads memory the registration no longer describes."""
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--describe", "device", "--frames", "4", "--eos", *args)
    assert run.rc == 0 and len(run.frames) == 4  # the driver does not notice; the ledger does
    assert emu.ledger()["stale_registrations"] == count


@pytest.mark.parametrize(("streams", "count"), [("live", 0), ("changed", 1)])
def test_ledger_dead_stream_pointers(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, streams: str, count: int
) -> None:
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", "--streams", streams, "--frames", "3", "--eos")
    assert run.call("nvEncSetIOCudaStreams")[0]["status"] == 0
    assert run.rc == 0
    assert emu.ledger()["dead_stream_pointers"] == count  # counted once per session


def test_ledger_null_session_calls(selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path) -> None:
    run_inprocess(selftest_so, lib, tmp_path, "encode", "--eos")
    assert emu.ledger()["null_session_calls"] == 0
    run = run_inprocess(
        selftest_so, lib, tmp_path, "api"
    )  # nvEncGetEncodeGUIDCount(NULL), nvEncGetLastErrorString(NULL)
    assert run.rc == 0 and emu.ledger()["null_session_calls"] == 2


@pytest.mark.parametrize(("leak", "count"), [(False, 0), (True, 1)])
def test_ledger_failed_open_leaks(
    selftest_so: ctypes.CDLL, lib: Path, emu: Emulator, tmp_path: Path, status: dict[str, int], leak: bool, count: int
) -> None:
    emu.set_unsupported_device(True)
    run = run_inprocess(selftest_so, lib, tmp_path, "encode", *(("--leak-failed-open",) if leak else ()))
    (opened,) = run.call("nvEncOpenEncodeSessionEx")
    assert opened["status"] == status["NV_ENC_ERR_UNSUPPORTED_DEVICE"] and opened["handle"] is True
    ledger = emu.ledger()
    assert ledger["failed_open_leaks"] == count and ledger["sessions"] == 0 and emu.sessions() == []
    emu.reset()
    assert emu.ledger()["failed_open_leaks"] == 0


# ------------------------------------------------------------- honest builds


def _broken_copy(src: Path, dst: Path, name: str) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    target = dst / name
    target.write_text(target.read_text() + "\nint this_does_not_compile(void) { return undeclared_name; }\n")


def test_a_broken_emulator_source_fails_the_test_instead_of_skipping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.nvenc_emulator import HERE

    _broken_copy(HERE, tmp_path / "src", "pointers.c")
    for ci in ("true", ""):  # with or without CI
        monkeypatch.setattr("tests.support.ci.IN_CI", ci == "true")
        with pytest.raises(
            pytest.fail.Exception, match="(?s)the NVENC emulator does not build: compiling .*undeclared_name"
        ):
            require_emulator(tmp_path / "src")


def test_a_broken_nvjpeg_emulator_source_fails_the_test(tmp_path: Path) -> None:
    from tests.nvjpegffi import emulator as nvjpeg_emulator

    if not nvjpeg_emulator.SOURCE.exists():
        pytest.fail(f"the nvJPEG emulator source is missing: {nvjpeg_emulator.SOURCE}")
    _broken_copy(nvjpeg_emulator.HERE, tmp_path / "src", "emulator.c")
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as info:
        nvjpeg_emulator.require_emulator(tmp_path / "src" / "emulator.c")
    if info.type is pytest.skip.Exception:  # only a missing header (no wheel here) may skip
        assert "cannot be built here" in str(info.value) and "undeclared_name" not in str(info.value)
        pytest.skip(str(info.value))
    assert "the nvJPEG emulator does not build: compiling" in str(info.value)


def test_a_missing_compiler_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.nvenc_emulator import HERE

    monkeypatch.setenv("CC", "no-such-compiler-rfb")
    monkeypatch.setattr("tests.support.ci.IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="cannot be built here: no C compiler: 'no-such-compiler-rfb'"):
        require_emulator(HERE)
    monkeypatch.setattr("tests.support.ci.IN_CI", True)  # in CI a missing requirement fails
    with pytest.raises(pytest.fail.Exception, match="required in CI: the NVENC emulator cannot be built here"):
        require_emulator(HERE)
