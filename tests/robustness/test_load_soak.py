"""The CI version of bench/load_soak.py: the same phases with tiny networks and fewer requests (about 30 s).

Sustained load at concurrency 64 with zero errors; overload at 4x and 8x what the service holds,
answered with 200 or 503 + Retry-After only, every 503 counted, accepted p99 under 2 s; full
recovery; a soak of 3,000 mixed requests with no memory or descriptor growth after the first round.
The full run (20,000+ requests, the shipped network sizes) is ``python bench/load_soak.py``.
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
    failed = {name: phase for name, phase in phases.items() if not phase.get("ok", True)}
    # How much p99 grows from 4x to 8x is a figure of the full benchmark; on a shared CI machine only
    # its bound is checked here (each overload phase's own verdict).
    failed.pop("overload_bounded", None)
    assert not failed, failed
    assert phases["sustained"]["errors"] == 0 and phases["sustained"]["requests"] >= 640
    assert phases["overload_8x"]["503_answers"] > 0
    assert phases["soak"]["requests"] >= 3000
