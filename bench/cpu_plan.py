"""Forward passes that run at once, on a CPU budget: torch's threads shared by all, or planned.

Run inside a cgroup with a CPU quota (``docker run --cpus 1``, or a cgroup of one's own) to see what the
plan does where the quota is below the CPUs the process may run on.

The service runs one batcher worker per model (generator, discriminator, detector), each calling its
network in a loop when its queue is busy. Each run here is a fresh process pinned to ``--cpus`` CPUs,
with the shipped networks and one such worker per busy model, for ``--seconds``; it counts images and
the time of every forward pass. Plans:

- ``shared``: what the service did before: torch's threads set to the CPUs the process may run on (its
  affinity, whatever its cgroup quota), every worker computing at once (3 workers x N threads when all
  are busy);
- ``split``: the budget split between the three workers (at least one thread each), every worker's pass
  at once;
- ``strict``: service.resources' plan, the service's default: the same threads, but never more threads
  computing than the budget (at most budget // threads passes at once, the others waiting their turn,
  first come first served);
- ``serial``: all the budget's threads for each pass, one pass at a time.

Loads: all three models busy (mixed traffic), and each model alone (one endpoint's traffic). The models
cost different amounts per image, so the mixed load is summed as work: each model's images/s over the
most it managed alone (under any plan), added up; 1.0 is one model's best rate.

    python bench/cpu_plan.py --cpus 1 2 4 --out bench/results/cpu_plan.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.allocator import TUNED  # noqa: E402
from bench.record import header, write  # noqa: E402

MODELS = ("generator", "discriminator", "detector")
LOADS = {"all three": MODELS, **{f"{name} alone": (name,) for name in MODELS}}
PLANS = ("shared", "split", "strict", "serial")


def plan_for(name: str) -> tuple[int, int | None]:
    """(torch threads, passes at once or None for no limit) of a plan, in this process (its CPUs and quota)."""
    from service.resources import affinity_cpus, cpu_budget, plan_threads

    if name == "shared":  # the service before: one thread per CPU it may run on, quota or not
        return affinity_cpus(), None
    budget = cpu_budget()
    if name == "serial":
        return budget.cpus, 1
    plan = plan_threads(budget, len(MODELS))  # the service's plan
    if name == "split":  # the same threads, every model's pass at once
        return plan.threads, None
    return plan.threads, plan.passes


def measure(plan: str, busy: tuple[str, ...], seconds: float, batch: int) -> dict:
    """Images per second and pass times of the busy models under a plan, in this process."""
    import numpy as np
    import torch

    import models
    from service.loading import freeze_for_serving
    from service.resources import ComputeSlots

    threads, passes = plan_for(plan)
    torch.set_num_threads(threads)
    nets = {name: freeze_for_serving(models.load_model(models.WEIGHTS_DIR / name)) for name in MODELS}
    generator = nets["generator"]
    z, y = models.noise(range(batch), generator.z_dim), torch.arange(batch) % models.NUM_CLASSES
    with torch.inference_mode():
        x = models.to_float(models.quantize(generator(z, y)))
    inputs = {"generator": (z, y), "discriminator": (x, y), "detector": (x, None)}
    slots = ComputeSlots(passes, threads) if passes is not None else None
    times: dict[str, list[float]] = {name: [] for name in busy}
    start = threading.Barrier(len(busy) + 1)
    stop_at = [0.0]

    def work(name: str) -> None:
        net, args = nets[name], inputs[name]
        with torch.inference_mode():
            for _ in range(3):  # warm up
                net(*args)
            start.wait()
            while time.perf_counter() < stop_at[0]:
                began = time.perf_counter()
                if slots is None:
                    net(*args)
                else:
                    with slots.held():
                        net(*args)
                times[name].append(time.perf_counter() - began)

    workers = [threading.Thread(target=work, args=(name,)) for name in busy]
    for worker in workers:
        worker.start()
    stop_at[0] = time.perf_counter() + 3600  # set for real once everyone is warm
    start.wait()
    cpu_before = time.process_time()
    stop_at[0] = time.perf_counter() + seconds
    for worker in workers:
        worker.join()
    cpu_seconds = time.process_time() - cpu_before  # every thread of the process, user + system
    result: dict = {"threads": threads, "passes": passes}
    for name, spans in times.items():
        ms = np.array(spans) * 1e3
        result[name] = {
            "images_per_s": round(len(spans) * batch / seconds, 1),
            "pass_ms_p50": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
            "pass_ms_p99": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        }
    images = sum(len(spans) for spans in times.values()) * batch
    result["total_images_per_s"] = round(images / seconds, 1)
    # CPU time per image: what oversubscription wastes (spinning, switching), whatever else the machine runs.
    result["cpu_ms_per_image"] = round(cpu_seconds / max(images, 1) * 1e3, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2, 4], help="CPU budgets to try")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--batch", type=int, default=32, help="images per forward pass")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(measure(job["plan"], tuple(job["busy"]), args.seconds, args.batch)))
        return
    available = sorted(os.sched_getaffinity(0))
    from service.resources import cgroup_cpu_limit

    quota = cgroup_cpu_limit()
    print(f"cgroup CPU quota: {quota if quota is not None else 'none'}")
    runs = []
    print(
        f"{'cpus':>4} {'load':16} {'plan':8} {'threads':>7} {'passes':>6} {'images/s':>9} {'cpu ms/img':>10}  "
        "per model: images/s (pass p50 / p99 ms)"
    )
    for cpus in args.cpus:
        if cpus > len(available):
            print(f"skipping {cpus} CPUs: only {len(available)} available")
            continue
        for load, busy in LOADS.items():
            for plan in PLANS:
                job = json.dumps({"plan": plan, "busy": busy})
                command = [sys.executable, __file__, "--child", job, "--seconds", str(args.seconds)]
                command += ["--batch", str(args.batch)]
                pinned = ["taskset", "-c", ",".join(map(str, available[:cpus])), *command]
                done = subprocess.run(pinned, check=True, capture_output=True, text=True, env=os.environ | TUNED)
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                threads, passes = figures["threads"], figures["passes"]
                runs.append({"cpus": cpus, "load": load, "plan": plan, **figures})
                detail = ", ".join(
                    f"{m} {figures[m]['images_per_s']:.0f} ({figures[m]['pass_ms_p50']} / {figures[m]['pass_ms_p99']})"
                    for m in busy
                )
                print(
                    f"{cpus:>4} {load:16} {plan:8} {threads:>7} {passes or '-':>6} "
                    f"{figures['total_images_per_s']:>9.0f} {figures['cpu_ms_per_image']:>10.3f}  {detail}",
                    flush=True,
                )
    summary = []
    for cpus in sorted({run["cpus"] for run in runs}):
        alone = {
            name: max(r[name]["images_per_s"] for r in runs if r["cpus"] == cpus and r["load"] == f"{name} alone")
            for name in MODELS
        }
        for plan in PLANS:
            (mixed,) = [r for r in runs if r["cpus"] == cpus and r["load"] == "all three" and r["plan"] == plan]
            work = sum(mixed[name]["images_per_s"] / alone[name] for name in MODELS)
            p99 = max(mixed[name]["pass_ms_p99"] for name in MODELS)
            summary.append({"cpus": cpus, "plan": plan, "mixed_work": round(work, 3), "worst_pass_p99_ms": p99})
            print(f"{cpus} CPUs, {plan}: all three busy do {work:.2f}x one model's best rate; worst pass p99 {p99} ms")
    if args.out:
        command = " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
        record = {**header(command, cgroup_cpu_quota=quota), "batch": args.batch, "summary": summary, "runs": runs}
        print("wrote", write(args.out, record))


if __name__ == "__main__":
    main()
