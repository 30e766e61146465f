"""The per-frame CUDA calls of ``encode()``, and the overhead benchmark, on the stand-in libcuda.

Without a GPU, ``PrimaryContext`` (cuda-python) runs in a fresh process against the
test suite's stand-in libcuda (tests/support/standin_libcuda.c), which counts every
call: the encoder must push its context only where it is not current already, ask the
allocation id once per frame, and synchronise a stream the array names once per frame,
inside its one push. The benchmark
(``rfb.benchmark.encode_overhead`` through ``tests.nvencffi.bench_overhead``) is run
briefly to show that it works; nothing here asserts a time.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.nvenc_header import ROOT

FRAMES = 5


@pytest.fixture(scope="module")
def standin_env(emulator_path: object) -> dict[str, str]:
    pytest.importorskip("cuda.bindings", reason="cuda-python is what PrimaryContext drives")
    from tests.nvencffi.bench_overhead import standin_env

    return standin_env()


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_encode_pushes_the_context_only_where_it_is_not_current(standin_env: dict[str, str]) -> None:
    counts = json.loads(_run(standin_env, "-m", "tests.nvencffi.standin_calls").stdout)
    per_frame = {
        case: {name: n / FRAMES for name, n in calls.items()}
        for case, calls in counts.items()
        if case not in ("stats", "ledger")
    }
    once = {"cuCtxGetCurrent": 1, "cuPointerGetAttribute": 1, "cuStreamSynchronize": 0}
    assert per_frame["not current"] == {**once, "cuCtxPushCurrent": 1, "cuCtxPopCurrent": 1}
    assert per_frame["current"] == {**once, "cuCtxPushCurrent": 0, "cuCtxPopCurrent": 0}
    # a named stream is synchronised inside the encode's push: no second push, one more check
    assert per_frame["not current, stream named"] == {
        **once,
        "cuCtxGetCurrent": 2,
        "cuStreamSynchronize": 1,
        "cuCtxPushCurrent": 1,
        "cuCtxPopCurrent": 1,
    }
    assert per_frame["current, stream named"] == {
        **once,
        "cuCtxGetCurrent": 2,
        "cuStreamSynchronize": 1,
        "cuCtxPushCurrent": 0,
        "cuCtxPopCurrent": 0,
    }
    assert counts["stats"]["misses"] == 1 and counts["stats"]["hits"] == 4 * FRAMES
    assert counts["ledger"] == {"sessions": 0, "errors": 0, "reserved_field_errors": 0}


@pytest.mark.parametrize("context", ["null", "standin"])
def test_the_overhead_benchmark_runs(standin_env: dict[str, str], context: str) -> None:
    out = _run(
        standin_env, "-m", "tests.nvencffi.bench_overhead", "--context", context, "--batch", "5", "--rounds", "2"
    ).stdout
    for row in ("encode()", "frame interface", "context push+pop", "allocation id", "NVENC calls", "binding's Python"):
        assert row in out, out
    assert ("cuCtxGetCurrent (cuda-python)" in out) == (context == "standin"), out


def test_the_benchmark_command_says_when_there_is_no_cuda() -> None:
    """Run alone on a machine without a driver it names the reason and exits 1."""
    proc = subprocess.run(
        [sys.executable, "-m", "rfb.benchmark.encode_overhead", "--batch", "5", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode == 0:
        pytest.skip("this machine has CUDA: the command measured instead")
    assert proc.returncode == 1 and "no CUDA here" in proc.stderr, proc.stderr
