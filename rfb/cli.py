"""The command line, ``python -m rfb``: its options, and the dispatch to each command.

Each command has its own module: ``demo`` is :mod:`rfb.demo_command` (the scene itself
is :mod:`rfb.demo`), ``doctor`` is :mod:`rfb.doctor` (``doctor --selftest``:
:mod:`rfb.selftest`). Exit statuses and the one-line error a command ends with are
:mod:`rfb.commands`'.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence

import rfb
from rfb.commands import EXIT_RUNTIME, EXIT_USAGE, CommandError
from rfb.demo_command import controls_text, demo_command
from rfb.doctor import doctor_command

__all__ = ["EXIT_RUNTIME", "EXIT_USAGE", "CommandError", "build_parser", "main", "parse_size"]

DEFAULT_PORT = 8765
DEFAULT_SIZE = (1280, 720)


# ---------------------------------------------------------------- argument parsing


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``; even sizes only, as 4:2:0 video needs them."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}")
    width, height = int(match[1]), int(match[2])
    if not (16 <= width <= 8192 and 16 <= height <= 8192) or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"expected even width and height between 16 and 8192, got {width}x{height}")
    return width, height


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    return tuple(parse_size(part) for part in text.split(",") if part.strip())


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535 (0: any free port), got {port}")
    return port


def _fps(text: str) -> float:
    try:
        fps = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frames per second as a number, got {text!r}") from None
    if not 0 < fps <= 240:
        raise argparse.ArgumentTypeError(f"expected fps in (0, 240], got {fps:g}")
    return fps


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rfb", description="Stream a framebuffer to web browsers.")
    parser.add_argument("--version", action="version", version=f"rfb {rfb.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="serve an animated, interactive demo scene",
        description="Serve an animated, interactive scene: open the printed URL in a browser.",
        epilog=controls_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--encoder",
        metavar="NAME",
        help="H.264 encode route (default: the best available; rfb doctor lists them); "
        "image routes go to --image-encoder",
    )
    demo.add_argument(
        "--image-encoder",
        metavar="NAME",
        default="image",
        help="image route for viewers without WebCodecs, or with ?transport=image in the URL "
        "(default: image; with --gpu, jpeg_gpu where nvJPEG runs)",
    )
    demo.add_argument(
        "--gpu",
        action="store_true",
        help="serve with gpu=True and publish CUDA frames: each NumPy-rendered frame is copied to the GPU "
        "with CuPy, standing in for a GPU renderer (needs an NVIDIA GPU and CuPy)",
    )
    demo.add_argument(
        "--size", type=parse_size, default=DEFAULT_SIZE, metavar="WxH", help="frame size (default 1280x720)"
    )
    demo.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0: every network, where a plain "
        "http:// page gets JPEG, since browsers allow WebCodecs only on localhost or https)",
    )
    demo.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free port)"
    )
    demo.add_argument("--fps", type=_fps, default=30.0, help="frames per second (default 30)")
    demo.add_argument(
        "--no-token",
        action="store_true",
        help="accept viewers without the URL's token (with --host 0.0.0.0: anyone on the network can watch and steer)",
    )
    demo.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    demo.set_defaults(handler=demo_command)

    doctor = commands.add_parser("doctor", help="list encode routes and why each can or cannot run here")
    doctor.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="print one JSON object instead of text (with --selftest: FILE gets it, the text is printed)",
    )
    doctor.add_argument(
        "--selftest",
        action="store_true",
        help="encode known frames through every GPU route that works here and decode them back",
    )
    doctor.add_argument(
        "--sizes",
        metavar="WxH,...",
        type=_sizes,
        help="--selftest's frame sizes (default 320x240,852x480,1280x720,1366x768,1920x1080)",
    )
    doctor.add_argument("--frames", type=int, default=30, help="--selftest's frames per case (default 30)")
    doctor.add_argument("--device", type=int, default=0, help="--selftest's CUDA device (default 0)")
    doctor.set_defaults(handler=doctor_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (0 ok, 1 runtime problem, 2 usage error)."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CommandError as exc:
        print(f"rfb {args.command}: error: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
