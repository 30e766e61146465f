"""pytest glue for the latency harness: the engine fixture, result collection, the summary.

Each latency test adds one record (what ran, on which engine, the harness's JSON) with
the ``latency_record`` fixture. At the end of the run the records are printed as a
table in the terminal summary (with a banner that says plainly when the encode engine
was emulated) and written, with the machine's description, to ``$RFB_LATENCY_JSON``
(default .cache/latency/latency.json).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.latency import engine as engines
from tests.latency import report

_RECORDS = pytest.StashKey[list[dict[str, Any]]]()


@pytest.fixture(scope="session")
def latency_engine() -> engines.Engine:
    """The engine both routes will drive, or a skip saying why there is none here."""
    chosen = engines.select()
    if isinstance(chosen, str):
        pytest.skip(chosen)
    return chosen


@pytest.fixture
def latency_record(
    request: pytest.FixtureRequest,
) -> Callable[[engines.Engine, dict[str, Any]], None]:
    """``record(engine, result)``: keep a harness result for the summary and the JSON."""
    records = request.config.stash.setdefault(_RECORDS, [])

    def record(engine: engines.Engine, result: dict[str, Any]) -> None:
        records.append(
            {
                "test": request.node.nodeid,
                "engine": {
                    "kind": engine.kind,
                    "memory": engine.memory,
                    "detail": engine.detail,
                },
                "result": result,
            }
        )

    return record


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    records = config.stash.get(_RECORDS, [])
    if not records:
        return
    from rfb.benchmark import machine
    from rfb.benchmark.gpu_device import describe_gpu

    info = machine.describe()
    info["gpu"] = describe_gpu()
    written = report.write_json(records, report.json_path(), info)
    terminalreporter.section("latency comparison: nvenc_gpu_cffi vs nvenc_gpu_pyav")
    for line in report.summary(records, written):
        terminalreporter.write_line(line)
