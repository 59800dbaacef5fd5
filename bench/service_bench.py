"""Throughput and latency of the service under concurrency, against two baselines.

The servers run side by side, each pinned to the same CPU core (``taskset``):

- ``engine``: the service (``python -m service``) with its micro-batching engine;
- ``no-batching``: the same service with FGAN_MAX_BATCH_SIZE=1 (baseline a);
- ``plain``: bench/plain_app.py, a per-request FastAPI handler with UploadFile/Form (baseline b);
- ``fastapi-route`` (only when asked for with ``--variants``): the service with
  FGAN_DIRECT_GENERATE=false and FGAN_DIRECT_TRANSLATE=false, so every GET /generate and POST /translate goes
  through FastAPI's routing and validation.

A load generator pinned to another core (Debian's ``hey`` when installed, else an asyncio + httpx
client in this process) drives GET /generate, POST /classify, POST /classify/batch (``classify-batch``:
--batch-images images a request; not the plain handler, which has no such route) and POST /translate (a
28x28 PNG sketch, dark strokes on white, so that the inversion runs too) at each concurrency,
one variant after the other for each point (so slow drift on a shared machine hits all alike). Each
point has a short warm-up, then a timed run. The script prints a table and writes JSON with
requests/s, images/s, p50, p99 and errors per point, plus the ratios the service is held to at
concurrency 32: /generate >= 2.5x, /classify >= 1.5x and /translate >= 2x the plain handler's requests/s,
with p99 no worse; and /classify/batch at concurrency 8 >= 2x the images/s of single /classify at 32, on the
engine.

Models: the checkpoints in --weights (the shipped ones by default when present), else networks
of the shipped sizes (default GeneratorConfig/DiscriminatorConfig) with fixed random weights:
speed does not depend on what the weights have learned.

    python bench/service_bench.py                      # about 3 minutes
    python bench/service_bench.py --duration 2 --concurrency 1 32   # a quick look
    python bench/service_bench.py --endpoints generate --variants engine fastapi-route plain --concurrency 32 \
        --out bench/results/direct_route.json      # what the direct /generate path saves
    python bench/service_bench.py --endpoints classify classify-batch --variants engine --concurrency 8 32 \
        --out bench/results/classify_batch.json    # single /classify against /classify/batch, side by side
    python bench/service_bench.py --endpoints translate --out bench/results/translate_bench.json   # sketches
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import models  # noqa: E402
from bench import local_service  # noqa: E402
from bench.local_service import LocalService  # noqa: E402
from bench.record import header, write  # noqa: E402
from service.loading import TRANSLATOR, default_classifier_name  # noqa: E402

VARIANTS = ("engine", "no-batching", "plain", "fastapi-route")
DEFAULT_VARIANTS = VARIANTS[:3]
ENDPOINTS = ("generate", "classify", "classify-batch", "translate")
DEFAULT_ENDPOINTS = ("generate", "classify", "translate")
TARGETS = {"generate": 2.5, "classify": 1.5, "translate": 2.0}  # requests/s over the plain handler's, at 32
# Images/s of /classify/batch at concurrency BATCH_CONCURRENCY over single /classify's at 32 (the engine's).
BATCH_TARGET, BATCH_CONCURRENCY = 2.0, 8
PATHS = {"classify": "/classify", "classify-batch": "/classify/batch", "translate": "/translate"}


@dataclass
class Point:
    variant: str
    endpoint: str
    concurrency: int
    requests: int
    rps: float
    images_per_s: float  # rps x images a request (/classify/batch: --batch-images; /generate: 1)
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms_per_request: float  # the server process's CPU time (all threads, user + system) / requests


# Servers ---------------------------------------------------------------------------------------


def make_weights(directory: Path) -> Path:
    """Networks of the shipped sizes with fixed random weights."""
    torch.manual_seed(0)
    models.save_model(models.Generator(models.GeneratorConfig()), directory / "generator")
    models.save_model(models.Discriminator(models.DiscriminatorConfig()), directory / "discriminator")
    models.save_model(models.Pix2PixGenerator(models.Pix2PixGeneratorConfig()), directory / TRANSLATOR)
    return directory


def start_server(variant: str, weights: Path, cpu: int, log_dir: Path) -> LocalService:
    env = {"FGAN_LOG_LEVEL": "warning", "FGAN_ACCESS_LOG": "false", "FGAN_QUEUE_LIMIT": "1024"}
    command = None
    if variant == "plain":
        command = [sys.executable, "-m", "uvicorn", "plain_app:app", "--app-dir", str(ROOT / "bench")]
        command += ["--no-access-log", "--log-level", "warning"]
    elif variant == "no-batching":
        env["FGAN_MAX_BATCH_SIZE"] = "1"
    elif variant == "fastapi-route":
        env["FGAN_DIRECT_GENERATE"] = env["FGAN_DIRECT_TRANSLATE"] = "false"
    return local_service.start(weights, log_dir / f"{variant}.log", env=env, command=command, cpu=cpu)


# Requests --------------------------------------------------------------------------------------


def classify_body(images: int = 1) -> tuple[bytes, str]:
    """A multipart body with ``images`` 28x28 PNGs (different ones) and label 8 for each, as curl -F would send it."""
    rng = np.random.default_rng(0)
    boundary = uuid.uuid4().hex
    body = b""
    for _ in range(images):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, size=(28, 28), dtype=np.uint8)).save(buffer, format="PNG")
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        body += buffer.getvalue() + b"\r\n"
    for _ in range(images):
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="label"\r\n\r\n8\r\n'.encode()
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def sketch_body() -> tuple[bytes, str]:
    """A multipart body with one 28x28 PNG sketch (a shoe's outline, dark strokes on white), as curl -F sends it."""
    from PIL import ImageDraw

    drawing = Image.new("L", (28, 28), 255)
    ImageDraw.Draw(drawing).line([(2, 21), (7, 13), (14, 14), (25, 20), (25, 23), (2, 23), (2, 21)], fill=0, width=2)
    buffer = io.BytesIO()
    drawing.save(buffer, format="PNG")
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="sketch.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body += buffer.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def generate_url(url: str) -> str:
    return f"{url}/generate?label=3&seed=42"


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far, user + system, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


# Load generators -------------------------------------------------------------------------------


def run_hey(
    url: str, endpoint: str, concurrency: int, duration: float, cpu: int, body: Path, ctype: str
) -> tuple[int, float, float, float, int]:
    command = ["taskset", "-c", str(cpu), "hey", "-z", f"{duration}s", "-c", str(concurrency), "-t", "30"]
    if endpoint in PATHS:
        command += ["-m", "POST", "-D", str(body), "-T", ctype, f"{url}{PATHS[endpoint]}"]
    else:
        command += [generate_url(url)]
    text = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)) if "Requests/sec" in text else 0.0
    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)}
    failures = text.split("Error distribution:", 1)[1] if "Error distribution:" in text else ""
    failed = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]\s", failures, re.M))  # timeouts, resets
    ok = statuses.get(200, 0)
    errors = sum(n for code, n in statuses.items() if code != 200) + failed

    def percentile(p: int) -> float:
        match = re.search(rf"\s{p}% in ([\d.]+) secs", text)
        return float(match.group(1)) * 1000 if match else float("nan")

    return ok + errors, rps * ok / max(ok + errors, 1), percentile(50), percentile(99), errors


