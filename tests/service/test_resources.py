"""service/resources.py: the CPU quota and memory limit read from fake cgroup trees, the thread plan, the
compute slots, and the refusal of settings whose worst case does not fit the memory limit."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from service import resources
from service.app import create_app
from service.loading import StartupError
from service.resources import CpuBudget, plan_threads
from tests.service.support import make_detector, settings_for, write_weights

GiB = 2**30


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def v2(tmp_path: Path, files: dict[str, str], own: str = "/") -> tuple[Path, Path]:
    """A cgroup v2 tree (``cgroup.controllers`` at its root) and a /proc/self/cgroup placing the process at ``own``."""
    root = write(tmp_path / "cgroup", {"cgroup.controllers": "cpu memory\n", **files})
    return root, write(tmp_path, {"self": f"0::{own}\n"}) / "self"


def v1(tmp_path: Path, files: dict[str, str], own: str = "/") -> tuple[Path, Path]:
    """A cgroup v1 tree (one directory per controller) with the process at ``own`` in each."""
    root = write(tmp_path / "cgroup", files)
    (root / "unified").mkdir(exist_ok=True)  # a hybrid host's v2 mount: no controllers of interest
    self_cgroup = write(tmp_path, {"self": f"4:memory:{own}\n2:cpu,cpuacct:{own}\n0::/\n"}) / "self"
    return root, self_cgroup


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [("100000 100000\n", 1.0), ("150000 100000\n", 1.5), ("400000 50000\n", 8.0), ("max 100000\n", None)],
    ids=["one", "one-and-a-half", "eight", "unlimited"],
)
def test_v2_cpu_max(tmp_path: Path, cpu_max: str, cpus: float | None) -> None:
    root, own = v2(tmp_path, {"cpu.max": cpu_max})
    assert resources.cgroup_cpu_limit(root, own) == cpus


def test_v2_the_smallest_limit_along_the_hierarchy_wins(tmp_path: Path) -> None:
    root, own = v2(
        tmp_path,
        {"kubepods/cpu.max": "200000 100000\n", "kubepods/pod1/cpu.max": "max 100000\n", "cpu.max": "max 100000\n"},
        own="/kubepods/pod1",
    )
    assert resources.cgroup_cpu_limit(root, own) == 2.0
    write(root, {"kubepods/pod1/memory.max": "max\n", "kubepods/memory.max": f"{2 * GiB}\n"})
    assert resources.cgroup_memory_limit(root, own) == 2 * GiB


def test_v2_memory_max(tmp_path: Path) -> None:
    root, own = v2(tmp_path, {"memory.max": f"{512 * 2**20}\n"})
    assert resources.cgroup_memory_limit(root, own) == 512 * 2**20
    root, own = v2(tmp_path / "unlimited", {"memory.max": "max\n"})
    assert resources.cgroup_memory_limit(root, own) is None


def test_v1_quota_and_memory(tmp_path: Path) -> None:
    root, own = v1(
        tmp_path,
        {
            "cpu,cpuacct/cpu.cfs_quota_us": "50000\n",
            "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            "memory/memory.limit_in_bytes": f"{GiB}\n",
        },
    )
    assert resources.cgroup_cpu_limit(root, own) == 0.5
    assert resources.cgroup_memory_limit(root, own) == GiB


def test_v1_no_limits(tmp_path: Path) -> None:
    root, own = v1(
        tmp_path,
        {
            "cpu/cpu.cfs_quota_us": "-1\n",
            "cpu/cpu.cfs_period_us": "100000\n",
            "memory/memory.limit_in_bytes": "9223372036854771712\n",  # what v1 reports for "no limit"
        },
    )
    assert resources.cgroup_cpu_limit(root, own) is None
    assert resources.cgroup_memory_limit(root, own) is None


def test_v1_a_container_sees_its_own_cgroup_at_the_mount(tmp_path: Path) -> None:
    """/proc/self/cgroup names the host's path (/docker/<id>), which does not exist inside: the mount is read."""
    root, own = v1(
        tmp_path,
        {"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"},
        own="/docker/0123abcd",
    )
    assert resources.cgroup_cpu_limit(root, own) == 1.0


def test_no_cgroup_files_mean_no_limits(tmp_path: Path) -> None:
    assert resources.cgroup_cpu_limit(tmp_path / "none", tmp_path / "none") is None
    assert resources.cgroup_memory_limit(tmp_path / "none", tmp_path / "none") is None


@pytest.mark.parametrize(
    ("affinity", "cpu_max", "budget"),
    [
        (2, "100000 100000\n", CpuBudget(1, "cgroup quota")),  # docker run --cpus 1 on a 2-core host
        (64, "200000 100000\n", CpuBudget(2, "cgroup quota")),  # a replica limited to 2 on a big host
        (2, "150000 100000\n", CpuBudget(1, "cgroup quota")),  # 1.5: rounded down
        (4, "50000 100000\n", CpuBudget(1, "cgroup quota")),  # half a CPU: still one
        (2, "800000 100000\n", CpuBudget(2, "affinity")),  # taskset narrower than the quota
        (3, "max 100000\n", CpuBudget(3, "affinity")),
    ],
)
def test_the_budget_is_the_smaller_of_affinity_and_quota(monkeypatch, tmp_path, affinity, cpu_max, budget) -> None:
    monkeypatch.setattr(resources, "affinity_cpus", lambda: affinity)
    root, own = v2(tmp_path, {"cpu.max": cpu_max})
    assert resources.cpu_budget(root, own) == budget


