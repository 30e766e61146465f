"""The h264_cuda route (rfb's own CUDA kernels): its entry, ordering, reasons and encodes.

Everywhere: the entry ranks below ``h264_gpu_nv12`` for ``serve(gpu=True)`` until the
ordering hook (``prefer()``, ``RFB_H264_CUDA_FIRST=1``) puts it first; the probe's
reasons without a GPU name the stages that have no kernels yet; the route is listed
by the registry, ``gpu_encode_status``, doctor and the GPU benchmark's plan.

On a GPU (``-m gpu``): NVRTC compiles the kernels (a compile error fails, never
skips); the route encodes CuPy frames (nv12 at a padded pitch, rgb24, rgba8) into a
stream that FFmpeg decodes exactly to the encoder's reconstruction, equal byte for
byte to the golden model's for NV12 input; a real WebSocket viewer of
``serve(gpu=True, video_encoder="h264_cuda")`` decodes what it receives. A stage
without kernels yet runs on the golden model in these tests (tests/h264cuda/stages.py),
so the route around the kernels is tested on the GPU before every kernel lands.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from rfb.benchmark import patterns
from rfb.benchmark.metrics import H264Decoder, psnr
from rfb.benchmark.sections import BenchmarkOptions, SectionReport
from rfb.encoders import h264, h264_cuda, registry, trial
from rfb.encoders.base import EncoderBackend, EncoderConfig, EncoderUnavailable
from rfb.encoders.registry import EncoderEntry, get_entry, select_encoder
from rfb.frames import FrameError, RawFrame, frame_from_array
from rfb.gpu import cuda_frame, gpu_available, rgb_to_nv12_host
from rfb.gpu.arrays import check_cuda_frame, frame_stream
from rfb.h264cuda.encoder import missing_stages
from rfb.h264cuda.model.encoder import ModelEncoder
from rfb.routes import resolve_routes
from tests.gpu import require_cupy
from tests.h264cuda.stages import model_p_picture, model_stages, stages_for_tests
from tests.support.frames import decode, padded_device_frame
from tests.support.kernels_cpu import CpuLauncher

W, H = 160, 96
# RGB PSNR of the decoded scene against its source at W x H. The golden model itself gives
# 27.6-28.5 dB there (QP 28-30 from the rate control's start, and 4:2:0 on the scene's hard
# colour edges at this small size; measured with ModelEncoder on the dev VM), so this bound
# only catches a stream that shows another picture; exactness is asserted separately.
MIN_PSNR = 25
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def always(config: EncoderConfig) -> Any:
    raise AssertionError("not built in these tests")


@pytest.fixture
def three_routes() -> Iterator[None]:
    """Only h264_cpu, h264_gpu_nv12 and h264_cuda, all of them available (their probes answer None)."""
    with registry.temporary_routes(builtins=False):
        for name, priority, reads_cuda in (("h264_cpu", 10, False), ("h264_gpu_nv12", 30, True)):
            registry.register_video_encoder(name, always, priority=priority, reads_cuda=reads_cuda)
        registry.REGISTRY.register_entry(dataclasses.replace(h264_cuda.ENTRIES[0], probe=lambda: None))
        yield


# ---------------------------------------------------------------- the entry and the ordering


def test_entry_is_a_cuda_reading_h264_route_below_h264_gpu_nv12() -> None:
    (entry,) = h264_cuda.ENTRIES
    assert (entry.name, entry.transport, entry.reads_cuda, entry.probe, entry.factory) == (
        "h264_cuda",
        "webcodecs",
        True,
        h264_cuda.probe,
        h264_cuda.create,
    )
    if os.environ.get(h264_cuda.ENV_PREFER) != "1":
        assert get_entry("h264_cuda").priority == h264_cuda.PRIORITY
    priorities = {name: get_entry(name).priority for name in ("nvenc_gpu_pyav", "h264_gpu_nv12", "h264_cpu")}
    assert priorities["h264_gpu_nv12"] > h264_cuda.PRIORITY > priorities["h264_cpu"]
    assert priorities["nvenc_gpu_pyav"] > h264_cuda.PREFERRED_PRIORITY > priorities["h264_gpu_nv12"]


def test_gpu_true_keeps_h264_gpu_nv12_first_and_falls_back_to_h264_cuda(three_routes: None) -> None:
    assert select_encoder(gpu=True).name == "h264_gpu_nv12"
    assert [e.name for e in resolve_routes(None, None, gpu=True)["webcodecs"]] == [
        "h264_gpu_nv12",
        "h264_cuda",
        "h264_cpu",
    ]
    assert [e.name for e in resolve_routes(None, None, gpu=False)["webcodecs"]] == ["h264_cpu"]
    assert resolve_routes("h264_cuda", None, gpu=False)["webcodecs"][0].name == "h264_cuda"  # by name, always


def test_the_ordering_hook_puts_h264_cuda_first_and_back(three_routes: None) -> None:
    h264_cuda.prefer()
    assert get_entry("h264_cuda").priority == h264_cuda.PREFERRED_PRIORITY
    assert get_entry("h264_cuda").probe is not h264_cuda.probe, "the route in place keeps its probe"
    assert [e.name for e in resolve_routes(None, None, gpu=True)["webcodecs"]] == [
        "h264_cuda",
        "h264_gpu_nv12",
        "h264_cpu",
    ]
    h264_cuda.prefer(False)
    assert select_encoder(gpu=True).name == "h264_gpu_nv12"


def test_the_environment_variable_turns_the_hook_on_at_registration() -> None:
    code = "from rfb.encoders.registry import get_entry; print(get_entry('h264_cuda').priority)"
    for value, expected in (("1", h264_cuda.PREFERRED_PRIORITY), ("0", h264_cuda.PRIORITY)):
        env = {**os.environ, h264_cuda.ENV_PREFER: value, "PYTHONPATH": ROOT}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == str(expected), (value, out.stderr)


# ---------------------------------------------------------------- reasons, everywhere


def test_probe_reason_names_the_stages_without_kernels_or_the_missing_gpu() -> None:
    missing = missing_stages()
    reason = h264_cuda.probe()
    if missing:
        assert reason == "h264_cuda unavailable: " + "; ".join(missing)
        assert h264_cuda.stages_reason() == reason
        with pytest.raises(EncoderUnavailable, match=r"^h264_cuda unavailable: .* has no kernels yet"):
            h264_cuda.create(EncoderConfig(W, H))
        return
    assert h264_cuda.stages_reason() is None
    if gpu_available() is not None:
        assert reason is not None and reason.startswith("this route encodes on a CUDA GPU, and there is none usable: ")


def test_the_route_is_listed_with_its_reason_by_status_doctor_and_the_benchmark() -> None:
    from rfb.benchmark.gpu import cpu_origin_of, plan
    from rfb.doctor import doctor_report
    from rfb.gpu.status import GPU_ROUTES, gpu_encode_status

    assert GPU_ROUTES.index("h264_gpu_nv12") < GPU_ROUTES.index("h264_cuda") < GPU_ROUTES.index("jpeg_gpu")
    status = gpu_encode_status(refresh=True).route("h264_cuda")
    assert status.transport == "webcodecs" and not status.zero_copy_nvenc
    listed = {e["name"]: e for e in doctor_report()["encoders"]}["h264_cuda"]
    assert (listed["available"], listed["reason"]) == (status.available, status.reason)
    assert listed["reason"] is None or ("\n" not in listed["reason"] and len(listed["reason"]) < 1000)
    report = SectionReport("gpu")
    routes, _ = plan(BenchmarkOptions(routes=("h264_cuda",)), report)
    if status.available:
        assert routes == ["h264_cuda"]
    else:
        assert routes == [] and report.skipped[0] == {"route": "h264_cuda", "reason": status.reason}
    assert cpu_origin_of("h264_cuda") == "h264_cpu"


def test_odd_sizes_are_refused_before_anything_is_opened() -> None:
    with pytest.raises(FrameError, match=r"h264_cuda encodes 4:2:0 video .*got 161x96"):
        h264_cuda.H264CudaEncoder(EncoderConfig(161, 96))


# ---------------------------------------------------------------- the route on the CPU build


def route_stages() -> Any:
    """The kernels' drivers, with the golden model standing in for any not written yet."""
    stages, _ = stages_for_tests()
    return stages


