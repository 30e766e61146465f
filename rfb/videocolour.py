"""What a stream says about its colour: the SPS VUI code points, and PyAV frames' labels.

The encoder writes the VUI from the matrix the pixels were made with, and that matrix
travels from the converter to the encoder on the ``av.VideoFrame`` itself
(``colorspace`` and ``color_range``): :func:`label` writes it, :func:`colour_of` reads
it. The RGB is the application's (sRGB-like, BT.709 primaries and transfer) whichever
matrix turned it into YUV, so only the matrix varies (:class:`VideoColour`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rfb.colorspace import FULL_RANGE
from rfb.frames import FrameError

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

# H.264 VUI code points (ITU-T H.273): 1 = BT.709 for primaries, transfer and matrix.
COLOUR_PRIMARIES_BT709 = 1
TRANSFER_BT709 = 1
MATRIX_BT709 = 1
MATRIX_BT601 = 6  # SMPTE 170M: the BT.601 (525-line) matrix; 5 (BT.470BG) has the same coefficients


@dataclass(frozen=True, slots=True)
class VideoColour:
    """What a stream's SPS VUI says about its pixels, and the matrix they were made with.

    Only the matrix differs between rfb's conversions: the RGB is the application's
    (sRGB-like, BT.709 primaries and transfer) whichever matrix turned it into YUV,
    so primaries and transfer stay 1 and only ``matrix`` changes. Signalling BT.601
    primaries too would ask a colour-managed browser for a gamut conversion the
    pixels never needed.
    """

    name: str  # the color_matrix() name of the matrix
    matrix: int  # matrix_coefficients (H.273)
    primaries: int = COLOUR_PRIMARIES_BT709
    transfer: int = TRANSFER_BT709
    full_range: bool = FULL_RANGE


BT709_LIMITED = VideoColour("bt709", MATRIX_BT709)
BT601_LIMITED = VideoColour("bt601", MATRIX_BT601)

# AVFrame.colorspace (AVColorSpace) values of the two conventions; 2 is "unspecified".
_AVCOL_SPC_UNSPECIFIED = 2
_COLOUR_OF_AVCOL_SPC = {MATRIX_BT709: BT709_LIMITED, _AVCOL_SPC_UNSPECIFIED: BT709_LIMITED, 5: BT601_LIMITED}
_COLOUR_OF_AVCOL_SPC[MATRIX_BT601] = BT601_LIMITED
_AVCOL_RANGE_MPEG = 1
_AVCOL_RANGE_JPEG = 2


def colour_of(picture: VideoFrame) -> VideoColour:
    """The convention of a converted ``av.VideoFrame``, from its colorspace and range fields.

    Converters label what they make; an unlabelled frame (a wrapped nv12 array, a CUDA
    frame) follows rfb's convention, BT.709 limited.
    """
    if picture.color_range == _AVCOL_RANGE_JPEG:
        raise FrameError("expected limited-range (MPEG) YUV from the converter, got a full-range (JPEG) frame")
    try:
        return _COLOUR_OF_AVCOL_SPC[int(picture.colorspace)]
    except KeyError:
        raise FrameError(
            f"expected a BT.709 or BT.601 frame from the converter, got AVColorSpace {int(picture.colorspace)}"
        ) from None


def label(picture: VideoFrame, colour: VideoColour) -> VideoFrame:
    """``picture`` with its colorspace and range fields saying ``colour`` (returned for chaining)."""
    picture.colorspace = colour.matrix
    picture.color_range = _AVCOL_RANGE_JPEG if colour.full_range else _AVCOL_RANGE_MPEG
    return picture
