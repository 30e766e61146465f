"""Reading frames: __cuda_array_interface__ and DLPack, the accepted layouts, the refusals.

The DLPack producer (tests/support/dlpack.py) is written with ctypes from dlpack.h's
layout, independently of the declarations the parser uses, and hands the emulator host
memory flagged as CUDA memory (the emulator reads host memory when there is no CUDA):
so the DLPack path is exercised end to end, down to pixel-exact decoding.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nvencffi
from nvencffi.frames import ABGR, NV12, ArrayInterfaceError, FrameLayoutError, parse_frame, read_cuda_array
from tests.support.dlpack import KDL_CPU, KDL_CUDA, KDL_FLOAT, KDL_INT, FakeDLPack
from tests.support.frames import HostCudaArray, decode, nv12_frame


def test_cai_nv12_with_a_pitch() -> None:
    frame, _, _ = nv12_frame(50, 36, pitch=64)
    view = parse_frame(frame)
    assert (view.width, view.height, view.pitch, view.buffer_format) == (50, 36, 64, NV12)
    assert view.pointer == frame.pointer
    assert view.key == (frame.pointer, 64, 50, 36, NV12)


def test_cai_rgba_with_a_pitch() -> None:
    storage = np.zeros((30, 256), np.uint8)
    rgba = storage[:, :160].reshape(30, 40, 4)
    view = parse_frame(HostCudaArray(rgba, strides=(256, 4, 1)))
    assert (view.width, view.height, view.pitch, view.buffer_format) == (40, 30, 256, ABGR)


def test_dlpack_nv12_decodes_back_pixel_exact(emulator) -> None:
    storage = np.random.default_rng(5).integers(0, 256, (360, 512), dtype=np.uint8)
    producer = FakeDLPack.over(storage[:, :320], strides=(512, 1), byte_offset=16)
    view = parse_frame(producer)
    assert (view.width, view.height, view.pitch, view.pointer) == (320, 240, 512, storage.ctypes.data)
    with nvencffi.NvencEncoder(320, 240, context=nvencffi.NullContext()) as enc:
        unit = enc.encode(producer)
    ((y, u, v),) = decode([unit])
    np.testing.assert_array_equal(y, storage[:240, :320])
    np.testing.assert_array_equal(u, storage[240:, 0:320:2])
    np.testing.assert_array_equal(v, storage[240:, 1:320:2])
    assert producer.calls == [{}, {}]  # no stream asked for: none was given to the encoder


@pytest.mark.parametrize(
    ("producer", "message"),
    [
        (lambda: FakeDLPack.over(np.zeros((72, 64), np.uint8), device_type=KDL_CPU), "not in CUDA device memory"),
        (lambda: FakeDLPack.over(np.zeros((72, 64), np.uint8), dtype=(KDL_FLOAT, 32)), "code=2, bits=32"),
        (lambda: FakeDLPack.over(np.zeros((48, 64, 3), np.uint8)), r"shape=\(48, 64, 3\)"),
    ],
)
def test_dlpack_refusals_say_what_arrived(producer, message) -> None:
    with pytest.raises(FrameLayoutError, match=message):
        parse_frame(producer())


@pytest.mark.parametrize(
    ("array", "strides", "message"),
    [
        (np.zeros((73, 64), np.uint8), None, "not H \\+ H/2"),
        (np.zeros((72, 64), np.uint16), None, "dtype=<u2"),
        (np.zeros((48, 64, 4), np.uint8), (256, 1, 64), "packed"),
        (np.zeros((72, 64), np.uint8), (64, 2), "contiguous bytes"),
        (np.zeros((36, 62, 4), np.uint8)[:, :61], None, "not even"),
        (np.zeros((72, 64), np.uint8), (32, 1), "smaller than a row"),
    ],
)
def test_layouts_nvenc_cannot_take_are_refused(array, strides, message) -> None:
    with pytest.raises(FrameLayoutError, match=message) as info:
        parse_frame(HostCudaArray(array, strides=strides))
    assert "expected a CUDA array" in str(info.value)  # always names the expected layouts


def test_a_host_array_is_refused_naming_its_device() -> None:
    with pytest.raises(FrameLayoutError, match="device=cpu"):
        parse_frame(np.zeros((72, 64), np.uint8))
    with pytest.raises(FrameLayoutError, match="not a CUDA array .*list"):
        parse_frame([[0]])


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 200).map(lambda w: w * 2),
    height=st.integers(1, 200).map(lambda h: h * 2),
    extra=st.integers(0, 64),
    rgba=st.booleans(),
)
def test_any_even_size_and_pitch_parses(width: int, height: int, extra: int, rgba: bool) -> None:
    """Any pitch of at least a row parses (the encoder stages what NVENC must not read
    in place); RGBA pitches stay multiples of 4, its pixel size."""
    row = width * 4 if rgba else width
    pitch = (row + extra + 3) // 4 * 4 if rgba else row + extra
    rows = height if rgba else height * 3 // 2
    storage = np.zeros((rows, pitch), np.uint8)
    array = storage[:, :row].reshape(height, width, 4) if rgba else storage[:, :row]
    strides = (pitch, 4, 1) if rgba else (pitch, 1)
    view = parse_frame(HostCudaArray(array, strides=strides))
    assert (view.width, view.height, view.pitch) == (width, height, pitch)
    assert view.buffer_format == (ABGR if rgba else NV12)


# -- the general reader (rfb.gpu.arrays builds on it) -----------------------------------


def test_read_cuda_array_reports_what_the_interface_says() -> None:
    host = np.zeros((6, 20), np.uint8)
    array = HostCudaArray(host[:, 4:12])
    array.__cuda_array_interface__["stream"] = 7
    array.__dlpack_device__ = lambda: (KDL_CUDA, 3)  # type: ignore[attr-defined]
    info = read_cuda_array(array)
    assert info is not None and info.protocol == "cuda_array_interface" and info.owner is array
    assert (info.pointer, info.shape) == (host.ctypes.data + 4, (6, 8))
    assert info.strides == info.byte_strides == (20, 1)
    assert (info.typestr, info.is_uint8, info.device_type, info.device_id, info.stream) == ("|u1", True, KDL_CUDA, 3, 7)
    packed = read_cuda_array(HostCudaArray(np.zeros((2, 3, 4), np.float32)))
    assert packed is not None and packed.strides is None and packed.byte_strides == (48, 16, 4)
    assert read_cuda_array([[0]]) is None


def test_read_cuda_array_reports_what_a_capsule_says() -> None:
    storage = np.zeros((4, 10), np.int32)
    producer = FakeDLPack.over(storage[:, :6], strides=(10, 1), byte_offset=8, dtype=(KDL_INT, 32))
    info = read_cuda_array(producer, dlpack_stream=5)
    assert producer.calls == [{"stream": 5}]
    assert info is not None and info.protocol == "dlpack"
    assert (info.pointer, info.shape, info.strides) == (storage.ctypes.data, (4, 6), (40, 4))
    assert (info.typestr, info.dlpack_dtype, info.device_name, info.device_id) == ("<i4", (0, 32, 1), "cuda", 0)
    assert info.owner[0] is producer  # with the capsule: the producer's tensor stays exported
    with pytest.raises(ArrayInterfaceError, match=r"got a DLPack array on device cpu"):
        read_cuda_array(FakeDLPack.over(storage, device_type=KDL_CPU), dlpack_devices=(KDL_CUDA,))


def test_refusals_of_the_reader_name_the_layouts_nvenc_takes() -> None:
    masked = HostCudaArray(np.zeros((72, 64), np.uint8))
    masked.__cuda_array_interface__["mask"] = object()
    with pytest.raises(FrameLayoutError, match=r"^expected a CUDA array .*; masked CUDA arrays are not supported"):
        parse_frame(masked)

    class RequiresGrad:
        @property
        def __cuda_array_interface__(self) -> dict:
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad.")

    with pytest.raises(FrameLayoutError, match=r"refused its CUDA array interface: .* \(pass tensor.detach\(\)\)"):
        parse_frame(RequiresGrad())


def test_parsing_does_not_depend_on_global_ctypes_state(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    for name in ("PyCapsule_New", "PyCapsule_GetPointer", "PyCapsule_IsValid"):
        monkeypatch.setattr(getattr(ctypes.pythonapi, name), "argtypes", [ctypes.c_double])
    storage = np.zeros((72, 64), np.uint8)
    assert parse_frame(FakeDLPack.over(storage)).pointer == storage.ctypes.data


def test_dlpack_is_read_without_parsing_c_at_run_time() -> None:
    """No cffi cdef (and so no pycparser) is needed to read a capsule once nvencffi is built."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("nvencffi._nvenc") is None:
        pytest.skip("nvencffi is not built here (python build_ffi.py): its declarations would be parsed at import")
    code = (
        "import sys; sys.modules['pycparser'] = None\n"
        "import numpy as np\n"
        "from nvencffi.frames import read_cuda_array\n"
        "info = read_cuda_array(np.zeros((6, 4), np.uint8))\n"
        "print(info.device_name, info.shape, info.typestr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["cpu", "(6,", "4)", "|u1"]


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((72, 64), np.uint8),  # NV12, packed
        np.zeros((72, 128), np.uint8)[:, :64],  # NV12, pitch 128
        np.zeros((48, 64, 4), np.uint8),  # RGBA, packed
        np.zeros((48, 80, 4), np.uint8)[:, :64],  # RGBA, pitch 320
        np.zeros((70, 64), np.uint8),  # not H + H/2 rows: refused
        np.zeros((72, 66), np.uint8)[:, :62],  # pitch 66: not a multiple of 4, parsed (the encoder stages it)
        np.zeros((72, 64), np.uint8)[:, :66:2],  # strides (64, 2): refused
    ],
    ids=["nv12", "nv12-pitch", "rgba", "rgba-pitch", "bad-rows", "odd-pitch", "bad-strides"],
)
def test_hot_path_and_general_reader_agree(array: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """parse_frame's fast path for plain CAI dicts gives exactly what the general reader gives."""
    from nvencffi import frames

    wrapped = HostCudaArray(array)

    def outcome() -> object:
        try:
            v = parse_frame(wrapped)
        except FrameLayoutError as exc:
            return ("error", str(exc))
        return (v.pointer, v.pitch, v.width, v.height, v.buffer_format, v.stream)

    fast = outcome()
    monkeypatch.setattr(frames, "_parse_plain_cai", lambda obj: None)
    assert outcome() == fast


class _Interface:
    """An object whose ``__cuda_array_interface__`` is whatever the test sets, read afresh per access."""

    def __init__(self, cai: object) -> None:
        self.cai = cai
        self.reads = 0

    @property
    def __cuda_array_interface__(self) -> object:
        self.reads += 1
        return self.cai() if callable(self.cai) else self.cai


def _nv12_cai(pointer: int = 0x10000, pitch: int = 256, stream: int | None = None) -> dict[str, object]:
    return {
        "shape": (72, 64),
        "typestr": "|u1",
        "data": (pointer, False),
        "strides": (pitch, 1),
        "version": 3,
        "stream": stream,
    }


def _fields(view: object) -> tuple[object, ...]:
    return tuple(getattr(view, name) for name in ("pointer", "pitch", "width", "height", "buffer_format", "stream"))


def test_frame_reader_reuses_the_view_of_an_equal_interface_only() -> None:
    """A renderer's buffer gives an equal dict every frame (CuPy: a new one per access):
    the last view comes back. Any difference in a value the view is made from parses afresh."""
    from nvencffi.frames import FrameReader

    reader = FrameReader()
    frame = _Interface(lambda: _nv12_cai(stream=1))  # a new, equal dict per access, as CuPy's
    first = reader.read(frame)
    assert reader.read(frame) is first and frame.reads == 2  # one read per call, no re-parse
    for changed in (_nv12_cai(pointer=0x20000, stream=1), _nv12_cai(pitch=512, stream=1), _nv12_cai(stream=2)):
        view = reader.read(_Interface(changed))
        assert _fields(view) == _fields(parse_frame(_Interface(changed))) != _fields(first)
    rgba = {**_nv12_cai(), "shape": (48, 64, 4), "strides": (256, 4, 1)}
    assert reader.read(_Interface(rgba)).buffer_format == ABGR


def test_frame_reader_remembers_alternating_buffers() -> None:
    """A renderer alternating two buffers (double buffering) gets each buffer's own view
    back, from memory, frame after frame; a fifth buffer pushes out the oldest of four."""
    from nvencffi.frames import FrameReader

    reader = FrameReader()
    front = _Interface(lambda: _nv12_cai(pointer=0x10000, stream=1))
    back = _Interface(lambda: {**_nv12_cai(pointer=0x20000, stream=1), "shape": (48, 128, 4), "strides": (512, 4, 1)})
    first = {"front": reader.read(front), "back": reader.read(back)}
    assert _fields(first["front"]) == _fields(parse_frame(_Interface(_nv12_cai(pointer=0x10000, stream=1))))
    assert _fields(first["back"]) == (0x20000, 512, 128, 48, ABGR, 1)
    for _ in range(3):
        assert reader.read(front) is first["front"]
        assert reader.read(back) is first["back"]
    for pointer in (0x30000, 0x40000, 0x50000):
        assert reader.read(_Interface(_nv12_cai(pointer=pointer))).pointer == pointer
    again = reader.read(front)  # pushed out by the three others: parsed afresh, the same fields
    assert again is not first["front"] and _fields(again) == _fields(first["front"])
    assert _fields(reader.read(back)) == _fields(first["back"])


def test_frame_reader_keeps_no_snapshot_of_mutable_values() -> None:
    """A shape given as a list could change in place after the snapshot; such an interface
    is parsed on every call, so a changed list is never answered with the old view."""
    from nvencffi.frames import FrameReader

    reader = FrameReader()
    shape = [72, 64]
    cai = {**_nv12_cai(), "shape": shape}
    frame = _Interface(cai)
    assert (reader.read(frame).width, reader.read(frame).height) == (64, 48)
    shape[:] = [144, 128]
    assert (reader.read(frame).width, reader.read(frame).height) == (128, 96)


def test_frame_reader_parses_what_cannot_be_compared() -> None:
    """Values whose comparison has no truth value (a NumPy shape) are parsed, not an error."""
    from nvencffi.frames import FrameReader

    reader = FrameReader()
    reader.read(_Interface(_nv12_cai()))
    odd = _Interface({**_nv12_cai(), "shape": np.array([72, 64])})
    assert _fields(reader.read(odd)) == _fields(parse_frame(odd))


def test_frame_reader_refuses_and_reads_dlpack_as_parse_frame_does() -> None:
    """Refusals keep parse_frame's words; arrays without a plain interface go to the general reader."""
    from nvencffi.frames import FrameReader

    reader = FrameReader()
    bad = _Interface({**_nv12_cai(), "shape": (70, 64)})
    with pytest.raises(FrameLayoutError, match="row count 70 is not H \\+ H/2"):
        reader.read(bad)
    with pytest.raises(FrameLayoutError, match="row count 70 is not H \\+ H/2"):
        reader.read(bad)  # a refused interface is never remembered
    producer = FakeDLPack((72, 64), (256, 1))
    assert _fields(reader.read(producer)) == _fields(parse_frame(FakeDLPack((72, 64), (256, 1))))
    assert (
        len(producer.calls) == 1 and reader.read(producer).pitch == 256 and len(producer.calls) == 2
    )  # read each time
