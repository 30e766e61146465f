"""Facts about the real driver that the docs quote (run on the GPU machine; not a test).

    python -m tests.nvencffi.explore_real_driver

Prints the driver and NVENC API versions, which function-table slots are filled, and
what nvEncOpenEncodeSessionEx does on this GPU: its status, whether it writes a session
handle on failure, and whether nvEncGetLastErrorString is safe to call afterwards (each
risky call runs in a forked child so a crash is reported instead of ending the run).
"""

from __future__ import annotations

import os

from nvencffi import _api
from nvencffi._ffi import ffi
from nvencffi.cuda import PrimaryContext
from nvencffi.errors import NvencStatus
from nvencffi.library import load_library


def in_child(label: str, fn) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            text = repr(fn())
        except BaseException as exc:  # report anything, the parent prints it
            text = f"raised {exc!r}"
        os.write(write, text.encode()[:4000])
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 4096):
        data += chunk
    _, status = os.waitpid(pid, 0)
    outcome = data.decode() if os.WIFEXITED(status) else f"child died (signal {os.WTERMSIG(status)})"
    print(f"{label}: {outcome}")


def main() -> None:
    from cuda.bindings import driver

    lib = load_library()
    print("library:", lib.path, "max NVENC API:", lib.max_api_version)
    _, version = driver.cuDriverGetVersion()
    print("CUDA driver API version:", version)
    empty = [
        n
        for n, _ in ffi.typeof("NV_ENCODE_API_FUNCTION_LIST").fields
        if n.startswith("nvEnc") and getattr(lib.functions, n) == ffi.NULL
    ]
    print("empty function-table slots:", empty or "none")
    ctx = PrimaryContext(0)
    print("GPU:", ctx.gpu_name, f"context handle: 0x{ctx.handle:x}")
    params = ffi.new("NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS *")
    params.version = _api.OPEN_ENCODE_SESSION_EX_PARAMS_VER
    params.deviceType = 1
    params.device = ffi.cast("void *", ctx.handle)
    params.apiVersion = _api.API_VERSION
    out = ffi.new("void **", ffi.cast("void *", 0x1234))  # sentinel: is it overwritten?
    with ctx.pushed():
        status = lib.nvEncOpenEncodeSessionEx(params, out)
    handle = int(ffi.cast("uintptr_t", out[0]))
    print(
        f"nvEncOpenEncodeSessionEx: {NvencStatus(status).name} ({status}); handle written: 0x{handle:x}"
        + (" (sentinel untouched)" if handle == 0x1234 else "")
    )

    def last_error(h):
        text = lib.nvEncGetLastErrorString(ffi.cast("void *", h))
        return None if text == ffi.NULL else ffi.string(text).decode(errors="replace")

    if status and handle not in (0, 0x1234):
        in_child("nvEncGetLastErrorString(returned handle)", lambda: last_error(handle))
    in_child("nvEncGetLastErrorString(NULL)", lambda: last_error(0))
    if status == 0:
        with ctx.pushed():
            print("destroy:", lib.nvEncDestroyEncoder(out[0]))
    ctx.close()


if __name__ == "__main__":
    main()
