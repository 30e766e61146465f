"""``python -m rfb.benchmark.h264cuda_stages`` on the CPU build of the kernels, and its refusal without a GPU."""

from __future__ import annotations

import subprocess
import sys

from rfb.benchmark import h264cuda_stages, patterns
from rfb.colorspace import rgb_to_nv12_host
from rfb.h264cuda.encoder import CudaEncoder
from rfb.h264cuda.kernels import Launcher
from tests.h264cuda.stages import stages_for_tests
from tests.support.kernels_cpu import CpuLauncher


class CountingLauncher:
    """Counts launches by kernel name, to check the benchmark's own count against."""

    def __init__(self, inner: Launcher) -> None:
        self.xp = inner.xp
        self._inner = inner
        self.by_name: dict[str, int] = {}

    def launch(self, name: str, *args: object) -> None:
        self.by_name[name] = self.by_name.get(name, 0) + 1
        self._inner.launch(name, *args)  # type: ignore[arg-type]


def test_every_launch_is_counted_and_timed_per_picture_kind() -> None:
    stages, missing = stages_for_tests()
    assert not missing
    counting = CountingLauncher(CpuLauncher())
    reports = h264cuda_stages.run(counting, 64, 48, 5, idr_every=3, stages=stages)
    assert [(r.kind, r.pictures) for r in reports] == [("idr", 2), ("p", 3)]
    # The warm-up encodes pictures 0 and 1 as an IDR and a P picture; then both passes
    # launch the same kernels for the same pictures.
    warm = CountingLauncher(CpuLauncher())
    encoder = CudaEncoder(warm, 64, 48, 30, 8_000_000, stages=stages)
    for i in range(2):
        nv12 = rgb_to_nv12_host(patterns.make("scene", 64, 48, i))
        encoder.encode(nv12[:48], nv12[48:])
    idr, p = reports
    total = sum(r.launches * r.pictures for r in reports)
    assert round(total) * 2 + sum(warm.by_name.values()) == sum(counting.by_name.values())
    for report in reports:
        assert sum(k.launches for k in report.kernels) == report.launches
        assert {k.name for k in report.kernels} <= set(counting.by_name)
        assert all(k.gpu_ms >= 0 for k in report.kernels) and report.wall_ms > 0
        assert {"encode (whole)", "entropy"} <= set(report.stage_host_ms)
    assert "I decisions" in idr.stage_host_ms and "P decisions" in p.stage_host_ms
    assert {"pad_luma", "pad_chroma"} <= {k.name for k in idr.kernels}
    text = h264cuda_stages.format_report(reports, 64, 48, "CPU build")
    assert "IDR (2 pictures)" in text and "pad_luma" in text


def test_without_a_gpu_it_says_what_is_missing_and_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rfb.benchmark.h264cuda_stages", "--frames", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode == 0:  # a machine with a GPU and the route: it ran
        assert "launches per picture" in result.stdout
        return
    assert result.returncode == 2, result.stderr
    assert "needs the h264_cuda route" in result.stderr and "Traceback" not in result.stderr
