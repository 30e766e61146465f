"""``probe()`` answers by encoding one realistic frame and checking it is a decodable IDR.

Each step that can fail on a first contact (library, CUDA, session, caps, configure,
encode, output) is made to fail in turn; the result names the step and keeps the
driver's own text, and nothing is left behind.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import nvencffi
from nvencffi.probe import PROBE_SIZE, check_idr, nal_types
from tests.support.nvenc_fixtures import assert_released

ROOT = Path(__file__).resolve().parents[2]


def test_probe_encodes_one_720p_frame_and_releases_everything(emulator) -> None:
    context = nvencffi.NullContext()
    result = nvencffi.probe(context=context)
    assert result.available, result.reason
    assert (result.step, result.size, result.max_api_version) == (None, PROBE_SIZE, (13, 0))
    assert result.caps is not None and result.caps.min_size == (145, 49)
    ledger = emulator.ledger()
    assert (ledger["encodes"], ledger["idr_frames"], ledger["sessions_opened"]) == (1, 1, 1)
    assert context.allocations == 0
    assert_released(emulator)


@pytest.mark.parametrize(
    ("caps", "size"),
    [
        ({"width_min": 1921, "height_min": 1081}, (1922, 1082)),
        ({"width_max": 1024, "height_max": 576}, (1024, 576)),
    ],
)
def test_probe_encodes_at_the_nearest_size_the_caps_allow(emulator, caps, size) -> None:
    emulator.set_caps(**caps)
    result = nvencffi.probe(context=nvencffi.NullContext())
    assert result.available, result.reason
    assert result.size == size
    assert emulator.ledger()["sessions_opened"] == 2  # the first asked 1280x720 and learnt the caps
    assert_released(emulator)


@pytest.mark.parametrize(
    ("function", "step"),
    [
        ("nvEncOpenEncodeSessionEx", "session"),
        ("nvEncGetEncodeCaps", "caps"),
        ("nvEncInitializeEncoder", "configure"),
        ("nvEncRegisterResource", "encode"),
        ("nvEncEncodePicture", "encode"),
        ("nvEncLockBitstream", "encode"),
    ],
)
def test_probe_names_the_step_that_failed_with_the_drivers_text(emulator, function, step) -> None:
    emulator.inject_fault(function, "NV_ENC_ERR_GENERIC")
    context = nvencffi.NullContext()
    result = nvencffi.probe(context=context)
    assert result.available is False
    assert result.step == step
    assert "NV_ENC_ERR_GENERIC" in result.reason and function in result.reason
    if function != "nvEncOpenEncodeSessionEx":  # a failed open may have no session to ask
        assert result.detail and "injected fault" in result.detail
    assert context.allocations == 0
    assert_released(emulator)


def test_probe_on_a_gpu_without_an_engine_says_so(emulator) -> None:
    emulator.set_unsupported_device(True)
    result = nvencffi.probe(context=nvencffi.NullContext())
    assert (result.available, result.step) == (False, "session")
    assert "has no NVENC video encode engine" in result.reason
    assert_released(emulator)


def test_probe_checks_what_came_out(emulator, monkeypatch) -> None:
    from nvencffi import encoder as encoder_module

    real_encode = encoder_module.NvencEncoder.encode

    def truncated(self, frame, **kwargs):
        data = real_encode(self, frame, **kwargs)
        return data[: data.find(b"\x00\x00\x01\x65")]  # SPS and PPS, no IDR slice

    monkeypatch.setattr(encoder_module.NvencEncoder, "encode", truncated)
    result = nvencffi.probe(context=nvencffi.NullContext())
    assert (result.available, result.step) == (False, "output")
    assert "has no IDR slice" in result.reason
    assert_released(emulator)


def test_check_idr_reads_nal_units_and_decodes_with_pyav(monkeypatch) -> None:
    sps_pps_only = b"\x00\x00\x00\x01\x67\x42\x00\x1e\x00\x00\x00\x01\x68\xce\x38\x80"
    assert nal_types(sps_pps_only) == [7, 8]
    assert "has no IDR slice" in check_idr(sps_pps_only, (1280, 720))
    garbage_idr = sps_pps_only + b"\x00\x00\x01\x65\x88\x84\x00\xff"
    assert "FFmpeg" in check_idr(garbage_idr, (1280, 720))
    monkeypatch.setitem(sys.modules, "av", None)  # no PyAV: the NAL structure is all we check
    assert check_idr(garbage_idr, (1280, 720)) is None


def test_probe_without_cuda_python_says_what_to_install(emulator, monkeypatch) -> None:
    for name in ("cuda", "cuda.bindings", "cuda.bindings.driver"):
        monkeypatch.setitem(sys.modules, name, None)
    result = nvencffi.probe()
    assert (result.available, result.step) == (False, "cuda")
    assert "cuda-python is not installed" in result.reason and "pip install cuda-python" in result.reason
    assert emulator.ledger()["sessions_opened"] == 0


def test_import_nvencffi_needs_no_cuda_python() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'cuda' or name.startswith('cuda.'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import nvencffi\n"
        "print(nvencffi.probe().step)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "NVENCFFI_LIBRARY": "/nonexistent/libnvidia-encode.so.1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["library"]
