"""What the process is given, and how the service spends it: CPUs, threads and memory.

CPUs. The budget is the smaller of the CPUs the process may run on (its affinity:
``taskset``, a container's CPU set) and its cgroup's CPU quota (``docker run
--cpus 1``, a Kubernetes CPU limit), rounded down and at least 1. The quota is
read from cgroup v2's ``cpu.max`` or v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``,
along the process's cgroup and its ancestors (a limit set on a parent applies
too). A quota of 1.5 CPUs gives a budget of 1: a second thread would be throttled
for half of every period.

Threads. Several forward passes may run at once: one batcher worker per model, and
the GradCAM workers of /explain. Each runs torch's intra-op pool, so N passes of T
threads want N x T CPUs. The plan: T threads per pass (FGAN_TORCH_THREADS, else the
budget split between the models' workers, at least one each), and at most
budget // T passes at once, held to by ``ComputeSlots``, which every pass takes
(GradCAM's too), first come first served. So no more threads compute than the
budget, whatever the traffic mix (measured: ``python bench/cpu_plan.py``, docs/service.md).

Memory. The request bodies admitted at once are bounded in bytes (FGAN_UPLOAD_MEMORY_BYTES,
service/limits.py), large decodes run a few at a time (``decode_slots``), and
``check_memory`` refuses at startup a configuration whose worst case does not fit
the cgroup's memory limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``).
"""

from __future__ import annotations

import collections
import math
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
UNLIMITED_V1 = 2**62  # cgroup v1 reports "no limit" as a page-rounded 2**63 - 1
# Worst-case bytes per pixel while an upload decodes: the image as Pillow holds it (up to 4 bytes, 8 for
# 16-bit), its conversion to gray (a copy as RGBA, or float64 for 16-bit and float images), and the result.
DECODE_BYTES_PER_PIXEL = 16
# An upload's bytes are held about twice at the peak: the parsed part and the bytes handed to the decoder.
UPLOAD_COPIES = 2


# Reading the cgroup -----------------------------------------------------------------------------------


def _own_cgroups(self_cgroup: Path) -> dict[str, str]:
    """Controller -> the process's cgroup path in it, from /proc/self/cgroup ("" is cgroup v2's)."""
    paths: dict[str, str] = {}
    try:
        text = self_cgroup.read_text()
    except OSError:
        return paths
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]
    return paths


def _levels(mount: Path, path: str) -> Iterator[Path]:
    """The process's cgroup directory under ``mount`` and every ancestor up to the mount itself.

    In a container the mount is often the container's own cgroup while the path names it on the host
    (``/docker/<id>``): the directories that do not exist are passed over, and the mount is read last.
    """
    directory = mount.joinpath(*[part for part in path.split("/") if part and part != ".."])
    while True:
        if directory.is_dir():
            yield directory
        if directory == mount:
            return
        directory = directory.parent


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _v1_mount(root: Path, controller: str) -> Path | None:
    for name in (controller, f"{controller},cpuacct", f"cpuacct,{controller}"):
        if (root / name).is_dir():
            return root / name
    return None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> float | None:
    """CPUs the cgroup quota allows (quota / period), the smallest along the hierarchy; None when unlimited."""
    own = _own_cgroups(self_cgroup)
    limits: list[float] = []
    if (root / "cgroup.controllers").exists():  # cgroup v2, mounted at the root
        for level in _levels(root, own.get("", "/")):
            fields = (_read(level / "cpu.max") or "max").split()
            if fields[0] != "max" and len(fields) == 2 and int(fields[1]) > 0:
                limits.append(int(fields[0]) / int(fields[1]))
    elif (mount := _v1_mount(root, "cpu")) is not None:
        for level in _levels(mount, own.get("cpu", "/")):
            quota, period = _read(level / "cpu.cfs_quota_us"), _read(level / "cpu.cfs_period_us")
            if quota and period and int(quota) > 0 and int(period) > 0:
                limits.append(int(quota) / int(period))
    return min(limits) if limits else None


