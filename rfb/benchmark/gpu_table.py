"""The ``gpu`` section's table: one fixed-width line per (size, GPU route)."""

from __future__ import annotations

from typing import Any


def format_table(rows: list[dict[str, Any]]) -> str:
    """Fixed-width table: one line per (size, GPU route), medians in ms.

    "CPU tot" is the CPU route from a host frame, "CPU+dl" the same route fed the
    device frame (one download first); each speed-up divides one of them by "GPU tot".
    The first "CPU ms" is the GPU route's process CPU time per frame, the second the
    CPU route's (from a host frame).
    """
    header = (
        f"{'size':>10} {'route':<15} {'engine':<9} {'RGB->NV12':>9} {'encode':>8} {'GPU tot':>8} {'p99':>7} "
        f"{'CPU ms':>7} {'CPU-origin route':<17} {'CPU tot':>8} {'p99':>7} {'speedup':>7} "
        f"{'CPU+dl':>8} {'speedup':>7} {'CPU ms':>7} {'KB/frame':>9} {'PSNR dB':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        score = f"{r['psnr_db']:.2f}" if r["psnr_db"] is not None else "-"
        convert = f"{r['convert_gpu']['median_ms']:.3f}" if r["convert_gpu"] else "-"
        if "cpu_total" in r:
            cpu = (
                f"{r['cpu_origin_route']:<17} {r['cpu_total']['median_ms']:>8.2f} {r['cpu_total']['p99_ms']:>7.2f} "
                f"{r['speedup']:>6.2f}x"
            )
        else:
            cpu = f"{r['cpu_origin_route'] + ' (n/a)':<17} {'-':>8} {'-':>7} {'-':>7}"
        if "cpu_device_total" in r:
            device = f"{r['cpu_device_total']['median_ms']:>8.2f} {r['speedup_device']:>6.2f}x"
        else:
            device = f"{'-':>8} {'-':>7}"
        cpu_ms = _cell(r.get("cpu_ms"))
        cpu_route_ms = _cell(r.get("cpu_route_cpu_ms"))
        lines.append(
            f"{r['width']}x{r['height']:<5} {r['route']:<15} {r['engine']:<9} {convert:>9} "
            f"{r['encode']['median_ms']:>8.2f} {r['gpu_total']['median_ms']:>8.2f} {r['gpu_total']['p99_ms']:>7.2f} "
            f"{cpu_ms:>7} {cpu} {device} {cpu_route_ms:>7} {r['kb_per_frame']:>9.1f} {score:>8}"
        )
    if not rows:
        lines.append("(no GPU route could run here; see the reasons below)")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
