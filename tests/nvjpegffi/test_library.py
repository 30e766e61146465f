"""Finding, loading and version-checking libnvjpeg; the probe's answers.

The real library of the pinned nvidia-nvjpeg wheel loads on any machine (it links the
CUDA runtime statically), so its discovery, its version and its refusal to start
without a GPU are tested for real here; the emulator stands in where a test needs to
choose what the library answers.
"""

from __future__ import annotations

import ctypes.util
import importlib
from pathlib import Path

import pytest

import nvjpegffi
from nvjpegffi import errors, library
from nvjpegffi.library import ENV_LIBRARY
from rfb.gpu import gpu_available
from tests.nvjpegffi.emulator import Emulator


def _no_gpu() -> None:
    reason = gpu_available()
    if reason is None:
        pytest.skip("a CUDA device is present: the no-GPU answers cannot be seen here")


def test_the_real_library_loads_and_reports_its_version(real_library: Path, use_library) -> None:
    use_library(real_library)
    lib = nvjpegffi.load_library()
    assert lib.version == (13, 0, 4)  # the pinned wheel's nvjpeg.h says 13.0.4 too
    assert lib.found_by == f"${ENV_LIBRARY}" and lib.path == str(real_library)
    assert lib.has("nvjpegEncode") and lib.has("nvjpegEncoderStateCreateWithBackend")
    assert nvjpegffi.load_library() is lib  # cached for the process


def test_the_wheel_is_found_wherever_sys_path_reaches(real_library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # real_library is <cache>/nvidia/cu13/lib/libnvjpeg.so.13: <cache> plays a --target install on PYTHONPATH
    site = real_library.parents[3]
    monkeypatch.delenv(ENV_LIBRARY, raising=False)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    assert library.wheel_library() == real_library
    assert library.find_library() == (str(real_library), "the nvidia-nvjpeg wheel")


def test_without_a_wheel_cuda_pathfinder_is_asked_and_its_answer_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from cuda import pathfinder

    monkeypatch.delenv(ENV_LIBRARY, raising=False)
    monkeypatch.setattr(library, "wheel_library", lambda: None)
    try:
        found = pathfinder.load_nvidia_dynamic_lib("nvjpeg")
    except pathfinder.DynamicLibNotFoundError:
        with pytest.raises(nvjpegffi.NvjpegUnavailable, match="libnvjpeg was not found") as info:
            library.find_library()
        assert "pip install nvidia-nvjpeg" in str(info.value) and ENV_LIBRARY in str(info.value)
    else:  # a CUDA toolkit or conda provides one here
        assert library.find_library() == (str(found.abs_path), "cuda-pathfinder")


def test_a_missing_file_is_unavailable_and_not_cached(real_library: Path, use_library) -> None:
    use_library("/nonexistent/libnvjpeg.so.13")
    with pytest.raises(nvjpegffi.NvjpegUnavailable, match="could not load libnvjpeg '/nonexistent/libnvjpeg.so.13'"):
        nvjpegffi.load_library()
    use_library(real_library)
    assert nvjpegffi.load_library().version[0] == 13


def test_a_library_that_is_not_nvjpeg_is_refused(use_library) -> None:
    libc = ctypes.util.find_library("c")
    assert libc is not None
    use_library(libc)
    with pytest.raises(nvjpegffi.NvjpegUnavailable, match="has no nvjpegGetProperty: it is not a usable libnvjpeg"):
        nvjpegffi.load_library()


@pytest.mark.parametrize(("major", "accepted"), [(13, True), (12, True), (11, False), (14, False)])
def test_only_major_versions_13_and_12_are_accepted(emulator: Emulator, major: int, accepted: bool) -> None:
    emulator.set_version(major, 2, 1)
    if accepted:
        assert nvjpegffi.load_library().version == (major, 2, 1)
    else:
        with pytest.raises(
            nvjpegffi.NvjpegUnavailable, match=rf"is nvJPEG {major}\.2\.1; nvjpegffi supports major versions 13 and 12"
        ):
            nvjpegffi.load_library()


def test_a_failing_version_query_is_unavailable(emulator: Emulator) -> None:
    emulator.inject("nvjpegGetProperty", errors.NvjpegStatus.NVJPEG_STATUS_INTERNAL_ERROR)
    with pytest.raises(nvjpegffi.NvjpegUnavailable, match="nvjpegGetProperty .* failed: NVJPEG_STATUS_INTERNAL_ERROR"):
        nvjpegffi.load_library()


def test_without_a_gpu_the_real_library_refuses_to_start_naming_the_status(
    real_library: Path, use_library, null_context: nvjpegffi.NullContext
) -> None:
    _no_gpu()
    use_library(real_library)
    with pytest.raises(nvjpegffi.NvjpegError) as info:
        nvjpegffi.JpegEncoder(64, 48, context=null_context)  # no CUDA context: nvJPEG's runtime finds no device
    exc = info.value
    assert exc.function == "nvjpegCreateSimple" and exc.status is not None
    assert str(exc) == f"nvjpegCreateSimple failed: {exc.status.name} ({exc.code})"
    assert type(exc) is errors.ERROR_CLASSES[exc.code]


def test_without_a_gpu_the_probe_says_cuda_is_missing(real_library: Path, use_library) -> None:
    _no_gpu()
    use_library(real_library)
    result = nvjpegffi.probe()
    assert not result.available and result.version == (13, 0, 4) and result.library == str(real_library)
    assert result.reason is not None and result.reason.startswith("nvJPEG needs a CUDA driver and device")


def test_the_probe_without_any_library_gives_the_reason(use_library) -> None:
    use_library("/nonexistent/libnvjpeg.so.13")
    result = nvjpegffi.probe()
    assert not result.available and result.version is None and "could not load libnvjpeg" in (result.reason or "")


def test_the_probe_opens_and_releases_an_encoder(emulator: Emulator, null_context: nvjpegffi.NullContext) -> None:
    result = nvjpegffi.probe(context=null_context)
    assert result.available and result.reason is None and result.version == (13, 0, 4)
    assert emulator.count("created") == 1 and emulator.live() == {"handles": 0, "states": 0, "params": 0}


def test_the_probe_reports_a_failed_start_with_the_status(
    emulator: Emulator, null_context: nvjpegffi.NullContext
) -> None:
    emulator.inject("nvjpegEncoderStateCreate", errors.NvjpegStatus.NVJPEG_STATUS_ARCH_MISMATCH)
    result = nvjpegffi.probe(context=null_context)
    assert not result.available
    assert (
        "could not start an encoder on CUDA device 0: nvjpegEncoderStateCreate failed: NVJPEG_STATUS_ARCH_MISMATCH (7)"
        in (result.reason or "")
    )
    assert emulator.live() == {"handles": 0, "states": 0, "params": 0}