class FakeCupy:
    """What the route asks of CuPy, on host memory: enough to run it with the CPU launcher."""

    ndarray = np.ndarray

    class cuda:  # noqa: N801 (CuPy's name)
        @staticmethod
        def Device(device_id: int) -> Any:  # noqa: N802 (CuPy's name)
            return contextlib.nullcontext()

        class Stream:
            null = contextlib.nullcontext()  # host frames are encoded on the null stream

    @staticmethod
    def asnumpy(a: Any) -> np.ndarray:
        return np.asarray(a)


class HostStaging:
    """DeviceStaging for host nv12 frames on the CPU build: the frame as it is (staging has its own tests)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.closed = False

    def device_frame(self, frame: RawFrame, *, synchronize: bool = True, checked: bool = False) -> RawFrame:
        assert frame.memory == "cpu" and frame.pixel_format == "nv12"
        return frame

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def cpu_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """The route's backend on the CPU launcher and host NV12 frames (no GPU, no CuPy)."""
    from rfb.gpu import context
    from rfb.h264cuda.kernels import cuda

    monkeypatch.setattr(context, "import_cupy", lambda: FakeCupy)
    monkeypatch.setattr(cuda, "CudaLauncher", CpuLauncher)
    monkeypatch.setattr(h264_cuda, "DeviceStaging", HostStaging)
    monkeypatch.setattr(h264_cuda, "as_cupy", lambda data: data)