def run_python(
    url: str, endpoint: str, concurrency: int, duration: float, body: bytes, ctype: str
) -> tuple[int, float, float, float, int]:
    """Closed-loop load: ``concurrency`` workers, each sending its next request when the last answers."""
    import httpx

    async def main() -> tuple[list[float], int]:
        latencies: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            stop_at = time.monotonic() + duration

            async def worker() -> None:
                nonlocal errors
                while time.monotonic() < stop_at:
                    started = time.perf_counter()
                    try:
                        if endpoint in PATHS:
                            response = await client.post(
                                f"{url}{PATHS[endpoint]}", content=body, headers={"content-type": ctype}
                            )
                        else:
                            response = await client.get(generate_url(url))
                        ok = response.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if ok:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, errors

    started = time.monotonic()
    latencies, errors = asyncio.run(main())
    elapsed = time.monotonic() - started
    ms = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    return (
        len(latencies) + errors,
        len(latencies) / elapsed,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        errors,
    )


# The models alone -------------------------------------------------------------------------------


def model_only(weights: Path, cpu: int, seconds: float = 1.0) -> dict[str, dict[str, float]]:
    """Milliseconds per image of each model's forward pass at batch 1 and 32, on the servers' core.

    The ceiling on what batching can gain: at most (HTTP + batch-1 cost) / (HTTP + batch-32 cost).
    """
    before = os.sched_getaffinity(0)
    threads = torch.get_num_threads()
    os.sched_setaffinity(0, {cpu})
    torch.set_num_threads(1)
    try:
        generator = models.load_model(weights / "generator")
        judge_name = default_classifier_name(weights)  # /classify's default model
        judge = models.load_model(weights / judge_name)
        networks = [
            ("generator", generator, lambda b: (models.noise(list(range(b)), generator.z_dim), torch.arange(b) % 10)),
            (judge_name, judge, lambda b: (torch.rand(b, 1, 28, 28) * 2 - 1, torch.arange(b) % 10)),
        ]
        if (weights / TRANSLATOR).is_dir():
            translator = models.load_model(weights / TRANSLATOR).eval()
            networks.append((TRANSLATOR, translator, lambda b: (torch.rand(b, 1, 28, 28) * 2 - 1,)))
        figures = {}
        with torch.inference_mode():
            for name, network, batch_of in networks:
                figures[name] = {}
                for batch in (1, 32):
                    inputs = batch_of(batch)
                    network(*inputs)
                    count, started = 0, time.perf_counter()
                    while time.perf_counter() - started < seconds:
                        network(*inputs)
                        count += 1
                    per_image = (time.perf_counter() - started) / count / batch * 1000
                    figures[name][f"ms_per_image_batch_{batch}"] = round(per_image, 3)
        return figures
    finally:
        os.sched_setaffinity(0, before)
        torch.set_num_threads(threads)