@pytest.mark.parametrize(
    ("cpus", "workers", "threads", "expected"),
    [
        (1, 3, None, (1, 1)),  # docker run --cpus 1: one thread, one pass at a time
        (2, 2, None, (1, 2)),  # generator and discriminator on 2 CPUs: a thread each, both at once
        (2, 3, None, (1, 2)),  # three models on 2 CPUs: two passes at once, the third waits its turn
        (16, 3, None, (5, 3)),  # 15 of 16 CPUs busy when all three run
        (64, 2, None, (32, 2)),  # a big host without a quota: every CPU, split
        (8, 2, 8, (8, 1)),  # FGAN_TORCH_THREADS=8: one pass at a time, each on every CPU
        (4, 3, 1, (1, 4)),  # FGAN_TORCH_THREADS=1: four single-threaded passes at once
    ],
)
def test_the_thread_plan_never_asks_for_more_than_the_budget(cpus, workers, threads, expected) -> None:
    plan = plan_threads(CpuBudget(cpus, "affinity"), workers, threads)
    assert (plan.threads, plan.passes) == expected
    assert plan.threads * plan.passes <= max(cpus, plan.threads)


def test_compute_slots_hold_passes_to_their_number_and_their_threads(one_thread) -> None:
    slots = resources.ComputeSlots(2, threads=1)
    running, most, seen_threads = 0, 0, set()
    lock = threading.Lock()

    def forward_pass() -> None:
        nonlocal running, most
        with slots.held():
            with lock:
                running += 1
                most = max(most, running)
                seen_threads.add(torch.get_num_threads())
            time.sleep(0.02)
            with lock:
                running -= 1

    def first_computing_with_two_threads() -> None:
        torch.set_num_threads(2)  # a thread that computed before the plan: its count stays 2 ...
        forward_pass()  # ... until it takes a slot

    workers = [threading.Thread(target=first_computing_with_two_threads) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert most == 2
    assert seen_threads == {1}


def test_settings_that_cannot_fit_the_memory_limit_are_refused_with_the_figures() -> None:
    need = resources.memory_need(
        resident=600 * 2**20, upload_memory_bytes=512 * 2**20, decoders=2, max_image_pixels=2**20
    )
    assert need.total == 600 * 2**20 + 2 * 512 * 2**20 + 2 * 2**20 * resources.DECODE_BYTES_PER_PIXEL
    message = resources.check_memory(need, 1 * GiB)
    assert message is not None
    for words in ("1656 MiB", "1024 MiB", "FGAN_UPLOAD_MEMORY_BYTES", "FGAN_MAX_IMAGE_PIXELS", "more memory"):
        assert words in message
    assert resources.check_memory(need, 2 * GiB) is None
    assert resources.check_memory(need, None) is None  # no limit known: nothing to refuse


# The service at startup ----------------------------------------------------------------------------------


def started_log(weights: Path, caplog: pytest.LogCaptureFixture, **overrides: object) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="service"), TestClient(create_app(settings_for(weights, **overrides))):
        pass
    return next(r.getMessage() for r in caplog.records if "torch threads=" in r.getMessage())


def test_the_startup_line_gives_the_planned_threads(monkeypatch, tmp_path, caplog, one_thread) -> None:
    weights = write_weights(tmp_path / "weights", detector=make_detector())  # three batchers
    monkeypatch.setattr(resources, "cpu_budget", lambda: CpuBudget(1, "cgroup quota"))
    line = started_log(weights, caplog, torch_threads=None)
    assert "torch threads=1 (1 forward pass at once, CPU budget 1 (cgroup quota))" in line
    monkeypatch.setattr(resources, "cpu_budget", lambda: CpuBudget(16, "affinity"))
    assert "torch threads=5 (3 forward passes at once, CPU budget 16 (affinity))" in started_log(
        weights, caplog, torch_threads=None
    )
    assert "torch threads=2 (8 forward passes at once" in started_log(weights, caplog, torch_threads=2)


def test_settings_whose_worst_case_cannot_fit_stop_startup(monkeypatch, weights_dir) -> None:
    monkeypatch.setattr(resources, "cgroup_memory_limit", lambda: 256 * 2**20)
    app = create_app(settings_for(weights_dir))
    with pytest.raises(StartupError, match=r"memory limit \(cgroup\) is 256 MiB"), TestClient(app):
        pass
    assert "FGAN_UPLOAD_MEMORY_BYTES" in app.state.startup_error
    # The same settings with room to spare start.
    monkeypatch.setattr(resources, "cgroup_memory_limit", lambda: 64 * GiB)
    with TestClient(create_app(settings_for(weights_dir))) as client:
        assert client.get("/healthz").status_code == 200
