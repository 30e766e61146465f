"""CudaEncoder: NV12 pictures on the device in, H.264 Annex B access units out.

The golden model's :class:`rfb.h264cuda.model.encoder.ModelEncoder`, stage for stage,
with every stage that touches samples run by kernels through a
:class:`~rfb.h264cuda.kernels.Launcher`:

1. ``pad_luma`` / ``pad_chroma`` (``kernels/picture.cu``): the picture, read where it
   lies (any row pitch), padded to whole macroblocks and its chroma split;
2. the decisions: :func:`rfb.h264cuda.intra.code_i_picture` (IDR) or
   :func:`rfb.h264cuda.inter.code_p_picture` (P, against the previous reconstruction);
3. the entropy stage: :func:`rfb.h264cuda.slicedata.slice_nal`, the slice NAL unit's
   bytes (the only copy to the host).

What is left on the host is tiny and the model's own code: the access unit delimiter,
SPS and PPS (:mod:`rfb.h264cuda.model.headers`), and the rate control, which needs
only the length of each access unit, read anyway. The reconstruction stays on the
device between pictures: it is the next P picture's reference.

The three decision and entropy stages are handed in as a :class:`Stages`, so that the
test suite can run the encoder while a stage's kernels are still being written, with
the golden model standing in for that stage (``tests/h264cuda/stages.py``). The
product route takes :func:`kernel_stages`, which refuses to build while any stage has
no driver (:class:`StagesMissing` names which).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rfb.h264cuda.kernels import Launcher, blocks
from rfb.h264cuda.model.encoder import DEFAULT_SEARCH, ModelEncoder
from rfb.h264cuda.model.picture import MacroblockArrays

THREADS = 256  # per block, for the one-thread-per-sample padding kernels

# The drivers' signatures: the model functions' own, with the launcher first.
IPicture = Callable[[Launcher, Any, Any, int], tuple[MacroblockArrays, Any, Any]]
PPicture = Callable[[Launcher, Any, Any, Any, Any, int, int], tuple[MacroblockArrays, Any, Any]]
SliceNal = Callable[[Launcher, MacroblockArrays, bool, int, int, int], bytes]


@dataclass(frozen=True, slots=True)
class Stages:
    """The functions that code a picture: I pictures, P pictures, and the slice's bytes."""

    i_picture: IPicture
    p_picture: PPicture
    slice_nal: SliceNal


@dataclass(frozen=True, slots=True)
class StageDriver:
    """Where the driver of one stage lives, and how to name it in a reason."""

    field: str  # the Stages field it fills
    module: str
    function: str
    what: str  # the stage in words

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.function}"


DRIVERS: tuple[StageDriver, ...] = (
    StageDriver("i_picture", "rfb.h264cuda.intra", "code_i_picture", "the I-picture stage"),
    StageDriver("p_picture", "rfb.h264cuda.inter", "code_p_picture", "the P-picture stage"),
    StageDriver("slice_nal", "rfb.h264cuda.slicedata", "slice_nal", "the entropy stage"),
)


class StagesMissing(RuntimeError):
    """A stage has no kernel driver (yet), so the kernels alone cannot encode; the message says which."""


def load_driver(driver: StageDriver) -> tuple[Callable[..., Any] | None, str | None]:
    """The driver function of one stage, or None and why not (not written yet, or broken)."""
    try:
        module = importlib.import_module(driver.module)
    except ModuleNotFoundError as exc:
        if exc.name == driver.module:
            return None, f"{driver.what} ({driver.qualname}) has no kernels yet"
        return None, f"{driver.what} ({driver.qualname}) cannot be imported: {type(exc).__name__}: {exc}"
    except ImportError as exc:
        return None, f"{driver.what} ({driver.qualname}) cannot be imported: {type(exc).__name__}: {exc}"
    function = getattr(module, driver.function, None)
    if not callable(function):
        return None, f"{driver.what} ({driver.qualname}) has no kernels yet: {driver.module} has no {driver.function}"
    return function, None


def missing_stages() -> list[str]:
    """Why each stage that has no usable kernel driver lacks one (empty: every stage has one)."""
    return [reason for _, reason in map(load_driver, DRIVERS) if reason is not None]


def kernel_stages() -> Stages:
    """Every stage on its kernel driver; :class:`StagesMissing` naming each one that has none."""
    found: dict[str, Callable[..., Any]] = {}
    reasons = []
    for driver in DRIVERS:
        function, reason = load_driver(driver)
        if function is None:
            reasons.append(reason)
        else:
            found[driver.field] = function
    if reasons:
        raise StagesMissing("h264_cuda unavailable: " + "; ".join(r for r in reasons if r))
    return Stages(**found)


