"""Device memory from every framework installed, for tests of what a route does with it.

A route meets CUDA memory from many allocators, and a driver may treat them apart:
CuPy's default pool (``cudaMalloc``), CuPy's stream-ordered ``MemoryAsyncPool``
(``cudaMallocAsync``; NVENC is reported to refuse registering such memory), PyTorch's
caching allocator, and JAX (XLA's allocator; its arrays are never views). An
:class:`Allocator` copies packed host pixels into new memory of one of them, with
tight rows or padded ones (a view ``[:, :W]`` of a wider allocation, as a pitched
allocation or a crop is), so that a test can hand the same pixels to a route from each.

Each framework is imported only when its allocator is asked for; where one cannot run,
its :class:`Allocator` says why instead of raising.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# A padded pitch is the next multiple of this many bytes past the row, as cuMemAllocPitch and FFmpeg pad.
PADDED_PITCH_ALIGNMENT = 256

Upload = Callable[[np.ndarray, int, bool], Any]  # (packed host pixels, device id, padded) -> CUDA array


@dataclass(frozen=True, slots=True)
class Allocator:
    """Where frames live: ``upload(host, device_id, padded)`` copies packed host pixels into new device memory.

    ``padded``: whether it can make views with a row pitch larger than the row
    (a framework whose arrays are never views cannot). ``reason``: why it cannot run.
    """

    name: str
    upload: Upload | None
    padded: bool = True
    reason: str | None = None


def padded_view_shape(shape: tuple[int, ...], padded: bool) -> tuple[int, ...]:
    """The allocation shape whose ``[:, :W]`` view holds ``shape`` with a padded row pitch.

    Padded: the row is widened to the next multiple of :data:`PADDED_PITCH_ALIGNMENT`
    bytes strictly past the packed row, so the pitch always differs from the row.
    """
    if not padded:
        return shape
    width, channels = shape[1], (shape[2] if len(shape) == 3 else 1)
    step = PADDED_PITCH_ALIGNMENT // math.gcd(channels, PADDED_PITCH_ALIGNMENT)  # pixels per aligned run
    wide = (width // step + 1) * step
    return (shape[0], wide, *shape[2:])


def _crop(shape: tuple[int, ...]) -> tuple[slice, ...]:
    return (slice(None), slice(0, shape[1]))


def installed_allocators(device_id: int = 0) -> list[Allocator]:
    """CuPy's default pool, CuPy's MemoryAsyncPool, PyTorch and JAX; each with why not where it cannot run."""
    return [
        _cupy_allocator("cupy", device_id, async_pool=False),
        _cupy_allocator("cupy-async", device_id, async_pool=True),
        _torch_allocator(),
        _jax_allocator(),
    ]


def _cupy_allocator(name: str, device_id: int, *, async_pool: bool) -> Allocator:
    from rfb.gpu.context import cupy_available

    reason = cupy_available()
    if reason is not None:
        return Allocator(name, None, reason=reason)
    import cupy as cp

    pools: dict[int, Any] = {}

    def pool(device_id: int) -> Any:
        if device_id not in pools:
            with cp.cuda.Device(device_id):
                pools[device_id] = cp.cuda.MemoryAsyncPool() if async_pool else cp.get_default_memory_pool()
        return pools[device_id]

    if async_pool:
        try:  # one allocation: a driver without stream-ordered pools refuses it, not the pool's creation
            with cp.cuda.Device(device_id), cp.cuda.using_allocator(pool(device_id).malloc):
                cp.empty(1, dtype=cp.uint8)
        except (RuntimeError, AttributeError) as exc:  # CUDARuntimeError, or a CuPy without MemoryAsyncPool
            return Allocator(name, None, reason=f"CuPy's MemoryAsyncPool is unusable here: {type(exc).__name__}: {exc}")

    def upload(host: np.ndarray, device_id: int, padded: bool) -> Any:
        with cp.cuda.Device(device_id), cp.cuda.using_allocator(pool(device_id).malloc):
            buffer = cp.empty(padded_view_shape(host.shape, padded), dtype=cp.uint8)
            view = buffer[_crop(host.shape)]
            view[...] = cp.asarray(host)
            cp.cuda.get_current_stream().synchronize()
        return view

    return Allocator(name, upload)


def _torch_allocator() -> Allocator:
    if importlib.util.find_spec("torch") is None:
        return Allocator("torch", None, reason="PyTorch is not installed")
    import torch

    if not torch.cuda.is_available():
        return Allocator("torch", None, reason=f"PyTorch {torch.__version__} sees no CUDA device")

    def upload(host: np.ndarray, device_id: int, padded: bool) -> Any:
        buffer = torch.empty(padded_view_shape(host.shape, padded), dtype=torch.uint8, device=f"cuda:{device_id}")
        view = buffer[_crop(host.shape)]
        view.copy_(torch.from_numpy(host))
        torch.cuda.synchronize(device_id)  # PyTorch's array interface names no stream
        return view

    return Allocator("torch", upload)


def _jax_allocator() -> Allocator:
    if importlib.util.find_spec("jax") is None:
        return Allocator("jax", None, padded=False, reason="JAX is not installed")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX would otherwise take 75 % of the GPU
    import jax

    try:
        devices = jax.devices("gpu")
    except RuntimeError as exc:
        return Allocator("jax", None, padded=False, reason=f"JAX {jax.__version__} has no GPU backend: {exc}")

    def upload(host: np.ndarray, device_id: int, padded: bool) -> Any:
        array = jax.device_put(host, devices[device_id])
        array.block_until_ready()
        return array

    return Allocator("jax", upload, padded=False)
