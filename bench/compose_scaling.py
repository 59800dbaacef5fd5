"""The bulk classify command against the compose deployment with 1, then 2, ``api`` replicas on this host.

Starts ``docker compose up --scale api=N`` (the image must be built already: ``docker compose build``, or
``docker build -t fashion-gan:cpu .``), sends the Fashion-MNIST test images with
``python -m training classify --dir … --url <proxy> --concurrency C``, and reads from the command's summary how
many images a second were judged and how many batches each replica answered (the proxy's ``X-Upstream``).
Prints the figures and writes bench/results/compose_scaling.json. Needs a container engine.

    python bench/compose_scaling.py                    # replicas of 2 CPUs each (compose's default)
    python bench/compose_scaling.py --cpus 1 --out bench/results/compose_scaling_1cpu.json
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bulk_classify import run_command, write_pngs  # noqa: E402
from bench.local_service import free_port  # noqa: E402
from bench.record import header, write  # noqa: E402

PROJECT = "fgan-scaling"


def compose(*args: str, port: int, cpus: str) -> None:
    env = {**os.environ, "FGAN_PUBLISH_PORT": str(port), "FGAN_ACCESS_LOG": "false", "FGAN_CPUS": cpus}
    subprocess.run(["docker", "compose", "-p", PROJECT, *args], cwd=ROOT, env=env, check=True, timeout=600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="the first N test images (default all 10,000)")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--cpus", default="2", help="FGAN_CPUS: the CPU limit of each replica (compose's default 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "compose_scaling.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fgan-scaling-"))
    port = free_port()
    runs = []
    try:
        paths = write_pngs(work / "images", args.limit)
        for replicas in args.replicas:
            compose("up", "-d", "--no-build", "--wait", "--scale", f"api={replicas}", port=port, cpus=args.cpus)
            load = os.getloadavg()
            url = f"http://127.0.0.1:{port}"
            command = ["--dir", str(work / "images"), "--url", url, "--concurrency", str(args.concurrency)]
            seconds, lines, summary = run_command(command, "0,1")
            rate = float(re.search(r"\(([\d.]+) images/s\)", summary).group(1))
            spread = dict(re.findall(r"(\d+\.\d+\.\d+\.\d+:\d+) (\d+)", summary))
            judged = sum("label" in line for line in lines)
            runs.append(
                {
                    "replicas": replicas,
                    "images": len(paths),
                    "judged": judged,
                    "seconds": round(seconds, 2),
                    "images_per_s_judging": rate,
                    "batches_by_upstream": {k: int(v) for k, v in spread.items()},
                    "summary": summary,
                    "load_average_before": load,
                }
            )
            print(f"{replicas} replica(s): {summary}")
    finally:
        compose("down", "--remove-orphans", port=port, cpus=args.cpus)
        shutil.rmtree(work, ignore_errors=True)
    base = runs[0]["images_per_s_judging"]
    for run in runs:
        run["speedup_vs_first"] = round(run["images_per_s_judging"] / base, 2) if base else None
    result = {
        **header(" ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), load_average_at_end=os.getloadavg()),
        "concurrency": args.concurrency,
        "cpus_per_replica": args.cpus,
        "runs": runs,
    }
    print(f"wrote {write(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
