"""Forward-pass time of the shipped networks with glibc's default allocator and with the service's tuning.

The service's image sets glibc's mmap and trim thresholds through the environment (``TUNED``, the
variables the Dockerfile sets; docs/service.md) so that the batch-sized buffers of a forward pass are
reused instead of mapped and unmapped every time. glibc reads them when a process starts, so each
variant runs in fresh processes (``--repeats`` each, alternating), one torch thread, and this script
prints and writes the per-image times.

    python bench/allocator.py --out bench/results/allocator.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import header, write  # noqa: E402

BATCHES = (32, 64)
# glibc's malloc tunables (mallopt(3)): a fixed mmap threshold of 32 MiB (the most it takes on 64-bit), above
# any buffer of a batch of 64, and a trim threshold of 256 MiB, so freed buffers stay in the heap for reuse.
TUNED = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20)}


def environment(tuned: bool) -> dict[str, str]:
    """This environment with glibc's thresholds set as the service's image sets them, or without them."""
    env = {k: v for k, v in os.environ.items() if k not in TUNED}
    return env | TUNED if tuned else env


def measure(reps: int) -> dict[str, float]:
    """ms per image for the generator and the detector at each batch size, in this process."""
    import torch

    import models
    from service.loading import freeze_for_serving

    torch.set_num_threads(1)
    generator = freeze_for_serving(models.load_model(models.WEIGHTS_DIR / "generator"))
    detector = freeze_for_serving(models.load_model(models.WEIGHTS_DIR / "detector"))
    out = {}
    with torch.inference_mode():
        for batch in BATCHES:
            z, y = models.noise(range(batch), generator.z_dim), torch.arange(batch) % 10
            x = models.to_float(models.quantize(generator(z, y)))
            for name, net, inputs in (("generator", generator, (z, y)), ("detector", detector, (x, None))):
                for _ in range(5):
                    net(*inputs)
                start = time.perf_counter()
                for _ in range(reps):
                    net(*inputs)
                out[f"{name}_batch_{batch}"] = round((time.perf_counter() - start) / reps / batch * 1e3, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per variant")
    parser.add_argument("--reps", type=int, default=200, help="timed forward passes per figure")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", choices=["default", "tuned"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.reps)))
        return
    runs: dict[str, list[dict[str, float]]] = {"default": [], "tuned": []}
    for _ in range(args.repeats):
        for variant in runs:
            cmd = [sys.executable, __file__, "--child", variant, "--reps", str(args.reps)]
            result = subprocess.run(
                cmd, check=True, capture_output=True, text=True, env=environment(variant == "tuned")
            )
            runs[variant].append(json.loads(result.stdout.strip().splitlines()[-1]))
    print("ms per image, one thread; min-max over", args.repeats, "fresh processes")
    print(f"{'figure':22s} {'glibc defaults':>16s} {'tuned':>16s}")
    summary = {}
    for key in runs["default"][0]:
        span = {v: (min(r[key] for r in runs[v]), max(r[key] for r in runs[v])) for v in runs}
        summary[key] = span
        print(
            f"{key:22s} {span['default'][0]:7.3f}-{span['default'][1]:<7.3f} {span['tuned'][0]:7.3f}-{span['tuned'][1]:<7.3f}"
        )
    if args.out:
        print("wrote", write(args.out, {**header("bench/allocator.py"), "runs": runs, "min_max": summary}))


if __name__ == "__main__":
    main()