def host_nv12(rgb: np.ndarray) -> RawFrame:
    return frame_from_array(rgb_to_nv12_host(rgb), "nv12")


@pytest.mark.parametrize(("gop", "idrs"), [(None, (0, 3, 4)), (3, (0, 3, 4)), (2, (0, 2, 4))])
def test_the_backend_on_the_cpu_build_keyframes_flush_and_the_model_bytes(
    cpu_build: None, gop: int | None, idrs: tuple[int, ...]
) -> None:
    # picture 3: forced (gop None) or the GOP's (gop 3); picture 4 follows a flush; with
    # gop 3 the count restarts at every IDR, so the next periodic one would be 7.
    sources = [patterns.make("scene", 64, 48, i) for i in range(6)]
    config = EncoderConfig(64, 48, fps=30, bitrate=500_000, gop=gop)
    model = ModelEncoder(64, 48, 30, 500_000)
    payloads, recons = [], []
    with h264_cuda.H264CudaEncoder(config, stages=route_stages()) as enc:
        assert isinstance(enc, EncoderBackend) and (enc.name, enc.transport) == ("h264_cuda", "webcodecs")
        for i, src in enumerate(sources):
            if i == 4:
                assert enc.flush() == []
            (payload,) = enc.encode(host_nv12(src), force_keyframe=gop is None and i == 3)
            nv12 = rgb_to_nv12_host(src)
            assert payload.data == model.encode(nv12[:48], nv12[48:], force_idr=i in idrs), i
            payloads.append(payload)
            recons.append(enc.encoder.reconstruction)
        assert enc.codec == h264.codec_string(payloads[0].data)
        with pytest.raises(FrameError, match=r"h264_cuda was opened for 64x48 frames, got 32x48"):
            enc.encode(host_nv12(patterns.make("scene", 32, 48, 0)))
    assert [p.keyframe for p in payloads] == [i in idrs for i in range(6)]
    assert all(p.codec == payloads[0].codec and (p.width, p.height) == (64, 48) for p in payloads)
    for (y, u, v), (ry, ruv) in zip(decode([p.data for p in payloads]), recons, strict=True):
        assert np.array_equal(y, ry) and np.array_equal(u, ruv[:, 0::2]) and np.array_equal(v, ruv[:, 1::2])
    assert enc.closed
    with pytest.raises(RuntimeError, match="h264_cuda encoder is closed"):
        enc.encode(host_nv12(sources[0]))


