"""Where the host time of ``nvencffi.NvencEncoder.encode()`` goes: ``python -m rfb.benchmark.encode_overhead``.

Issue 15 asks for less than 10 us of host work per ``encode()`` on the GPU machine's CPU.
One figure cannot say what to cut, so this splits a call into its parts, each timed on
its own with the same encoder, frame and context (microseconds per call):

- ``encode()``: the whole call;
- ``frame interface``: reading the array's ``__cuda_array_interface__`` into a FrameView
  (the encoder's ``FrameReader``: an interface equal to the last one is not parsed again);
- ``context push+pop``: the encoder's ``with context.pushed()`` (every row runs with the
  context current, as after a framework made it so: then nothing is pushed);
- ``allocation id``: ``context.buffer_id(pointer)``, the per-frame question that catches
  a registration whose memory was freed and reused (the context current);
- ``stream synchronize``: only when the frame names a stream other than the encoder's;
- ``NVENC calls``: map, encode, lock, copy-out, unlock, unmap and their parameter structs
  (the encoder's own ``_encode_input``): the floor of any binding;
- ``binding's Python``: ``encode()`` less the rows above (cache lookup, checks, bookkeeping).

Side rows, not part of the sum: five bare cffi ABI calls (libc's ``memcmp`` of 0 bytes:
what the NVENC calls cost in cffi alone, whatever the driver does), and what could
replace a part: ``cuCtxGetCurrent``
and a push and a pop (what ``pushed()`` costs when the context is not current), the allocation id
through a cffi ABI binding of libcuda instead of cuda-python, ``parse_frame`` on every
call (before the reader's memo), and a fresh ``ffi.new`` of
``NV_ENC_PIC_PARAMS`` (the earlier struct preparation) against the template copy now used.

Rows take turns batch by batch and each keeps its best batch, so a machine that gets
busy slows every row alike and the least disturbed batch is what is reported.

Run alone, it takes device ``--device``'s primary context and a device NV12 buffer it
allocates (256-byte pitch, handed over as a fixed ``__cuda_array_interface__``). With real
NVENC the encode rows include the engine's own time (``nvEncLockBitstream`` waits for
it); host work alone needs the NVENC emulator's no-pixel mode, which the test suite's
``python -m tests.nvencffi.bench_overhead`` switches on before calling :func:`measure`.
Where no encoder opens (the H100/H200 have no NVENC engine) the CUDA rows are still
measured and the reason is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from rfb.benchmark import machine
from rfb.benchmark.fanout import parse_size
from rfb.benchmark.nvenc_latency import FixedInterface
from rfb.benchmark.sections import write_json_report

ENCODE = "encode()"
PARTS = ("frame interface", "context push+pop", "allocation id", "stream synchronize", "NVENC calls")
PYTHON = "binding's Python"


def best_per_call_us(rows: dict[str, Callable[[], object]], *, batch: int, rounds: int) -> dict[str, float]:
    """Microseconds per call of each row: rows take turns, ``batch`` calls each, for
    ``rounds`` rounds; each row's fastest batch counts."""
    best = dict.fromkeys(rows, float("inf"))
    for _ in range(rounds):
        for name, fn in rows.items():
            t0 = time.perf_counter_ns()
            for _ in range(batch):
                fn()
            best[name] = min(best[name], (time.perf_counter_ns() - t0) / batch / 1000)
    return best


def cuda_rows(context: Any, pointer: int, stream: int | None) -> dict[str, Callable[[], object]]:
    """The CUDA parts of a frame, as the encoder makes them (``context.pushed()`` held by
    the caller for the allocation id and the synchronize)."""
    rows: dict[str, Callable[[], object]] = {}

    def push_pop() -> None:
        with context.pushed():
            pass

    rows["context push+pop"] = push_pop
    rows["allocation id"] = lambda: context.buffer_id(pointer)
    if stream is not None:
        rows["stream synchronize"] = lambda: context.synchronize_stream(stream)
    return rows


