"""The golden model of h264_cuda: the encoder's algorithm in NumPy, bit for bit.

The CUDA kernels of the h264_cuda route must produce the same bytes as this model
for the same pictures, so every decision here is integer arithmetic with a stated
tie-break, and every stage is the whole-picture array computation a kernel will do.
Read it in the order a picture goes through it (docs/h264_cuda.md has the map):

- :mod:`.encoder`: :class:`ModelEncoder`, one access unit per NV12 picture.
- :mod:`.intra` (I pictures, a wavefront) and :mod:`.inter` (P pictures, one
  parallel step) decide each macroblock and reconstruct it, through
  :mod:`.residual` (transform, quantise, scan) and :mod:`.transform`.
- :mod:`.mvpred`: motion vector predictors once all vectors are known.
- :mod:`.slicedata` and :mod:`.cavlc`: the bits of each macroblock and block;
  :mod:`.headers` and :mod:`.bitwriter`: parameter sets, slice headers, NAL units.
- :mod:`.ratecontrol`: the QP of the next picture, on the host.

``python -m rfb.h264cuda.model`` prints what the model makes of a test pattern.
"""

from rfb.h264cuda.model.encoder import ModelEncoder, PictureInfo

__all__ = ["ModelEncoder", "PictureInfo"]
