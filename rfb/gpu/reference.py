"""The colour matrices and the NumPy RGB <-> NV12 reference, under their former name.

They live in :mod:`rfb.colorspace` (CPU-side, so that the CPU routes need nothing
from :mod:`rfb.gpu`); the GPU kernel takes its coefficients from there. This module
only keeps ``from rfb.gpu.reference import ...`` working.
"""

from __future__ import annotations

from rfb.colorspace import (
    DEFAULT_MATRIX,
    MATRICES,
    ColorMatrix,
    MatrixName,
    color_matrix,
    nv12_planes,
    nv12_to_rgb_host,
    rgb_to_nv12_host,
)

__all__ = [
    "DEFAULT_MATRIX",
    "MATRICES",
    "ColorMatrix",
    "MatrixName",
    "color_matrix",
    "nv12_planes",
    "nv12_to_rgb_host",
    "rgb_to_nv12_host",
]
