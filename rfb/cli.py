"""The command line: ``python -m rfb demo`` and ``python -m rfb doctor``.

``demo`` serves the interactive demo scene (rfb.demo) so that a new user sees the
whole path work (render, encode, browser decode, input back) with one command;
``demo --gpu`` publishes the scene as CUDA frames to a ``gpu=True`` display (the
NumPy render copied to the GPU once per frame, standing in for a GPU renderer).
``doctor`` answers "which encode routes can run here, and if not, why not?" together
with the facts that decide it (driver, CUDA device, FFmpeg build), and ends with the
routes a display would pick; it never crashes, because it is what people run when
something is already wrong.

Exit status: 0 when the command did its work; 1 for a problem of this machine or this
moment (a port in use, no GPU for ``--gpu``, no route that can run), said in one line;
2 for a usage error (argparse's, or a route name that is unknown or belongs to the
other option).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import dataclasses
import errno
import ipaddress
import json
import logging
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Collection, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import rfb
from rfb.encoders.base import EncoderUnavailable, Transport

logger = logging.getLogger("rfb.cli")

DEFAULT_PORT = 8765
DEFAULT_SIZE = (1280, 720)

EXIT_RUNTIME = 1  # this machine or this moment: a port in use, no GPU, no route that runs here
EXIT_USAGE = 2  # the command line: argparse's own errors, a route name that is unknown or of the other kind
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class CommandError(Exception):
    """A problem the user can fix, said in one line: the command prints it and exits ``code``."""

    def __init__(self, message: str, code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.code = code


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
        "demo", help="serve an animated, interactive demo scene",
        description="Serve an animated, interactive scene: open the printed URL in a browser.",
        epilog=controls_text(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--encoder", metavar="NAME",
        help="H.264 encode route (default: the best available; rfb doctor lists them); "
             "image routes go to --image-encoder",
    )
    demo.add_argument(
        "--image-encoder", metavar="NAME", default="image",
        help="image route for viewers without WebCodecs, or with ?transport=image in the URL "
             "(default: image; with --gpu, jpeg_gpu where nvJPEG runs)",
    )
    demo.add_argument(
        "--gpu", action="store_true",
        help="serve with gpu=True and publish CUDA frames: each NumPy-rendered frame is copied to the GPU "
             "with CuPy, standing in for a GPU renderer (needs an NVIDIA GPU and CuPy)",
    )
    demo.add_argument("--size", type=parse_size, default=DEFAULT_SIZE, metavar="WxH", help="frame size (default 1280x720)")
    demo.add_argument(
        "--host", default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0: every network, where a plain "
             "http:// page gets JPEG, since browsers allow WebCodecs only on localhost or https)",
    )
    demo.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    demo.add_argument("--fps", type=_fps, default=30.0, help="frames per second (default 30)")
    demo.add_argument(
        "--no-token", action="store_true",
        help="accept viewers without the URL's token (with --host 0.0.0.0: anyone on the network can watch and steer)",
    )
    demo.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    demo.set_defaults(handler=_demo_command)

    doctor = commands.add_parser("doctor", help="list encode routes and why each can or cannot run here")
    doctor.add_argument("--json", nargs="?", const="-", metavar="FILE",
                        help="print one JSON object instead of text (with --selftest: FILE gets it, the text is printed)")
    doctor.add_argument("--selftest", action="store_true",
                        help="encode known frames through every GPU route that works here and decode them back")
    doctor.add_argument("--sizes", metavar="WxH,...", type=_sizes,
                        help="--selftest's frame sizes (default 320x240,852x480,1280x720,1366x768,1920x1080)")
    doctor.add_argument("--frames", type=int, default=30, help="--selftest's frames per case (default 30)")
    doctor.add_argument("--device", type=int, default=0, help="--selftest's CUDA device (default 0)")
    doctor.set_defaults(handler=_doctor_command)
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


def controls_text() -> str:
    """The demo's controls, as ``--help`` ends with them."""
    from rfb.demo import CONTROLS

    width = max(len(what) for what, _ in CONTROLS)
    lines = [f"  {what:<{width}}  {does}" for what, does in CONTROLS]
    return "controls, in the browser:\n" + "\n".join(lines)


def controls_line() -> str:
    """The demo's controls in one log line."""
    from rfb.demo import CONTROLS

    return "Controls: " + "; ".join(f"{what}: {does}" for what, does in CONTROLS)


# ---------------------------------------------------------------- demo


def _demo_command(args: argparse.Namespace) -> int:
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


