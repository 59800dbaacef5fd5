"""The bulk classify command on the Fashion-MNIST test set, against the service's answers for the same files.

1. Writes the 10,000 test images as PNG files (one folder a class).
2. Times ``python -m training classify --dir … --threads 2`` in process, pinned to two CPUs with ``taskset``.
3. Starts the service (``bench.local_service``) and sends every file to ``POST /classify`` on its own; the
   command's verdict for each file must be the same bytes of JSON as that answer.
4. Times the command with ``--url`` against the same service (``POST /classify/batch``), and checks its
   verdicts too.

It prints the figures and writes them to bench/results/bulk_classify.json. Nothing here asserts a speed.

    python bench/bulk_classify.py                  # about 2-3 minutes on two CPUs
    python bench/bulk_classify.py --limit 2000     # a quicker look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import models  # noqa: E402
from bench import local_service  # noqa: E402
from bench.record import header, write  # noqa: E402
from training.classify_files import Item  # noqa: E402
from training.data import load_split  # noqa: E402
from training.service_client import multipart  # noqa: E402


def write_pngs(folder: Path, limit: int | None) -> list[Path]:
    test = load_split("test", limit=limit, download=False)
    paths = []
    for i, (image, label) in enumerate(zip(test.images.numpy(), test.labels.tolist(), strict=True)):
        path = folder / str(label) / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def run_command(args: list[str], cpus: str) -> tuple[float, list[dict], str]:
    """Run the classify command pinned to ``cpus``; its wall time, its JSON lines and its stderr's last line."""
    command = ["taskset", "-c", cpus, sys.executable, "-m", "training", "classify", "--no-progress", *args]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return seconds, lines, done.stderr.strip().splitlines()[-1]


def single_answers(url: str, paths: list[Path], concurrency: int) -> dict[str, bytes]:
    """Each file's /classify answer, as the bytes of its body."""

    def one(path: Path) -> tuple[str, bytes]:
        body, ctype = multipart([Item(path)], [path.read_bytes()], False, None)
        request = urllib.request.Request(f"{url}/classify", body, {"Content-Type": ctype}, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return str(path), response.read()

    with ThreadPoolExecutor(concurrency) as pool:
        return dict(pool.map(one, paths))


def compact(verdict: dict) -> bytes:
    """A verdict as the service serializes it (JSON without spaces)."""
    return json.dumps({k: verdict[k] for k in ("label", "confidence")}, separators=(",", ":")).encode()


def mismatches(lines: list[dict], answers: dict[str, bytes]) -> list[str]:
    return [line["path"] for line in lines if "error" in line or compact(line) != answers[line["path"]]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="the first N test images (default all 10,000)")
    parser.add_argument("--cpus", default="0,1", help="CPUs of the in-process command (taskset list)")
    parser.add_argument("--server-cpu", default="0", help="CPUs of the service (taskset list)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight for /classify and --url")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bulk_classify.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fgan-bulk-"))
    try:
        paths = write_pngs(work / "images", args.limit)
        load_before = os.getloadavg()
        threads = str(len(args.cpus.split(",")))
        local_s, local, local_summary = run_command(["--dir", str(work / "images"), "--threads", threads], args.cpus)
        print(f"in process on CPUs {args.cpus}: {len(local)} images in {local_s:.1f} s ({len(local) / local_s:.0f}/s)")
        print(f"  {local_summary}")
        env = {"FGAN_LOG_LEVEL": "warning", "FGAN_ACCESS_LOG": "false"}
        with local_service.running(models.WEIGHTS_DIR, work / "service.log", env=env, cpu=None) as server:
            started = time.perf_counter()
            answers = single_answers(server.url, paths, args.concurrency)
            single_s = time.perf_counter() - started
            print(f"/classify one by one: {len(answers)} answers in {single_s:.1f} s ({len(answers) / single_s:.0f}/s)")
            remote_s, remote, remote_summary = run_command(
                ["--dir", str(work / "images"), "--url", server.url, "--concurrency", str(args.concurrency)], args.cpus
            )
            print(f"--url (/classify/batch): {len(remote)} images in {remote_s:.1f} s ({len(remote) / remote_s:.0f}/s)")
            print(f"  {remote_summary}")
        local_diff, remote_diff = mismatches(local, answers), mismatches(remote, answers)
        print(f"verdicts differing from /classify's: in process {len(local_diff)}, --url {len(remote_diff)}")
        result = {
            **header(" ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), load_average_before=load_before),
            "images": len(paths),
            "in_process": {
                "cpus": args.cpus,
                "threads": int(threads),
                "seconds": round(local_s, 2),
                "images_per_s": round(len(local) / local_s, 1),
                "summary": local_summary,
                "differ_from_classify": local_diff[:20],
                "differ_count": len(local_diff),
            },
            "classify_one_by_one": {"seconds": round(single_s, 2), "concurrency": args.concurrency},
            "url_batch": {
                "seconds": round(remote_s, 2),
                "images_per_s": round(len(remote) / remote_s, 1),
                "concurrency": args.concurrency,
                "summary": remote_summary,
                "differ_count": len(remote_diff),
            },
            "load_average_at_end": os.getloadavg(),
        }
        print(f"wrote {write(args.out, result)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
