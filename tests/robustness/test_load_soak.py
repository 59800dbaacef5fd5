"""The CI version of bench/load_soak.py: the same phases with tiny networks and fewer requests (about 30 s).

Sustained load at concurrency 64 with zero errors; overload at 4x and 8x what the service holds,
answered with 200 or 503 + Retry-After only, every 503 counted; recovery without errors; a soak of
3,000 mixed requests with no memory or descriptor growth after the first round.

Only what holds on a machine busy with other work is asserted here: answers, counts, memory. Timings
(the accepted requests' p99 under overload, its growth with the load, the throughput regained after it)
are the benchmark's verdicts: the full run (20,000+ requests, the shipped network sizes) is
``python bench/load_soak.py``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.robustness.support import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("hey") is None, reason="hey is not installed (apt-get install hey)"),
]


def _load_soak():
    spec = importlib.util.spec_from_file_location("load_soak", ROOT / "bench" / "load_soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_load_overload_recovery_and_soak(tmp_path: Path) -> None:
    bench = _load_soak()
    pin = shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2
    phases = bench.run_all(
        bench.make_weights(tmp_path / "weights", tiny=True),
        tmp_path,
        sustained_per_worker=10,
        overload_requests=3000,
        soak_requests=3000,
        warmup_rounds=1,
        server_cpu=0 if pin else None,
        client_cpu=1 if pin else None,
    )
    sustained = phases["sustained"]
    assert sustained["errors"] == 0 and sustained["requests"] >= 640, sustained
    for factor in (4, 8):
        overload = phases[f"overload_{factor}x"]
        # Every request answered 200, or 503 with Retry-After and a JSON body; each 503 counted by the service.
        assert overload["failed"] == 0 and overload["unexpected"] == 0, overload
        assert overload["503_without_retry_after_or_json"] == 0, overload
        assert overload["503_answers"] > 0, overload
        assert overload["rejected_queue_full"] + overload["rejected_admission"] == overload["503_answers"], overload
    recovery = phases["recovery"]
    assert recovery["ready"] and recovery["sustained_again"]["errors"] == 0, recovery
    assert phases["soak"]["ok"] and phases["soak"]["requests"] >= 3000, phases["soak"]
    for name in ("server_alive", "server_log", "shutdown"):
        assert phases[name]["ok"], (name, phases[name])
