"""The encoder's stages for tests: each stage's kernel driver where it exists, else the golden model.

The kernels of the three stages are written in parallel; until a stage's driver lands,
the test suite still runs :class:`rfb.h264cuda.encoder.CudaEncoder` end to end with the
model function standing in for that stage, behind the driver's signature (launcher
first, arrays of ``launcher.xp`` in and out). The product route never does this: it
takes :func:`rfb.h264cuda.encoder.kernel_stages`, which refuses while a stage is missing.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from rfb.h264cuda.encoder import DRIVERS, Stages
from rfb.h264cuda.kernels import Launcher
from rfb.h264cuda.model import inter, intra, slicedata
from rfb.h264cuda.model.picture import MacroblockArrays


def _host(a: Any) -> np.ndarray:
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def _map(mbs: MacroblockArrays, f: Callable[[Any], Any]) -> MacroblockArrays:
    return MacroblockArrays(**{field.name: f(getattr(mbs, field.name)) for field in dataclasses.fields(mbs)})


def model_i_picture(launcher: Launcher, y: Any, c: Any, qp: int) -> tuple[MacroblockArrays, Any, Any]:
    mbs, rec_y, rec_c = intra.code_i_picture(_host(y), _host(c), qp)
    xp = launcher.xp
    return _map(mbs, xp.asarray), xp.asarray(rec_y), xp.asarray(rec_c)


def model_p_picture(
    launcher: Launcher, y: Any, c: Any, ref_y: Any, ref_c: Any, qp: int, search: int
) -> tuple[MacroblockArrays, Any, Any]:
    mbs, rec_y, rec_c = inter.code_p_picture(_host(y), _host(c), _host(ref_y), _host(ref_c), qp, search)
    xp = launcher.xp
    return _map(mbs, xp.asarray), xp.asarray(rec_y), xp.asarray(rec_c)


def model_slice_nal(
    launcher: Launcher, mbs: MacroblockArrays, idr: bool, frame_num: int, idr_pic_id: int, qp: int
) -> bytes:
    return slicedata.slice_nal(_map(mbs, _host), idr, frame_num, idr_pic_id, qp)


MODEL: dict[str, Callable[..., Any]] = {
    "i_picture": model_i_picture,
    "p_picture": model_p_picture,
    "slice_nal": model_slice_nal,
}


def model_stages() -> Stages:
    """Every stage on the golden model."""
    return Stages(**MODEL)


def stages_for_tests() -> tuple[Stages, list[str]]:
    """Each stage's kernel driver where its module exists, else the model's; and the stages that fell back.

    Only a driver module that does not exist yet falls back: one that exists but does not
    import, or lacks its function, fails the test that asked (a broken driver is a bug).
    """
    chosen: dict[str, Callable[..., Any]] = {}
    fallbacks = []
    for driver in DRIVERS:
        if importlib.util.find_spec(driver.module) is None:
            fallbacks.append(driver.field)
            chosen[driver.field] = MODEL[driver.field]
        else:
            chosen[driver.field] = getattr(importlib.import_module(driver.module), driver.function)
    return Stages(**chosen), fallbacks