def pitched(xp: Any, plane: Any, width: int, rows: int, what: str) -> tuple[Any, int]:
    """A plane of ``rows`` x ``width`` bytes as a kernel reads it: (array, row pitch in bytes).

    CuPy hands a kernel the address of an array's first element whatever its strides, so
    a pitched device view goes as it is. The CPU launcher takes C-contiguous NumPy
    arrays only, so a pitched NumPy view goes as the one-dimensional run of bytes from
    its first sample to its last (no copy, nothing beyond the view).
    """
    if plane.dtype != np.uint8 or tuple(plane.shape) != (rows, width):
        raise ValueError(f"expected uint8 {what} {(rows, width)}, got {plane.dtype} {tuple(plane.shape)}")
    pitch, step = (int(s) for s in plane.strides)
    if step != 1 or (rows > 1 and pitch < width):
        raise ValueError(f"expected {what} rows of contiguous bytes {width} or more apart, got strides {plane.strides}")
    if xp is not np:
        return plane, pitch
    span = (rows - 1) * pitch + width
    return np.lib.stride_tricks.as_strided(plane, shape=(span,), strides=(1,)), pitch


class CudaEncoder(ModelEncoder):
    """h264_cuda's encoder: Constrained Baseline, I16x16 / P_Skip / P_L0_16x16, on kernels.

    A :class:`~rfb.h264cuda.model.encoder.ModelEncoder` (same arguments, validation, rate
    control with its one retry, IDR handling and output, byte for byte) whose hooks run
    on the launcher: the padding kernels (:meth:`_padded`) and the three :class:`Stages`.
    :meth:`encode` takes Y (H, W) and interleaved UV (H/2, W) as uint8 arrays of
    ``launcher.xp`` (:attr:`xp`; device arrays on a GPU) whose rows may lie any pitch
    apart (views of a frame); the reconstruction and :attr:`last`'s macroblocks are
    arrays of it too.
    """

    def __init__(
        self,
        launcher: Launcher,
        width: int,
        height: int,
        fps: int,
        bitrate: int,
        *,
        search: int = DEFAULT_SEARCH,
        qp: int | None = None,
        stages: Stages | None = None,
    ) -> None:
        """``search``: motion search range in whole luma samples; ``qp``: a constant QP
        instead of rate control; ``stages``: the stage functions (the kernel drivers,
        :func:`kernel_stages`, when None; raises :class:`StagesMissing` if one has none)."""
        super().__init__(width, height, fps, bitrate, search=search, qp=qp)
        self.launcher = launcher
        self.stages = stages if stages is not None else kernel_stages()
        self.xp = xp = launcher.xp
        self._rows, self._cols = 16 * self.shape.mb_height, 16 * self.shape.mb_width
        # The padded source, written by the padding kernels for every picture (the stages
        # only read it: each returns a reconstruction of its own).
        self._src_y = xp.empty(self._rows * self._cols, dtype=xp.uint8)
        self._src_c = xp.empty(self._rows * self._cols // 2, dtype=xp.uint8)

    def _padded(self, y: Any, uv: Any) -> tuple[Any, Any]:
        # The padding kernels: the source in whole macroblocks, chroma split (ModelEncoder._padded's _pad).
        w, h = self.shape.width, self.shape.height
        xp, rows, cols = self.xp, self._rows, self._cols
        y_in, y_pitch = pitched(xp, y, w, h, "Y")
        uv_in, uv_pitch = pitched(xp, uv, w, h // 2, "UV")
        launch = self.launcher.launch
        launch("pad_luma", blocks(rows * cols, THREADS), (THREADS, 1, 1), y_in, y_pitch, w, h, self._src_y, cols, rows)
        launch(
            "pad_chroma",
            blocks(rows * cols // 4, THREADS),
            (THREADS, 1, 1),
            uv_in,
            uv_pitch,
            w,
            h,
            self._src_c,
            cols,
            rows,
        )
        return self._src_y.reshape(rows, cols), self._src_c.reshape(2, rows // 2, cols // 2)

    def _i_picture(self, src_y: Any, src_c: Any, qp: int) -> tuple[MacroblockArrays, Any, Any]:
        return self.stages.i_picture(self.launcher, src_y, src_c, qp)

    def _p_picture(self, src_y: Any, src_c: Any, ref_y: Any, ref_c: Any, qp: int) -> tuple[MacroblockArrays, Any, Any]:
        return self.stages.p_picture(self.launcher, src_y, src_c, ref_y, ref_c, qp, self.search)

    def _slice_nal(self, mbs: MacroblockArrays, idr: bool, frame_num: int, idr_pic_id: int, qp: int) -> bytes:
        return self.stages.slice_nal(self.launcher, mbs, idr, frame_num, idr_pic_id, qp)
