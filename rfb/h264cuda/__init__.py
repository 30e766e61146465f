"""h264_cuda: H.264 encoded on CUDA cores, for the GPUs without NVENC.

The package holds the golden model (:mod:`rfb.h264cuda.model`): the encoder's
algorithm in NumPy, which the CUDA kernels will have to match bit for bit. The route
itself (``h264_cuda`` behind the EncoderBackend seam) comes with the kernels; see
docs/h264_cuda.md.
"""