def test_the_trial_passes_on_the_cpu_build_and_catches_a_drifting_stage(
    cpu_build: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trial, "cuda_trial_frame", lambda device_id, picture: host_nv12(picture))
    assert h264_cuda.trial_encode(0, stages=route_stages(), size=(160, 96)) is None

    def drifting_p_picture(launcher: Any, *args: Any) -> Any:
        mbs, rec_y, rec_c = model_p_picture(launcher, *args)
        rec_y = rec_y.copy()
        rec_y[5, 7] ^= 1  # one sample the decoder will not show
        return mbs, rec_y, rec_c

    drifting = dataclasses.replace(model_stages(), p_picture=drifting_p_picture)
    reason = h264_cuda.trial_encode(0, stages=drifting, size=(160, 96))
    assert reason == (
        "h264_cuda's P picture decodes to other samples than the encoder's reconstruction "
        "(1 differ, the first at row 5 column 7 of NV12): the kernels drift"
    )


# --------------------------------------------------------------------------- on a GPU


@pytest.fixture
def cp() -> Any:
    return require_cupy()


@pytest.mark.gpu
def test_nvrtc_compiles_every_kernel_on_the_device(cp: Any) -> None:
    assert h264_cuda.compile_reason(0) is None  # a compile error fails here, whatever else is missing


