"""ModelEncoder: NV12 pictures in, H.264 Annex B access units out, all in NumPy.

One access unit per picture: an access unit delimiter, SPS and PPS before every IDR
(so that any IDR starts a decoder, as on rfb's other routes), then the picture's
one slice. The first picture and any picture asked for with ``force_idr`` are
IDR; every other is a P picture predicting from the reconstruction of the one
before (infinite GOP). :attr:`ModelEncoder.reconstruction` is that reconstruction,
which equals the decoder's output exactly (deblocking is off in every slice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rfb.h264cuda.model import headers, inter, intra, slicedata
from rfb.h264cuda.model.headers import StreamShape
from rfb.h264cuda.model.picture import MacroblockArrays
from rfb.h264cuda.model.ratecontrol import QP_MAX, QP_MIN, RateControl

DEFAULT_SEARCH = 8


@dataclass(frozen=True, slots=True)
class PictureInfo:
    """What the encoder decided for the last picture (for tests and the benchmark)."""

    idr: bool
    qp: int
    frame_num: int
    macroblocks: MacroblockArrays
    size: int  # bytes of the access unit
    retried: bool  # coded a second time at a higher QP (one-picture VBV)


def _pad(plane: np.ndarray, rows: int, cols: int) -> np.ndarray:
    # Edge-replicate up to whole macroblocks; the SPS crops the decoder's output back.
    return np.pad(plane, ((0, rows - plane.shape[0]), (0, cols - plane.shape[1])), mode="edge")


class ModelEncoder:
    """The golden model of h264_cuda: Constrained Baseline, I16x16 / P_Skip / P_L0_16x16.

    The stream logic (validation, rate control and its one retry, IDR and frame_num
    order, headers) is here once; the work on samples goes through four hooks,
    :meth:`_padded`, :meth:`_i_picture`, :meth:`_p_picture` and :meth:`_slice_nal`, which
    :class:`rfb.h264cuda.encoder.CudaEncoder` overrides to run the kernels, with
    :attr:`xp` the array module of its pictures.
    """

    xp: Any = np
    """The array module of the pictures and the reconstruction."""

    def __init__(
        self, width: int, height: int, fps: int, bitrate: int, *, search: int = DEFAULT_SEARCH, qp: int | None = None
    ) -> None:
        """``search``: motion search range in whole luma samples; ``qp``: a constant QP
        instead of rate control (for tests and for comparing the kernels at one QP)."""
        if qp is not None and not QP_MIN <= qp <= QP_MAX:
            raise ValueError(f"expected a QP in {QP_MIN}..{QP_MAX}, got {qp}")
        if search < 0:
            raise ValueError(f"expected a search range >= 0, got {search}")
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"expected a positive even width and height (4:2:0), got {width}x{height}")
        if fps <= 0 or bitrate <= 0:
            raise ValueError(f"expected a positive fps and bitrate, got {fps} fps and {bitrate} bit/s")
        self.shape = StreamShape(width, height, fps, bitrate)
        self.search = search
        self.rate = RateControl(target_bits=max(bitrate // fps, 1))
        self.fixed_qp = qp
        self._sps = headers.sps(self.shape)
        self._pps = headers.pps()
        self._ref: tuple[Any, Any] | None = None  # coded-size luma, (2, ...) chroma, arrays of xp
        self._frame_num = 0
        self._idr_count = 0
        self.last: PictureInfo | None = None

    @property
    def reconstruction(self) -> tuple[Any, Any]:
        """The last picture as the decoder shows it: Y (H, W) and interleaved UV (H/2, W), arrays of :attr:`xp`."""
        if self._ref is None:
            raise RuntimeError("expected a picture to have been encoded before reading its reconstruction")
        y, c = self._ref
        w, h = self.shape.width, self.shape.height
        uv = self.xp.stack([c[0, : h // 2, : w // 2], c[1, : h // 2, : w // 2]], axis=-1).reshape(h // 2, w)
        return y[:h, :w].copy(), uv

    def encode(self, y: Any, uv: Any, force_idr: bool = False) -> bytes:
        """One NV12 picture (Y (H, W) and interleaved UV (H/2, W), uint8) as one access unit."""
        src_y, src_c = self._padded(y, uv)
        idr = force_idr or self._ref is None
        if idr:
            self._frame_num = 0
        qp = self.rate.qp(idr) if self.fixed_qp is None else self.fixed_qp
        unit, mbs, rec_y, rec_c = self._code(src_y, src_c, idr, qp)
        retry = None if self.fixed_qp is not None else self.rate.retry_qp(qp, 8 * len(unit))
        if retry is not None:
            qp = retry
            unit, mbs, rec_y, rec_c = self._code(src_y, src_c, idr, qp)
        self.last = PictureInfo(
            idr=idr, qp=qp, frame_num=self._frame_num, macroblocks=mbs, size=len(unit), retried=retry is not None
        )
        self.rate.update(idr, qp, 8 * len(unit))
        self._ref = (rec_y, rec_c)
        self._frame_num += 1
        self._idr_count += int(idr)
        return unit

    def _padded(self, y: Any, uv: Any) -> tuple[Any, Any]:
        """The picture checked and padded to whole macroblocks: luma (rows, cols), chroma (2, rows/2, cols/2)."""
        w, h = self.shape.width, self.shape.height
        if y.shape != (h, w) or uv.shape != (h // 2, w) or y.dtype != np.uint8 or uv.dtype != np.uint8:
            raise ValueError(
                f"expected uint8 Y {(h, w)} and UV {(h // 2, w)}, got {y.dtype} {y.shape} and {uv.dtype} {uv.shape}"
            )
        rows, cols = 16 * self.shape.mb_height, 16 * self.shape.mb_width
        src_y = _pad(y, rows, cols)
        src_c = np.stack([_pad(uv[:, 0::2], rows // 2, cols // 2), _pad(uv[:, 1::2], rows // 2, cols // 2)])
        return src_y, src_c

    def _i_picture(self, src_y: Any, src_c: Any, qp: int) -> tuple[MacroblockArrays, Any, Any]:
        """An I picture's decisions and reconstruction (:func:`.intra.code_i_picture`)."""
        return intra.code_i_picture(src_y, src_c, qp)

    def _p_picture(self, src_y: Any, src_c: Any, ref_y: Any, ref_c: Any, qp: int) -> tuple[MacroblockArrays, Any, Any]:
        """A P picture's decisions and reconstruction against the reference (:func:`.inter.code_p_picture`)."""
        return inter.code_p_picture(src_y, src_c, ref_y, ref_c, qp, self.search)

    def _slice_nal(self, mbs: MacroblockArrays, idr: bool, frame_num: int, idr_pic_id: int, qp: int) -> bytes:
        """The picture's slice NAL unit (:func:`.slicedata.slice_nal`)."""
        return slicedata.slice_nal(mbs, idr, frame_num, idr_pic_id, qp)

    def _code(self, src_y: Any, src_c: Any, idr: bool, qp: int) -> tuple[bytes, MacroblockArrays, Any, Any]:
        # One picture at one QP: decisions, then the access unit's bytes.
        if idr:
            mbs, rec_y, rec_c = self._i_picture(src_y, src_c, qp)
        else:
            assert self._ref is not None  # a picture is IDR while there is no reference (encode())
            ref_y, ref_c = self._ref
            mbs, rec_y, rec_c = self._p_picture(src_y, src_c, ref_y, ref_c, qp)
        nals = [headers.aud(idr)]
        if idr:
            nals += [self._sps, self._pps]
        nals.append(self._slice_nal(mbs, idr, self._frame_num, self._idr_count % 65536, qp))
        return b"".join(nals), mbs, rec_y, rec_c