def side_rows(context: Any, pointer: int) -> dict[str, Callable[[], object]]:
    """What a part would cost done another way (see the module's docstring)."""
    from nvencffi._ffi import ffi

    pic_type = ffi.typeof("NV_ENC_PIC_PARAMS *")
    template, work = ffi.new(pic_type), ffi.new(pic_type)
    size = ffi.sizeof("NV_ENC_PIC_PARAMS")
    rows: dict[str, Callable[[], object]] = {
        "NV_ENC_PIC_PARAMS: ffi.new (before)": lambda: ffi.new(pic_type),
        "NV_ENC_PIC_PARAMS: template memmove (now)": lambda: ffi.memmove(work, template, size),
    }
    libc = _cffi_libc()
    if libc is not None:  # what cffi's ABI mode costs per call, whatever the callee does
        memcmp, a, b = libc
        rows["5 bare cffi ABI calls (libc memcmp of 0 bytes)"] = lambda: (
            memcmp(a, b, 0),
            memcmp(a, b, 0),
            memcmp(a, b, 0),
            memcmp(a, b, 0),
            memcmp(a, b, 0),
        )
    driver = getattr(context, "_driver", None)
    if driver is not None:  # a PrimaryContext: cuda-python underneath
        rows["cuCtxGetCurrent (cuda-python)"] = driver.cuCtxGetCurrent
        handle = context._context

        def push_pop_always() -> None:
            driver.cuCtxPushCurrent(handle)
            driver.cuCtxPopCurrent()

        rows["cuCtxPushCurrent + cuCtxPopCurrent (cuda-python)"] = push_pop_always
        libcuda = _cffi_libcuda()
        if libcuda is not None:
            cffi_ffi, lib = libcuda
            out = cffi_ffi.new("unsigned long long *")
            call = lib.cuPointerGetAttribute
            rows["allocation id via cffi ABI libcuda"] = lambda: call(out, 7, pointer)  # 7: BUFFER_ID
            current = cffi_ffi.new("void **")
            rows["cuCtxGetCurrent via cffi ABI libcuda"] = lambda: lib.cuCtxGetCurrent(current)
            cffi_handle = cffi_ffi.cast("void *", context.handle)

            def cffi_push_pop() -> None:
                lib.cuCtxPushCurrent_v2(cffi_handle)
                lib.cuCtxPopCurrent_v2(current)

            rows["cuCtxPushCurrent + cuCtxPopCurrent via cffi ABI libcuda"] = cffi_push_pop
    return rows


def _cffi_libc() -> tuple[Any, Any, Any] | None:
    """libc's memcmp through a cffi ABI binding, and two pointers for it (None: no libc found)."""
    import cffi

    local = cffi.FFI()
    local.cdef("int memcmp(void *a, void *b, size_t n);")
    try:
        libc = local.dlopen(None)
    except OSError:
        return None
    a, b = local.new("char[8]"), local.new("char[8]")
    return libc.memcmp, local.cast("void *", a), local.cast("void *", b)


def _cffi_libcuda() -> tuple[Any, Any] | None:
    """A two-function cffi ABI binding of the libcuda already loaded (None where it cannot open)."""
    import cffi

    local = cffi.FFI()
    local.cdef(
        """
        int cuPointerGetAttribute(void *data, int attribute, unsigned long long ptr);
        int cuCtxGetCurrent(void **ctx);
        int cuCtxPushCurrent_v2(void *ctx);
        int cuCtxPopCurrent_v2(void **ctx);
        """
    )
    try:
        return local, local.dlopen("libcuda.so.1")
    except OSError:
        return None