@pytest.mark.gpu
def test_the_probe_on_a_gpu(cp: Any) -> None:
    missing = missing_stages()
    if missing:
        assert h264_cuda.probe() == "h264_cuda unavailable: " + "; ".join(missing)
        assert h264_cuda.trial_encode(0, stages=route_stages()) is None  # the rest of the probe passes
    else:
        assert h264_cuda.probe() is None


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["nv12", "rgb24", "rgba8"])
def test_cupy_frames_decode_exactly_to_the_reconstruction(cp: Any, layout: str) -> None:
    n = 6
    sources = [patterns.make("scene", W, H, i) for i in range(n)]
    payloads, recons = [], []
    with h264_cuda.H264CudaEncoder(EncoderConfig(W, H, bitrate=1_000_000), stages=route_stages()) as enc:
        for i, src in enumerate(sources):
            if layout == "nv12":  # rows 64 bytes longer than the picture: read where they lie
                wide = cp.zeros((H * 3 // 2, W + 64), cp.uint8)
                wide[:, :W] = cp.asarray(rgb_to_nv12_host(src))
                frame = cuda_frame(wide[:, :W])
            else:
                rgb = src if layout == "rgb24" else np.dstack([src, np.full((H, W), 255, np.uint8)])
                frame = padded_device_frame(cp, rgb)
            payloads += enc.encode(frame, force_keyframe=i == 4)
            y, uv = enc.encoder.reconstruction
            recons.append((cp.asnumpy(y), cp.asnumpy(uv)))
        staging = enc.staging
        assert staging.uploads == staging.copies == 0
        assert staging.conversions == (0 if layout == "nv12" else n)  # nv12 is read in place
    assert [p.keyframe for p in payloads] == [i in (0, 4) for i in range(n)]
    assert payloads[0].codec == h264.codec_string(payloads[0].data)
    assert payloads[0].codec.startswith("avc1.42C0")  # Constrained Baseline
    for i, ((y, u, v), (ry, ruv)) in enumerate(zip(decode([p.data for p in payloads]), recons, strict=True)):
        assert np.array_equal(y, ry) and np.array_equal(u, ruv[:, 0::2]) and np.array_equal(v, ruv[:, 1::2]), i
    with H264Decoder() as decoder:
        assert all(
            psnr(s, d) > MIN_PSNR for s, d in zip(sources, decoder.decode_all(p.data for p in payloads), strict=True)
        )


@pytest.mark.gpu
def test_a_frame_made_on_a_non_blocking_stream_is_encoded_on_that_stream(cp: Any) -> None:
    # The kernels must follow the producer's last kernel on its own stream: a stream that
    # does not synchronise with the null stream would otherwise race the encoder.
    sources = [patterns.make("scene", W, H, i) for i in range(3)]
    payloads, recons = [], []
    stream = cp.cuda.Stream(non_blocking=True)
    with h264_cuda.H264CudaEncoder(EncoderConfig(W, H, bitrate=1_000_000), stages=route_stages()) as enc, stream:
        for src in sources:
            planes = cp.empty((H * 3 // 2, W), cp.uint8)
            planes.set(rgb_to_nv12_host(src), stream=stream)  # queued on the producer's stream only
            frame = cuda_frame(planes)
            assert frame_stream(check_cuda_frame(frame)) == stream.ptr
            payloads += enc.encode(frame)
            y, uv = enc.encoder.reconstruction
            recons.append((cp.asnumpy(y), cp.asnumpy(uv)))
    for i, ((y, u, v), (ry, ruv)) in enumerate(zip(decode([p.data for p in payloads]), recons, strict=True)):
        assert np.array_equal(y, ry) and np.array_equal(u, ruv[:, 0::2]) and np.array_equal(v, ruv[:, 1::2]), i
    model = ModelEncoder(W, H, 30, 1_000_000)
    for src, payload in zip(sources, payloads, strict=True):
        nv12 = rgb_to_nv12_host(src)
        assert payload.data == model.encode(nv12[:H], nv12[H:])


@pytest.mark.gpu
@pytest.mark.parametrize(("width", "height", "count"), [(320, 240, 6), (1280, 720, 3), (1920, 1080, 2)])
def test_the_route_equals_the_golden_model_byte_for_byte(cp: Any, width: int, height: int, count: int) -> None:
    pictures = [rgb_to_nv12_host(patterns.make("scene", width, height, i)) for i in range(count)]
    config = EncoderConfig(width, height, fps=30, bitrate=2_000_000)
    model = ModelEncoder(width, height, 30, config.bitrate)
    with h264_cuda.H264CudaEncoder(config, stages=route_stages()) as enc:
        for i, nv12 in enumerate(pictures):
            want = model.encode(nv12[:height], nv12[height:], force_idr=i == count - 1)
            (got,) = enc.encode(cuda_frame(cp.asarray(nv12)), force_keyframe=i == count - 1)
            assert got.data == want, f"picture {i}: {len(got.data)} bytes, the model {len(want)}"
            assert enc.encoder.last is not None and model.last is not None
            assert (enc.encoder.last.qp, enc.encoder.last.retried) == (model.last.qp, model.last.retried)


@pytest.mark.gpu
@pytest.mark.timeout(120)
@pytest.mark.anyio
async def test_a_websocket_viewer_of_a_gpu_display_forced_to_h264_cuda_decodes_its_frames(cp: Any) -> None:
    from rfb.launch import start
    from tests.conftest import H264, ProtocolClient, eventually

    sources = [patterns.make("scene", W, H, i) for i in range(5)]
    with registry.temporary_routes():
        if missing_stages():  # the route as it is, with the model standing in for the missing stages
            factory = lambda config: h264_cuda.H264CudaEncoder(config, stages=route_stages())  # noqa: E731
            registry.REGISTRY.register_entry(
                EncoderEntry("h264_cuda", factory, "webcodecs", None, h264_cuda.PRIORITY, True), replace=True
            )
        display = start(W, H, port=0, gpu=True, video_encoder="h264_cuda", keyframe_interval_min=0.0, still_after=None)
        try:
            assert display.encoder_name == "h264_cuda"
            client = await ProtocolClient.connect(display, supported=(H264,))
            await eventually(lambda: display.viewers, what="the viewer")
            chunks = []
            for source in sources:
                display.publish(cp.asarray(source))  # a fresh device array each time
                chunk = await client.next_payload(timeout=30)
                chunks.append(chunk)
                await client.ack(chunk.seq, decode_ms=1.0)
            assert chunks[0].keyframe and client.configs[-1]["codec"] == h264.codec_string(chunks[0].payload)
            group = display.stats.groups["webcodecs"]
            assert (group.encoder, group.encodes, group.encoder_errors) == ("h264_cuda", 5, 0)
            assert group.cuda_frames == group.encodes
            await client.close()
        finally:
            display.close()
    with H264Decoder() as decoder:
        decoded = decoder.decode_all(c.payload for c in chunks)
    assert len(decoded) == len(sources)
    assert all(psnr(s, d) > MIN_PSNR for s, d in zip(sources, decoded, strict=True))