def cgroup_memory_limit(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> int | None:
    """Bytes of memory the cgroup allows, the smallest along the hierarchy; None when unlimited."""
    own = _own_cgroups(self_cgroup)
    limits: list[int] = []
    if (root / "cgroup.controllers").exists():
        for level in _levels(root, own.get("", "/")):
            value = _read(level / "memory.max")
            if value and value != "max":
                limits.append(int(value))
    elif (mount := _v1_mount(root, "memory")) is not None:
        for level in _levels(mount, own.get("memory", "/")):
            value = _read(level / "memory.limit_in_bytes")
            if value and int(value) < UNLIMITED_V1:
                limits.append(int(value))
    return min(limits) if limits else None


def affinity_cpus() -> int:
    """CPUs this process may run on (``taskset``, a container's CPU set)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class CpuBudget:
    cpus: int
    source: str  # what set it: "affinity" or "cgroup quota"


def cpu_budget(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> CpuBudget:
    """The CPUs the service may keep busy: the affinity, or the cgroup quota when it is smaller."""
    affinity = affinity_cpus()
    quota = cgroup_cpu_limit(root, self_cgroup)
    if quota is not None and max(1, math.floor(quota)) < affinity:
        return CpuBudget(max(1, math.floor(quota)), "cgroup quota")
    return CpuBudget(affinity, "affinity")


def resident_bytes() -> int | None:
    """This process's resident memory (VmRSS), or None where /proc does not say."""
    match = re.search(r"VmRSS:\s+(\d+) kB", _read(Path("/proc/self/status")) or "")
    return int(match.group(1)) * 1024 if match else None


# Spending it ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreadPlan:
    """torch intra-op threads per forward pass, and how many passes may run at once."""

    budget: CpuBudget
    threads: int
    passes: int

    def describe(self) -> str:
        passes = f"{self.passes} forward pass{'es' if self.passes > 1 else ''} at once"
        return f"{passes}, CPU budget {self.budget.cpus} ({self.budget.source})"


def plan_threads(budget: CpuBudget, workers: int, threads: int | None = None) -> ThreadPlan:
    """``threads`` per pass (default: the budget split between the ``workers``, at least one each), and as many
    passes at once as the budget holds at that many threads (at least one)."""
    per_pass = threads or max(1, budget.cpus // max(1, workers))
    return ThreadPlan(budget, per_pass, max(1, budget.cpus // per_pass))


class ComputeSlots:
    """At most ``passes`` forward passes at once (batchers and GradCAM alike), each on ``threads`` intra-op
    threads (None: as torch is set); the others wait their turn, first come first served.

    First come, first served matters: with a plain semaphore the worker that just released a slot takes it
    back before a waiting one wakes, and a busy model starves the others (measured: the generator ran 11
    passes in 3 s beside a busy detector on one CPU, ``bench/cpu_plan.py``).
    """

    def __init__(self, passes: int, threads: int | None = None) -> None:
        if passes < 1 or (threads is not None and threads < 1):
            raise ValueError(f"passes and threads must be >= 1, got {passes} and {threads}")
        self.passes = passes
        self.threads = threads
        self._lock = threading.Lock()
        self._free = passes
        self._waiting: collections.deque[threading.Event] = collections.deque()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            turn = None
            if self._free and not self._waiting:
                self._free -= 1
            else:
                turn = threading.Event()
                self._waiting.append(turn)
        if turn is not None:
            turn.wait()  # set by the pass that hands its slot over
        try:
            # torch's thread count is per OS thread, fixed by its first parallel work: a worker thread that
            # computed before the plan was set (loading the models, say) would keep another count.
            if self.threads is not None and torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)
            yield
        finally:
            with self._lock:
                if self._waiting:
                    self._waiting.popleft().set()  # the slot goes to the longest waiter, not back to the pool
                else:
                    self._free += 1


def decode_slots(budget: CpuBudget) -> int:
    """Large uploads decoded at once (decoding is CPU-bound: more at once is not faster, only bigger)."""
    return max(2, budget.cpus)


@dataclass(frozen=True)
class MemoryNeed:
    resident: int  # the process now, models loaded
    uploads: int  # the upload budget, as held at its peak
    decoding: int  # large decodes at once, at the pixel limit

    @property
    def total(self) -> int:
        return self.resident + self.uploads + self.decoding


def memory_need(resident: int, upload_memory_bytes: int, decoders: int, max_image_pixels: int) -> MemoryNeed:
    return MemoryNeed(
        resident, UPLOAD_COPIES * upload_memory_bytes, decoders * max_image_pixels * DECODE_BYTES_PER_PIXEL
    )


def check_memory(need: MemoryNeed, limit: int | None) -> str | None:
    """Why the worst case does not fit ``limit`` (a message naming the settings to change), or None when it does."""
    if limit is None or need.total <= limit:
        return None
    mib = 2**20
    return (
        f"the worst case of these settings needs {need.total / mib:.0f} MiB but the memory limit (cgroup) is "
        f"{limit / mib:.0f} MiB: {need.resident / mib:.0f} MiB for the process with its models, "
        f"{need.uploads / mib:.0f} MiB for uploads being read (FGAN_UPLOAD_MEMORY_BYTES x {UPLOAD_COPIES}), "
        f"{need.decoding / mib:.0f} MiB for large images being decoded (FGAN_MAX_IMAGE_PIXELS x "
        f"{DECODE_BYTES_PER_PIXEL} bytes x the decodes at once); lower FGAN_UPLOAD_MEMORY_BYTES or "
        "FGAN_MAX_IMAGE_PIXELS, or give the service more memory"
    )
