"""The jpeg_gpu and h264_gpu_nv12 probes answer for the display's CUDA device, not for device 0.

The registry asks a probe about the display's device when the probe takes ``device_id``
(``rfb.encoders.registry``). Everywhere: both probes take it, and the registry's answer
is cached per device. On a GPU (``-m gpu``): where the route runs on device 0, a device
this machine does not have is refused, naming it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

from rfb.encoders import h264_gpu_nv12, jpeg_gpu, registry
from rfb.gpu import gpu_available

ROUTES = {"h264_gpu_nv12": h264_gpu_nv12.probe, "jpeg_gpu": jpeg_gpu.probe}


@pytest.fixture
def fresh_probes() -> Iterator[None]:
    """Every probe asked afresh (their answers depend on the library loaded); the cache restored after."""
    with registry.temporary_routes(probes=False):
        yield


def cuda_device_count() -> int:
    from rfb.gpu.context import load_driver

    driver = load_driver()
    err, count = driver.cuDeviceGetCount()
    assert int(err) == 0
    return int(count)


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_the_probe_takes_the_device_and_is_the_registered_one(name: str) -> None:
    probe = ROUTES[name]
    assert registry.get_entry(name).probe is probe
    parameter = inspect.signature(probe).parameters["device_id"]
    assert parameter.default == 0  # callers that name no device still get device 0


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_the_registry_asks_about_each_device_and_caches_each_answer(name: str, fresh_probes: None) -> None:
    entry = registry.get_entry(name)
    answers = {device: registry.probe_entry(entry, device_id=device) for device in (0, 1)}
    assert registry.REGISTRY.cached_probes(name) == answers


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(ROUTES))
def test_a_device_this_machine_lacks_is_refused_naming_it(name: str, fresh_probes: None) -> None:
    reason = gpu_available()
    if reason is not None:
        pytest.skip(reason)
    entry = registry.get_entry(name)
    on_zero = registry.probe_entry(entry, device_id=0, refresh=True)
    if on_zero is not None:
        pytest.skip(f"{name} cannot run on device 0 either: {on_zero}")
    missing = cuda_device_count()  # the first ordinal past the last device
    on_missing = registry.probe_entry(entry, device_id=missing, refresh=True)
    assert on_missing is not None and f"CUDA device {missing}" in on_missing, on_missing