# Main ------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, help="checkpoint directory (default: shipped, else shipped sizes)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--endpoints", nargs="+", choices=ENDPOINTS, default=list(DEFAULT_ENDPOINTS))
    parser.add_argument("--batch-images", type=int, default=32, help="images per /classify/batch request")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(DEFAULT_VARIANTS))
    parser.add_argument("--duration", type=float, default=4.0, help="seconds measured per point")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each point")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--tool", choices=("auto", "hey", "python"), default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "service_bench.json")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if shutil.which("taskset") is None:
        raise SystemExit("taskset is needed to pin the servers (Debian: util-linux)")
    tool = args.tool if args.tool != "auto" else ("hey" if shutil.which("hey") else "python")
    work = Path(tempfile.mkdtemp(prefix="fgan-bench-"))
    weights = args.weights
    weights_note = str(weights)
    if weights is None:
        shipped = models.WEIGHTS_DIR
        if (shipped / "generator").is_dir():
            weights, weights_note = shipped, f"shipped ({shipped})"
        else:
            weights = make_weights(work / "weights")
            weights_note = "shipped sizes (default GeneratorConfig/DiscriminatorConfig), fixed random weights"
    if "translate" in args.endpoints and not (weights / TRANSLATOR).is_dir():
        raise SystemExit(f"{weights} has no {TRANSLATOR}/ checkpoint: /translate cannot be measured with it")
    bodies = {
        "classify": classify_body(),
        "classify-batch": classify_body(args.batch_images),
        "translate": sketch_body(),
    }
    for endpoint, (body, _) in bodies.items():
        (work / f"{endpoint}.body").write_bytes(body)

    models_alone = model_only(weights, args.server_cpu)
    for name, figures in models_alone.items():
        print(f"{name} alone: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    servers = {v: start_server(v, weights, args.server_cpu, work) for v in args.variants}
    if tool == "python":
        os.sched_setaffinity(0, {args.client_cpu})  # the client shares no core with the servers
    points: list[Point] = []
    try:
        for server in servers.values():
            server.wait_ready()
        print(f"load: {tool} on CPU {args.client_cpu}; servers on CPU {args.server_cpu}; weights: {weights_note}")
        print(
            f"{'endpoint':14} {'conc':>4} {'variant':13} {'req/s':>8} {'images/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'errors':>6} {'cpu ms/req':>10}"
        )
        for endpoint in args.endpoints:
            body, ctype = bodies.get(endpoint, (b"", ""))
            per_request = args.batch_images if endpoint == "classify-batch" else 1
            for concurrency in args.concurrency:
                for variant in args.variants:
                    if variant == "plain" and endpoint == "classify-batch":
                        continue  # the plain handler has no batch route
                    url = servers[variant].url

                    def load(
                        seconds: float,
                        url: str = url,
                        concurrency: int = concurrency,
                        endpoint: str = endpoint,
                        body: bytes = body,
                        ctype: str = ctype,
                    ):
                        if tool == "hey":
                            body_file = work / f"{endpoint}.body"
                            return run_hey(url, endpoint, concurrency, seconds, args.client_cpu, body_file, ctype)
                        return run_python(url, endpoint, concurrency, seconds, body, ctype)

                    if args.warmup > 0:
                        load(args.warmup)
                    pid = servers[variant].pid
                    cpu_before = cpu_seconds(pid)
                    n, rps, p50, p99, errors = load(args.duration)
                    cpu_ms = (cpu_seconds(pid) - cpu_before) / max(n, 1) * 1000
                    point = Point(
                        variant,
                        endpoint,
                        concurrency,
                        n,
                        round(rps, 1),
                        round(rps * per_request, 1),
                        round(p50, 2),
                        round(p99, 2),
                        errors,
                        round(cpu_ms, 3),
                    )
                    points.append(point)
                    print(
                        f"{endpoint:14} {concurrency:>4} {variant:13} {rps:>8.1f} {rps * per_request:>8.1f} {p50:>8.2f} "
                        f"{p99:>8.2f} {errors:>6} {cpu_ms:>10.3f}"
                    )
    finally:
        for server in servers.values():
            server.stop()

    summary = {}
    batch = next(
        (
            p
            for p in points
            if p.variant == "engine" and p.endpoint == "classify-batch" and p.concurrency == BATCH_CONCURRENCY
        ),
        None,
    )
    single = next(
        (p for p in points if p.variant == "engine" and p.endpoint == "classify" and p.concurrency == 32), None
    )
    if batch is not None and single is not None:
        ratio = batch.images_per_s / single.images_per_s if single.images_per_s else float("inf")
        summary["classify-batch"] = {
            "images_per_s_vs_single_classify": round(ratio, 2),
            "target": BATCH_TARGET,
            "batch_images_per_s": batch.images_per_s,
            "single_images_per_s": single.images_per_s,
            "meets_target": ratio >= BATCH_TARGET,
        }
        print(
            f"/classify/batch ({args.batch_images} images) at {BATCH_CONCURRENCY}: {ratio:.2f}x the images/s of single "
            f"/classify at 32 (target {BATCH_TARGET}x)"
        )
    for endpoint in args.endpoints:
        if endpoint not in TARGETS:
            continue
        by_variant = {p.variant: p for p in points if p.endpoint == endpoint and p.concurrency == 32}
        if {"engine", "plain"} <= set(by_variant):
            engine, plain = by_variant["engine"], by_variant["plain"]
            ratio = engine.rps / plain.rps if plain.rps else float("inf")
            summary[endpoint] = {
                "speedup_vs_plain_at_32": round(ratio, 2),
                "target": TARGETS[endpoint],
                "p99_ms": engine.p99_ms,
                "plain_p99_ms": plain.p99_ms,
                "meets_target": ratio >= TARGETS[endpoint] and engine.p99_ms <= plain.p99_ms,
            }
            print(
                f"/{endpoint} at 32: {ratio:.2f}x the plain handler (target {TARGETS[endpoint]}x), "
                f"p99 {engine.p99_ms:.1f} ms vs {plain.p99_ms:.1f} ms"
            )
    result = {
        **header(
            " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            torch=torch.__version__,
            load_average_at_end=os.getloadavg(),
        ),
        "setup": {
            "tool": tool,
            "server_cpu": args.server_cpu,
            "client_cpu": args.client_cpu,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "weights": weights_note,
            "engine_settings": "defaults (FGAN_MAX_BATCH_SIZE=32, FGAN_BATCH_TIMEOUT_MS=4), access log off",
            "batch_images": args.batch_images,
        },
        "model_only": models_alone,
        "results": [asdict(p) for p in points],
        "summary": summary,
    }
    print(f"wrote {write(args.out, result)}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
