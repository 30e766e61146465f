"""What a fresh install must do, run inside that install (``python tests/install_smoke.py``).

tests/test_install.py runs this with the interpreter of a scratch virtual environment
(``rfb[fast]`` with every dependency at its floor, and no GPU package), so that it sees
only what that install has: the serve path end to end (a display on
loopback, a real WebSocket viewer, H.264 that PyAV decodes, a JPEG, a PNG), the CPU
routes' conversion, and the GPU packages' imports, which must work and explain
themselves without cuda-bindings. It prints one JSON object of findings; the test
asserts on them, so that a failure names the package version that broke.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys

import numpy as np


async def _viewer(port: int, token: str, supported: list[str]) -> tuple[dict, bytes]:
    """One payload, received the way a browser does (hello, then the first binary message)."""
    from websockets.asyncio.client import connect

    from rfb import protocol

    async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "hello", "supported": supported, "token": token}))
        while True:
            message = await asyncio.wait_for(ws.recv(), 20)
            if isinstance(message, bytes):
                return protocol.unpack_payload(message)


def _decode_h264(payload: bytes) -> np.ndarray:
    from rfb.benchmark.metrics import H264Decoder

    with H264Decoder() as decoder:
        (picture,) = decoder.decode_all([payload])
    return picture


async def serve_and_watch() -> dict:
    import rfb
    from rfb import protocol

    frame = np.zeros((96, 128, 3), np.uint8)
    frame[:, :64] = (200, 40, 40)
    frame[:, 64:] = (40, 40, 200)
    found: dict = {}
    async with await rfb.serve(128, 96, port=0, video_encoder="h264_cpu") as display:
        found["routes"] = display.routes
        display.publish(frame)
        header, payload = await _viewer(display.port, display.token, [protocol.H264_ANNEXB])
        picture = _decode_h264(payload)
        found["h264"] = {
            "type": header["type"],
            "shape": list(picture.shape),
            "left": picture[48, 20].tolist(),
            "right": picture[48, 108].tolist(),
        }
        header, payload = await _viewer(display.port, display.token, [protocol.IMAGE_JPEG])
        import simplejpeg

        found["jpeg"] = {"mime": header["mime"], "shape": list(simplejpeg.decode_jpeg(payload).shape)}
        header, payload = await _viewer(display.port, display.token, [protocol.IMAGE_PNG])
        from PIL import Image

        exact = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))
        found["png"] = {"mime": header["mime"], "exact": bool((exact == frame).all())}
    return found


def conversion() -> dict:
    """Which converter the CPU routes use here, and that it converts (OpenCV with rfb[fast])."""
    from rfb.converters import host_converter
    from rfb.frames import frame_from_array

    converter = host_converter()
    try:
        converted = converter.convert(frame_from_array(np.full((48, 64, 3), 128, np.uint8)))
        return {"converter": type(converter).__name__, "format": converted.format.name}
    finally:
        converter.close()


def gpu_packages() -> dict:
    """The GPU bindings import everywhere and say what is missing instead of raising."""
    import nvencffi
    import nvjpegffi
    from rfb.gpu import gpu_available

    return {
        "nvenc_probe": nvencffi.probe().reason,
        "nvjpeg_probe": nvjpegffi.probe().reason,
        "gpu_available": gpu_available(),
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in (
        "numpy",
        "cffi",
        "starlette",
        "uvicorn",
        "websockets",
        "av",
        "simplejpeg",
        "pillow",
        "opencv-python-headless",
        "cuda-bindings",
        "cuda-pathfinder",
    ):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def package() -> dict:
    """What the installed distribution says of itself: typed, and under which licence."""
    from importlib.metadata import metadata
    from importlib.resources import files

    return {"py.typed": files("rfb").joinpath("py.typed").is_file(), "license": metadata("rfb")["License-Expression"]}


def main() -> None:
    report = {
        "versions": versions(),
        "package": package(),
        "serve": asyncio.run(serve_and_watch()),
        "conversion": conversion(),
        "gpu": gpu_packages(),
    }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
