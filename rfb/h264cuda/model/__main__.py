"""Print what the golden model makes of a test pattern: bytes, QP and macroblocks per picture.

    python -m rfb.h264cuda.model --pattern scene --size 1280x720 --frames 10 --qp 26

PSNR is of the reconstruction (which is the decoded picture) against the source
luma. The model is slow (NumPy, about a second per 1280x720 picture): this is for
looking at where the bits go, not for timing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from rfb.benchmark.patterns import PATTERNS, make
from rfb.colorspace import rgb_to_nv12
from rfb.h264cuda.model.encoder import ModelEncoder
from rfb.h264cuda.model.picture import I_16X16, P_L0_16X16, P_SKIP


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * float(np.log10(255**2 / mse))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfb.h264cuda.model", description=__doc__.splitlines()[0])
    p.add_argument("--pattern", choices=PATTERNS, default="scene")
    p.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT (even)")
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--bitrate", type=int, default=4_000_000, help="bit/s, for rate control and the level")
    p.add_argument("--qp", type=int, default=None, help="a constant QP instead of rate control")
    p.add_argument("--idr-every", type=int, default=0, help="force an IDR every N pictures (0: only the first)")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    enc = ModelEncoder(width, height, args.fps, args.bitrate, qp=args.qp)
    print(
        f"{args.pattern} {width}x{height}, {args.frames} pictures, "
        f"{'QP ' + str(args.qp) if args.qp else f'{args.bitrate} bit/s at {args.fps} fps'}"
    )
    print("  #  type  QP   bytes  skip   P16   I16  PSNR-Y")
    start = time.perf_counter()
    for i in range(args.frames):
        nv12 = rgb_to_nv12(make(args.pattern, width, height, i))
        force = bool(args.idr_every) and i > 0 and i % args.idr_every == 0
        enc.encode(nv12[:height], nv12[height:], force_idr=force)
        info = enc.last
        if info is None:
            raise RuntimeError("expected the encoder to describe the picture it just coded")
        kinds = np.bincount(info.macroblocks.kind.ravel(), minlength=3)
        psnr = _psnr(enc.reconstruction[0], nv12[:height])
        print(
            f"{i:3d}  {'IDR' if info.idr else 'P':4s} {info.qp:3d} {info.size:7d} {kinds[P_SKIP]:5d} "
            f"{kinds[P_L0_16X16]:5d} {kinds[I_16X16]:5d}  {psnr:6.2f}{'  (coded twice)' if info.retried else ''}"
        )
    print(f"model time: {(time.perf_counter() - start) / args.frames:.2f} s per picture (NumPy; not a GPU figure)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