def measure(encoder: Any, frame: Any, *, batch: int = 2000, rounds: int = 15) -> dict[str, Any]:
    """The parts of ``encoder.encode(frame)`` in microseconds per call (see the module's docstring).

    ``frame`` must already have been encoded once (registered): every row then takes
    the per-frame path. Rows that need the context current get it pushed around them,
    as ``encode()`` has it.
    """
    from nvencffi.frames import parse_frame

    context = encoder._context
    view = parse_frame(frame)
    stream = view.stream if view.stream is not None and view.stream != encoder._cuda_stream else None
    with context.pushed():
        handle, pitch, key = encoder._inputs.resolve(view, encoder._cuda_stream)
        rows: dict[str, Callable[[], object]] = {
            ENCODE: lambda: encoder.encode(frame),
            "frame interface": lambda: encoder._reader.read(frame),
            **cuda_rows(context, view.pointer, stream),
            "NVENC calls": lambda: encoder._encode_input(handle, pitch, key, False),
        }
        side = {
            "parse_frame, parsed every call (before)": lambda: parse_frame(frame),
            **side_rows(context, view.pointer),
        }
        times = best_per_call_us({**rows, **side}, batch=batch, rounds=rounds)
    parts = {name: times[name] for name in PARTS if name in times}
    result: dict[str, Any] = {ENCODE: times[ENCODE], **parts}
    result[PYTHON] = times[ENCODE] - sum(parts.values())
    result["side"] = {name: times[name] for name in side}
    return result


def format_result(result: dict[str, Any]) -> str:
    lines = [f"{name:<52} {value:8.2f} us" for name, value in result.items() if name != "side"]
    lines.append("for comparison (not in the sum):")
    lines += [f"  {name:<50} {value:8.2f} us" for name, value in result["side"].items()]
    return "\n".join(lines)


def _device_frame(context: Any, width: int, height: int) -> tuple[int, FixedInterface]:
    """A device NV12 buffer from the context (256-byte pitch), as a fixed interface."""
    pitch = -(-width // 256) * 256
    rows = height * 3 // 2
    pointer: int = context.allocate(pitch * rows)
    context.memset(pointer, 128, pitch * rows)
    return pointer, FixedInterface(None, pointer, (rows, width), (pitch, 1))


def main(argv: Sequence[str] | None = None) -> int:
    import nvencffi

    p = argparse.ArgumentParser(prog="python -m rfb.benchmark.encode_overhead", description=__doc__.split("\n")[0])
    p.add_argument("--size", type=parse_size, default=(1280, 720), help="WxH of the NV12 frame (default 1280x720)")
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--batch", type=int, default=2000, help="calls per batch (default 2000)")
    p.add_argument("--rounds", type=int, default=15, help="batches per row (default 15)")
    p.add_argument("--json", dest="json_path", help="also write the figures here")
    args = p.parse_args(argv)
    width, height = args.size
    try:
        context = nvencffi.PrimaryContext(args.device)
    except nvencffi.NvencUnavailable as exc:
        print(f"no CUDA here: {exc}", file=sys.stderr)
        return 1
    report: dict[str, Any] = {"machine": machine.describe(), "size": f"{width}x{height}"}
    try:
        pointer, frame = _device_frame(context, width, height)
        try:
            try:
                encoder = nvencffi.NvencEncoder(width, height, context=context)
            except nvencffi.NvencUnavailable as exc:
                print(f"no encoder opens here ({exc}); the CUDA parts alone:")
                with context.pushed():
                    times = best_per_call_us(
                        {**cuda_rows(context, pointer, None), **side_rows(context, pointer)},
                        batch=args.batch,
                        rounds=args.rounds,
                    )
                report["cuda_only_us"] = times
                print("\n".join(f"{name:<52} {value:8.2f} us" for name, value in times.items()))
            else:
                with encoder:
                    encoder.encode(frame)
                    result = measure(encoder, frame, batch=args.batch, rounds=args.rounds)
                report["us_per_call"] = result
                print(format_result(result))
        finally:
            context.free(pointer)
    finally:
        context.close()
    if args.json_path:
        write_json_report(args.json_path, "rfb.benchmark.encode_overhead", argv, **report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
