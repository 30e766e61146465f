"""Writes rfb/h264cuda/kernels/cavlc.h from the model's CAVLC tables (model/cavlc_tables.py).

The kernels keep the tables as packed constants, ``(length << 16) | code``, with 0 for
combinations the spec has no code for (trailing_ones > total_coeff). The header is
generated, never edited: test_kernels_entropy.py asserts that the file equals
:func:`render`, so the C tables cannot drift from the model's. Regenerate with
``python -m tests.h264cuda.cavlc_h``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rfb.h264cuda.kernels import HERE
from rfb.h264cuda.model import cavlc_tables as t
from rfb.h264cuda.model.slicedata import _INTER_CBP_CODE_NUM

PATH = HERE / "cavlc.h"


def pack(code: str) -> int:
    """A spec bit string as the kernels hold it: length in the high half, value in the low."""
    return (len(code) << 16) | int(code, 2) if code else 0


def _rows(table: Sequence[Sequence[str]], width: int) -> list[list[int]]:
    return [[pack(row[i]) if i < len(row) else 0 for i in range(width)] for row in table]


def _array(name: str, dims: Sequence[int], rows: list[list[int]], indent: str = "    ") -> str:
    body = ",\n".join(indent + "{" + ", ".join(f"0x{v:06x}" for v in row) + "}" for row in rows)
    return f"CONSTANT u32 {name}{''.join(f'[{d}]' for d in dims)} = {{\n{body}\n}};\n"


def render() -> str:
    """The text of cavlc.h."""
    token_blocks = []
    for table in t.COEFF_TOKEN:
        rows = _rows(table, 4)
        token_blocks.append(
            "    {\n" + ",\n".join("        {" + ", ".join(f"0x{v:06x}" for v in r) + "}" for r in rows) + "\n    }"
        )
    parts = [
        "/* CAVLC code tables (ITU-T H.264 9.2), GENERATED from rfb/h264cuda/model/cavlc_tables.py\n"
        " * by `python -m tests.h264cuda.cavlc_h`; do not edit (a test checks this file equals\n"
        " * what the generator writes). Each entry is (length << 16) | code, 0 where the spec\n"
        " * has no code (trailing_ones > total_coeff).\n"
        " *\n"
        " * CAVLC_COEFF_TOKEN[t][total_coeff][trailing_ones]: t = 0 (0 <= nC < 2), 1 (2 <= nC < 4), 2 (4 <= nC < 8)\n"
        " * CAVLC_CHROMA_DC_COEFF_TOKEN[total_coeff][trailing_ones]: nC = -1 (4:2:0 chroma DC)\n"
        " * CAVLC_TOTAL_ZEROS[total_coeff - 1][total_zeros]\n"
        " * CAVLC_CHROMA_DC_TOTAL_ZEROS[total_coeff - 1][total_zeros]\n"
        " * CAVLC_RUN_BEFORE[min(zeros_left, 7) - 1][run_before]\n"
        " */\n"
        '#ifndef RFB_H264CUDA_CAVLC_H\n#define RFB_H264CUDA_CAVLC_H\n\n#include "portable.h"\n\n',
        "CONSTANT u32 CAVLC_COEFF_TOKEN[3][17][4] = {\n" + ",\n".join(token_blocks) + "\n};\n\n",
        _array("CAVLC_CHROMA_DC_COEFF_TOKEN", (5, 4), _rows(t.CHROMA_DC_COEFF_TOKEN, 4)) + "\n",
        _array("CAVLC_TOTAL_ZEROS", (15, 16), _rows(t.TOTAL_ZEROS, 16)) + "\n",
        _array("CAVLC_CHROMA_DC_TOTAL_ZEROS", (3, 4), _rows(t.CHROMA_DC_TOTAL_ZEROS, 4)) + "\n",
        _array("CAVLC_RUN_BEFORE", (7, 15), _rows(t.RUN_BEFORE, 15)) + "\n",
        "/* codeNum of coded_block_pattern me(v) for inter macroblocks (Table 9-4, 4:2:0), by cbp */\n"
        "CONSTANT u32 CAVLC_INTER_CBP_CODE_NUM[48] = {\n"
        + ",\n".join("    " + ", ".join(str(int(v)) for v in _INTER_CBP_CODE_NUM[i : i + 16]) for i in range(0, 48, 16))
        + "\n};\n\n",
        "#endif\n",
    ]
    return "".join(parts)


def main() -> None:
    PATH.write_text(render())
    print(f"wrote {Path(PATH)}")


if __name__ == "__main__":
    main()