def bind_problem(exc: OSError, host: str, port: int) -> str:
    """One line for a failure to listen, naming the address and what to try."""
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} is already in use on {host} (another rfb demo?): "
                f"choose another with --port N, or --port 0 for any free port")
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on {where} ({exc.strerror}): ports below 1024 need privileges; try --port 0"
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: {host!r} is not an address of this machine ({exc.strerror or exc})"
    return f"cannot listen on {where}: {exc}"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the demo on this machine (names other than localhost count as not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


def lan_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses, asked of its network interfaces (Linux).

    The kernel answers (one ioctl per interface): no name lookup, which could wait on a
    DNS server, and no packet. Elsewhere, or when it fails, the answer is empty and the
    caller says "this machine's address" instead.
    """
    try:
        import fcntl
        import struct

        names = [name for _, name in socket.if_nameindex()]
    except (ImportError, AttributeError, OSError):
        return []
    found = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for name in names:
            try:
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on this interface
                continue
            address = ipaddress.ip_address(answer[20:24])
            if not address.is_loopback:
                found.add(str(address))
    return sorted(found, key=ipaddress.ip_address)


def lan_urls(url: str, host: str) -> list[str]:
    """``url`` as other machines reach it, when ``host`` is a wildcard (0.0.0.0 or ::)."""
    if host not in WILDCARD_HOSTS:
        return []  # loopback: nobody else can reach it; a specific address: ``url`` already names it
    local = urlsplit(url)
    return [urlunsplit(local._replace(netloc=f"{a}:{local.port}")) for a in lan_addresses() or ["<this machine's address>"]]


def network_warnings(url: str, host: str, *, token: bool) -> list[str]:
    """What a demo bound beyond loopback must tell: what a LAN page gets, and who can watch."""
    if is_loopback(host):
        return []
    port = urlsplit(url).port
    warnings = ["a page opened as plain http:// from another machine is not a secure context: the browser has "
                "no WebCodecs there and gets JPEG images, not H.264 (for H.264, forward the port instead: "
                f"ssh -L {port}:127.0.0.1:{port} this-machine, then open the URL with 127.0.0.1)"]
    if not token:
        warnings.append("--no-token on a network address: anyone who can reach this port can watch and steer the view")
    return warnings


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
    for key, label in (("webcodecs", "video"), ("image", "image")):
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
    from rfb.demo import DeviceUpload, Scene, animate

    width, height = args.size
    options: dict[str, Any] = {"host": args.host, "port": args.port, "fps": args.fps, "video_encoder": args.encoder,
                               "image_encoder": args.image_encoder, "gpu": args.gpu}
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
        named = [key for key, asked in (("webcodecs", args.encoder), ("image", args.image_encoder))
                 if asked is not None and not (key == "image" and asked == "image")]
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


# ---------------------------------------------------------------- doctor


def _doctor_command(args: argparse.Namespace) -> int:
    if args.selftest:
        from rfb.selftest import run_command

        return run_command(json_path=args.json, sizes=args.sizes, frames=args.frames, device_id=args.device)
    report = doctor_report()
    if args.json not in (None, "-"):
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(json.dumps(report, indent=2, default=str) + "\n")
    elif args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_report(report))
    return 0 if report["here"]["video"] or report["here"]["image"] else EXIT_RUNTIME


def doctor_report() -> dict[str, Any]:
    """Everything doctor knows, as plain data (what ``--json`` prints)."""
    return {"rfb": rfb.__version__, "encoders": _encoders(), "environment": _environment(), "here": routes_here()}


def routes_here() -> dict[str, str | None]:
    """The routes ``serve()`` picks here by default ("video", "image") and with ``gpu=True``.

    Asked of the registry's own selection (select_encoder), so that doctor's summary
    cannot disagree with what a display does. None: no route of that kind can run.
    """
    from rfb.encoders.registry import select_encoder

    def pick(transport: Transport, gpu: bool) -> str | None:
        try:
            return select_encoder(None, transport=transport, gpu=gpu).name
        except Exception:  # EncoderUnavailable, or a broken registry: _encoders reports it, doctor lives on
            logger.debug("no %s route (gpu=%s)", transport, gpu, exc_info=True)
            return None

    return {"video": pick("webcodecs", False), "image": pick("image", False),
            "gpu_video": pick("webcodecs", True), "gpu_image": pick("image", True)}


def summary_line(here: dict[str, str | None]) -> str:
    """Doctor's last line: ``here: h264_cpu + image``, and what ``gpu=True`` changes."""
    def pair(video: str | None, image: str | None) -> str:
        if video and image:
            return f"{video} + {image}"
        if video:
            return f"{video} only (no image route: browsers without WebCodecs get nothing)"
        if image:
            return f"{image} only (no H.264 route: every browser gets images)"
        return "no route can run (see the reasons above)"

    line = f"here: {pair(here['video'], here['image'])}"
    gpu = (here.get("gpu_video"), here.get("gpu_image"))
    if any(gpu) and gpu != (here["video"], here["image"]):
        line += f"; with gpu=True: {pair(*gpu)}"
    return line


def _encoders() -> list[dict[str, Any]]:
    try:
        statuses = rfb.encoder_status(refresh=True)
    except Exception as exc:  # doctor must report a broken registry, not die of it
        logger.debug("encoder_status failed", exc_info=True)
        return [
            {
                "name": "(registry)",
                "available": False,
                "reason": f"listing encoders failed: {type(exc).__name__}: {exc}",
                "transport": None,
                "priority": None,
                "reads_cuda": None,
                "description": "",
            }
        ]
    return [dataclasses.asdict(s) for s in statuses]


def _guarded(fact: Callable[[], Any]) -> Any:
    """One environment fact; a failure becomes its description instead of an exception."""
    try:
        return fact()
    except Exception as exc:  # any probe of the environment may fail in its own way
        return f"unknown ({type(exc).__name__}: {exc})"


def _environment() -> dict[str, Any]:
    return {
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": _guarded(platform.platform),
        "numpy": _guarded(lambda: __import__("numpy").__version__),
        "pyav": _guarded(_pyav),
        "nvidia_smi": _guarded(_nvidia_smi),
        "libcuda": _guarded(lambda: _library("cuda", ("libcuda.so.1", "libcuda.so", "nvcuda.dll"))),
        "libnvidia_encode": _guarded(
            lambda: _library("nvidia-encode", ("libnvidia-encode.so.1", "libnvidia-encode.so", "nvEncodeAPI64.dll"))
        ),
        "cuda_devices": _guarded(_cuda_devices),
    }


def _pyav() -> dict[str, Any]:
    import av

    encoders = sorted(name for name in ("libx264", "h264_nvenc", "libopenh264") if name in av.codecs_available)
    return {
        "version": av.__version__,
        "ffmpeg": getattr(av, "ffmpeg_version_info", None),
        "h264_encoders": encoders,
    }


def _nvidia_smi() -> str:
    path = shutil.which("nvidia-smi")
    if path is None:
        return "not found on PATH (no NVIDIA driver installed, or not in this container)"
    result = subprocess.run(
        [path, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if result.returncode != 0:
        return f"{path} exited {result.returncode}: {(result.stderr or result.stdout).strip()[:200]}"
    return "; ".join(line.strip() for line in result.stdout.splitlines() if line.strip()) or "no GPUs listed"


def _library(short_name: str, candidates: Sequence[str]) -> str:
    """Whether a shared library loads, and under which name (loading is the real test)."""
    errors = []
    for name in candidates:
        try:
            ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
            continue
        return f"loads as {name}"
    found = ctypes.util.find_library(short_name)
    hint = f" (find_library sees {found})" if found else ""
    return f"not loadable{hint}: {errors[0] if errors else 'no candidates'}"


def _cuda_devices() -> list[str] | str:
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            from cuda import cuda as driver  # cuda-python before 12.6
        except ImportError as exc:
            return f"cuda-python not importable: {exc}"
    (err,) = driver.cuInit(0)
    if err != driver.CUresult.CUDA_SUCCESS:
        return f"cuInit failed: {_cuda_error_name(driver, err)}"
    err, count = driver.cuDeviceGetCount()
    if err != driver.CUresult.CUDA_SUCCESS:
        return f"cuDeviceGetCount failed: {_cuda_error_name(driver, err)}"
    devices = []
    for ordinal in range(count):
        err, device = driver.cuDeviceGet(ordinal)
        if err != driver.CUresult.CUDA_SUCCESS:
            devices.append(f"{ordinal}: cuDeviceGet failed: {_cuda_error_name(driver, err)}")
            continue
        err, raw = driver.cuDeviceGetName(256, device)
        name = raw.split(b"\0", 1)[0].decode(errors="replace") if err == driver.CUresult.CUDA_SUCCESS else "?"
        devices.append(f"{ordinal}: {name}")
    return devices or "no CUDA devices"


def _cuda_error_name(driver: Any, err: Any) -> str:
    code, name = driver.cuGetErrorName(err)
    return name.decode() if code == driver.CUresult.CUDA_SUCCESS and name else str(err)


def format_report(report: dict[str, Any]) -> str:
    """The text form of :func:`doctor_report`."""
    lines = [f"rfb {report['rfb']} doctor", "", "Encode routes (best first):"]
    encoders = report["encoders"]
    width = max((len(e["name"]) for e in encoders), default=4)
    for e in encoders:
        mark = "ok" if e["available"] else "--"
        if e["transport"] is None:  # not a route: the registry itself failed
            lines.append(f"  [{mark}] {e['name']}")
        else:
            kind = "gpu" if e["reads_cuda"] else "cpu"
            lines.append(f"  [{mark}] {e['name']:<{width}}  {e['transport']:<9}  {kind}  priority {e['priority']}")
        if e.get("description"):
            lines.append(f"       {e['description']}")
        if not e["available"]:
            lines.append(f"       unavailable: {e['reason']}")
    lines += ["", "Environment:"]
    for key, value in report["environment"].items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "; ".join(map(str, value))
        lines.append(f"  {key:<17} {value}")
    if "here" in report:
        lines += ["", summary_line(report["here"])]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
