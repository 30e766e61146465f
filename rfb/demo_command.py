"""``python -m rfb demo``: serve the demo scene (:mod:`rfb.demo`) until Ctrl-C.

A new user sees the whole path work (render, encode, browser decode, input back) with
one command; ``--gpu`` publishes the scene as CUDA frames to a ``gpu=True`` display
(the NumPy render copied to the GPU once per frame, standing in for a GPU renderer).
Whatever can be checked before the server starts (route names, a usable GPU) is, so
that a wrong option or a machine without a GPU gets one line and no server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Collection
from typing import Any

import rfb
from rfb.commands import EXIT_USAGE, CommandError
from rfb.demo import CONTROLS, DeviceUpload, Scene, animate
from rfb.encoders.base import EncoderUnavailable, Transport
from rfb.network import bind_problem, lan_urls, network_warnings

logger = logging.getLogger("rfb.cli")  # one name for the command line's log lines, whichever command


def controls_text() -> str:
    """The demo's controls, as ``--help`` ends with them."""
    width = max(len(what) for what, _ in CONTROLS)
    lines = [f"  {what:<{width}}  {does}" for what, does in CONTROLS]
    return "controls, in the browser:\n" + "\n".join(lines)


def controls_line() -> str:
    """The demo's controls in one log line."""
    return "Controls: " + "; ".join(f"{what}: {does}" for what, does in CONTROLS)


def demo_command(args: argparse.Namespace) -> int:
    """Run ``demo`` with the parsed ``args``; returns the exit status."""
    check_route_names(args.encoder, args.image_encoder)
    if args.gpu:
        problem = gpu_problem()
        if problem is not None:  # before anything starts: no server, no URL, one line
            raise CommandError(f"--gpu needs {problem}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(_demo(args))
    except KeyboardInterrupt:  # a second Ctrl-C, or one where signal handlers are unavailable
        return 0
    except EncoderUnavailable as exc:  # a route asked for by name that cannot run here
        raise CommandError(str(exc)) from None
    except (KeyError, ValueError) as exc:  # an option value the display refuses
        raise CommandError(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc), EXIT_USAGE) from None


ROUTE_KINDS = {"webcodecs": ("--encoder", "H.264"), "image": ("--image-encoder", "image")}


def check_route_names(video: str | None, image: str | None) -> None:
    """Refuse (exit 2) a route name that is unknown, or given to the option of the other kind.

    ``--encoder image`` is the natural first guess for "send me JPEGs"; the answer
    names the option that takes it. Only the registry is read: nothing is probed.
    """
    from rfb.encoders.registry import get_entry

    for transport, name in (("webcodecs", video), ("image", image)):
        if name is None:
            continue
        option, kind = ROUTE_KINDS[transport]
        try:
            entry = get_entry(name)
        except KeyError as exc:
            raise CommandError(f"{option} {name}: {exc.args[0]} (rfb doctor says which run here)", EXIT_USAGE) from None
        if entry.transport != transport:
            other_option, other_kind = ROUTE_KINDS[entry.transport]
            raise CommandError(
                f"{option} takes an {kind} route, and {name!r} is an {other_kind} route: use {other_option} {name}",
                EXIT_USAGE,
            )


def gpu_problem() -> str | None:
    """What ``demo --gpu`` lacks, as "WHAT: reason" (None: a CUDA device and CuPy are usable).

    Asked before anything starts so that a machine without a GPU gets one line, not a
    server that fails on its first frame. The probes are rfb.gpu's (cached, cheap, and
    they create no CUDA context).
    """
    from rfb.gpu import cupy_available, gpu_available

    reason = gpu_available()
    if reason is not None:
        return f"an NVIDIA GPU with a CUDA driver: {one_line(reason)}"
    reason = cupy_available()
    if reason is not None:
        return f"CuPy: {one_line(reason)}"
    return None


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space.

    Probe reasons may span lines (a library's search list, CuPy's import errors); the
    demo's error and its start-up line are meant to stay one line each.
    """
    return " ".join(text.split())


def describe_routes(display: Any, *, gpu: bool, named: Collection[str] = ()) -> str:
    """One line: the video and image routes ``display`` chose, and why a GPU route was passed over.

    ``named``: the groups ("webcodecs", "image") whose route the user asked for by name;
    a CPU route there was a choice, not a fallback. The reasons are those the display
    logs as a warning (rfb.routes.gpu_fallback_reasons); they appear here too so that
    the start-up line alone says what ``--gpu`` got.
    """
    from rfb.routes import gpu_fallback_reasons

    is_gpu = {s.name: s.reads_cuda for s in rfb.encoder_status()}
    parts = []
    labels: tuple[tuple[Transport, str], ...] = (("webcodecs", "video"), ("image", "image"))
    for key, label in labels:
        name = display.routes.get(key)
        why = [one_line(reason) for reason in gpu_fallback_reasons(key)] if gpu and key not in named else []
        if name is None:
            parts.append(f"{label} none")
        elif not gpu:
            parts.append(f"{label} {name}")
        elif is_gpu.get(name, False):
            parts.append(f"{label} {name} (GPU)")
        elif why:
            parts.append(f"{label} {name} (CPU; gpu=True fell back: {'; '.join(why)})")
        else:
            parts.append(f"{label} {name} (CPU)")
    return ("gpu=True; " if gpu else "") + "routes: " + ", ".join(parts)


async def _demo(args: argparse.Namespace) -> int:
    width, height = args.size
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "fps": args.fps,
        "video_encoder": args.encoder,
        "image_encoder": args.image_encoder,
        "gpu": args.gpu,
    }
    if args.no_token:
        options["token"] = None
    to_frame = None
    if args.gpu:
        # Before CuPy or an encoder probe activates the primary context (README: GPU extras).
        rfb.enable_cuda_context_sharing()
        to_frame = DeviceUpload()
    try:
        display = await rfb.serve(width, height, **options)
    except OSError as exc:  # the port is taken, the host is not ours...
        raise CommandError(bind_problem(exc, args.host, args.port)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            pass
    try:
        # The URL is the first line on stdout, alone, so that scripts can read it.
        print(display.url, flush=True)
        # "image" is the demo's default image route, which serve(gpu=True) takes as "the best one"
        named = [
            key
            for key, asked in (("webcodecs", args.encoder), ("image", args.image_encoder))
            if asked is not None and not (key == "image" and asked == "image")
        ]
        logger.info("%s", describe_routes(display, gpu=args.gpu, named=named))
        for url in lan_urls(display.url, args.host):
            logger.info("from other machines: %s", url)
        for warning in network_warnings(display.url, args.host, token=not args.no_token):
            logger.warning("%s", warning)
        logger.info("open the URL above in a browser; Ctrl-C stops. %s", controls_line())
        frames = await animate(display, Scene(width, height), fps=args.fps, stop=stop, to_frame=to_frame)
        logger.info("stopping after %d frames", frames)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await display.aclose()
    return 0
