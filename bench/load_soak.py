"""Load, overload and soak of the service, with a real HTTP client (Debian's ``hey``) on loopback.

One ``python -m service`` runs through these phases, each bounded in requests and time:

1. sustained: /generate and /classify at a total concurrency of 64 (32 each); every answer must be 200.
2. overload: both endpoints at 4x, then 8x, what the service holds per model (its queue limit plus
   one batch) in clients that resend at once (hey ignores Retry-After): several times its capacity.
   Every answer must be 200 or 503; every 503 must carry Retry-After and the JSON error (a sampler
   reads the headers hey does not report) and be counted by the service as a rejection (queue full,
   or over its admission limit); the accepted requests' p99 must stay under P99_LIMIT_S, and grow
   less than the number of clients from 4x to 8x (it grows in proportion without admission control).
3. recovery: once the overload stops, nothing stays in flight or queued, and the sustained
   phase run again gives zero errors at no less than RECOVERY_RATIO of the first throughput.
4. soak: at least 20,000 mixed requests (generate as PNG and JSON grids, classify PNG and JPEG,
   explain when the service has it, metadata, probes, metrics, and bad requests that must get
   their 4xx) in rounds of about 1,000, each round several hey processes at once. Between rounds,
   once idle, the server's resident memory and open file descriptors are read from /proc:
   after the warm-up rounds, memory may grow by less than 10 % and descriptors not at all.

It prints each phase's figures and writes them to bench/results/load_soak.json. Exit status 0
when every criterion holds, 1 otherwise.

    nice -n 10 python bench/load_soak.py                      # about 3-5 minutes on 2 cores
    python bench/load_soak.py --soak-requests 2000 --sustained-per-worker 20   # a quick look

Models: --weights, else the shipped checkpoints when present, else networks of the shipped
sizes with fixed random weights (speed does not depend on what they learned).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from http.client import HTTPConnection
from itertools import chain
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import local_service  # noqa: E402
from bench.local_service import LocalService  # noqa: E402
from bench.record import header, write  # noqa: E402

SUSTAINED_CONCURRENCY = 64
OVERLOADS = (4, 8)  # x what the service holds per model (its queue limit plus one batch)
RECOVERY_RATIO = 0.6  # throughput after the overload, at least this share of before (the machine is shared)
RSS_GROWTH_LIMIT = 0.10
P99_LIMIT_S = 2.0  # accepted requests' p99 under overload: far inside the 10 s request deadline (no 504s)
SAMPLERS = 8  # connections that read every 503's Retry-After and body during an overload
QUEUE_LIMIT = 64  # FGAN_QUEUE_LIMIT of the server under test (default 256): overload needs fewer connections
MAX_BATCH = 32


# The server ---------------------------------------------------------------------------------------


def make_weights(directory: Path, tiny: bool = False) -> Path:
    """Generator and discriminator with fixed random weights: the shipped sizes, or tiny ones."""
    import torch

    import models

    torch.manual_seed(0)
    if tiny:
        g = models.Generator(models.GeneratorConfig(z_dim=8, channels=4))
        d = models.Discriminator(models.DiscriminatorConfig(channels=4))
    else:
        g, d = models.Generator(models.GeneratorConfig()), models.Discriminator(models.DiscriminatorConfig())
    models.save_model(g.eval(), directory / "generator")
    models.save_model(d.eval(), directory / "discriminator")
    return directory


@dataclass
class Server(LocalService):
    """The server under test, with what the phases read from it."""

    def get(self, path: str, timeout: float = 10) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> str:
        return self.get("/metrics")[1]

    def rss_bytes(self) -> int:
        text = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) * 1024

    def threads(self) -> int:
        return int(re.search(r"Threads:\s+(\d+)", Path(f"/proc/{self.pid}/status").read_text()).group(1))

    @property
    def models(self) -> int:
        """Models served (each has its queue; the server admits models x (queue limit + batch) requests)."""
        return len(json.loads(self.get("/info")[1])["models"])

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def wait_idle(self, timeout_s: float = 30) -> float:
        """Wait until no request is in flight (but the /metrics one) and no queue holds anything."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            text = self.metrics()
            if metric(text, "fgan_http_requests_in_flight") <= 1 and metric(text, "fgan_engine_queue_depth") == 0:
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"the server did not become idle within {timeout_s}s")

    def wait_fds_settled(self, timeout_s: float = 5) -> int:
        """Open descriptors once closing connections are gone (the count stops changing)."""
        last, stable_since = self.fds(), time.monotonic()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.fds()
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= 0.5:
                break
        return last


# What --without removes from the service, to measure what it buys (the service itself has no such switch).
ABLATIONS = {
    "admission": "import service.limits as m; m.admission_limit = lambda state: 1 << 30",
    "asyncio-loop": (
        "import uvicorn; _init = uvicorn.Config.__init__; "
        "uvicorn.Config.__init__ = lambda self, *a, **k: _init(self, *a, **{**k, 'loop': 'auto'})"
    ),
}


def start_server(weights: Path, work: Path, cpu: int | None, without: tuple[str, ...] = (), **env: str) -> Server:
    environment = {
        "FGAN_DEVICE": os.environ.get("FGAN_DEVICE", "cpu"),
        "FGAN_TORCH_THREADS": "1",
        "FGAN_LOG_LEVEL": "warning",
        "FGAN_ACCESS_LOG": "false",
        "FGAN_QUEUE_LIMIT": str(QUEUE_LIMIT),
        "FGAN_MAX_BATCH_SIZE": str(MAX_BATCH),
    } | env
    command = None
    if without:
        patches = "; ".join(ABLATIONS[name] for name in without)
        launch = f"{patches}; import sys; from service.__main__ import main; sys.exit(main(sys.argv[1:]))"
        command = [sys.executable, "-c", launch]
    started = local_service.start(weights, work / "service.log", env=environment, command=command, cpu=cpu)
    server = Server(started.process, started.url, started.log)
    try:
        server.wait_ready(180)
    except local_service.ServiceFailed as exc:
        server.stop()
        raise SystemExit(str(exc)) from None
    return server


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of a Prometheus metric whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(3))
    return total


# The client -------------------------------------------------------------------------------------


@dataclass
class Load:
    """One hey run: ``requests`` requests from ``concurrency`` workers, each expecting ``expect``."""

    name: str
    path: str
    concurrency: int
    requests: int
    expect: tuple[int, ...] = (200,)
    body: bytes | None = None
    content_type: str | None = None

    def __post_init__(self) -> None:
        # hey sends requests // concurrency per worker: round up to a multiple, so what is asked is what is sent.
        self.requests = max(1, math.ceil(self.requests / self.concurrency)) * self.concurrency


@dataclass
class Outcome:
    name: str
    requested: int
    answered: int
    statuses: dict[int, int]
    failed: int  # requests without an HTTP answer (connection errors, timeouts)
    unexpected: int  # answers with a status the load did not expect
    wall_s: float
    latencies: dict[int, list[float]] = field(repr=False)  # seconds, by status

    @property
    def rps(self) -> float:
        return self.answered / self.wall_s if self.wall_s else 0.0

    def percentile(self, q: float, status: int | None = None) -> float:
        values = self.latencies.get(status, []) if status is not None else list(chain(*self.latencies.values()))
        return float(np.percentile(values, q)) * 1000 if values else float("nan")

    def summary(self) -> dict:
        return {
            "requests": self.requested,
            "answered": self.answered,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "failed": self.failed,
            "unexpected": self.unexpected,
            "wall_s": round(self.wall_s, 2),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
        }


def _hey_command(url: str, load: Load, body_file: Path | None, cpu: int | None) -> list[str]:
    command = ["hey", "-n", str(load.requests), "-c", str(load.concurrency), "-t", "30", "-o", "csv"]
    if body_file is not None:
        command += ["-m", "POST", "-D", str(body_file), "-T", load.content_type or "application/octet-stream"]
    command.append(url + load.path)
    return ["taskset", "-c", str(cpu), *command] if cpu is not None else command


def run_loads(url: str, loads: list[Load], cpu: int | None, work: Path, timeout_s: float = 300) -> list[Outcome]:
    """Run the loads at the same time (one hey process each) and collect every answer."""
    started: list[tuple[Load, subprocess.Popen, Path, float]] = []
    for i, load in enumerate(loads):
        body_file = None
        if load.body is not None:
            body_file = work / f"body-{i}"
            body_file.write_bytes(load.body)
        out = work / f"hey-{i}.csv"
        process = subprocess.Popen(
            _hey_command(url, load, body_file, cpu), stdout=out.open("w"), stderr=subprocess.DEVNULL
        )
        started.append((load, process, out, time.monotonic()))
    outcomes = []
    deadline = time.monotonic() + timeout_s
    for load, process, out, began in started:
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        wall = time.monotonic() - began
        outcomes.append(_parse(load, out.read_text(), wall))
    return outcomes


def _parse(load: Load, text: str, wall_s: float) -> Outcome:
    latencies: dict[int, list[float]] = {}
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows[1:]:
        if len(row) >= 7 and row[6].isdigit():
            latencies.setdefault(int(row[6]), []).append(float(row[0]))
    statuses = {status: len(values) for status, values in latencies.items()}
    answered = sum(statuses.values())
    unexpected = sum(n for status, n in statuses.items() if status not in load.expect)
    # hey's CSV lists answered requests only: the rest failed without an HTTP answer.
    return Outcome(
        load.name, load.requests, answered, statuses, load.requests - answered, unexpected, wall_s, latencies
    )


class Sampler(threading.Thread):
    """Sends requests one after another during a phase and keeps each 503's headers and body."""

    def __init__(self, url: str, path: str, max_requests: int = 3000) -> None:
        super().__init__(daemon=True)
        self.host, self.port = url.removeprefix("http://").split(":")
        self.path = path
        self.max_requests = max_requests
        self.stop = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.bad_503: list[str] = []  # 503s without Retry-After or without the JSON error

    def run(self) -> None:
        connection = HTTPConnection(self.host, int(self.port), timeout=30)
        sent = 0
        while not self.stop.is_set() and sent < self.max_requests:
            sent += 1
            try:
                connection.request("GET", self.path)
                response = connection.getresponse()
                body = response.read()
            except OSError:
                connection.close()
                connection = HTTPConnection(self.host, int(self.port), timeout=30)
                self.statuses[0] += 1
                continue
            self.statuses[response.status] += 1
            if response.status == 503:
                retry = response.getheader("Retry-After") or ""
                try:
                    error = json.loads(body).get("error")
                except ValueError:
                    error = None
                if not retry.isdigit() or error != "overloaded":
                    self.bad_503.append(f"Retry-After={retry!r} body={body[:120]!r}")
        connection.close()


# Request bodies ----------------------------------------------------------------------------------


def _image(fmt: str, seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 40, size=(28, 28)).astype(np.uint8)
    pixels[6:22, 8:20] = 200
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    (image.convert("RGB") if fmt == "JPEG" else image).save(buffer, format=fmt)
    return buffer.getvalue()


def multipart(fields: dict[str, bytes], boundary: str = "loadsoakboundary") -> tuple[bytes, str]:
    """A multipart/form-data body as curl -F sends it (the image as a file field)."""
    body = b""
    for name, value in fields.items():
        filename = '; filename="x"' if name == "image" else ""
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n'.encode()
        body += value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def classify_load(
    name: str,
    concurrency: int,
    requests: int,
    path: str = "/classify",
    expect: tuple[int, ...] = (200,),
    **fields: bytes,
) -> Load:
    body, ctype = multipart(fields)
    return Load(name, path, concurrency, requests, expect, body=body, content_type=ctype)


# Phases ------------------------------------------------------------------------------------------


def sustained(server: Server, per_worker: int, cpu: int | None, work: Path) -> dict:
    half = SUSTAINED_CONCURRENCY // 2
    loads = [
        Load("generate", "/generate?label=3&seed=42", half, half * per_worker),
        classify_load("classify", half, half * per_worker, image=_image("PNG"), label=b"8"),
    ]
    outcomes = run_loads(server.url, loads, cpu, work)
    answered = sum(o.answered for o in outcomes)
    wall = max(o.wall_s for o in outcomes)
    result = {
        "concurrency": SUSTAINED_CONCURRENCY,
        "requests": sum(o.requested for o in outcomes),
        "errors": sum(o.failed + o.unexpected for o in outcomes),
        "rps": round(answered / wall, 1),
        "by_endpoint": {o.name: o.summary() for o in outcomes},
    }
    result["ok"] = result["errors"] == 0
    return result


def overload(server: Server, factor: int, requests_per_side: int, cpu: int | None, work: Path) -> dict:
    """Both endpoints at ``factor`` x what the service holds per model; a sampler reads every 503's headers."""
    before = server.metrics()
    concurrency = factor * (QUEUE_LIMIT + MAX_BATCH)  # per endpoint
    loads = [
        Load("generate", "/generate?label=5&seed=7", concurrency, requests_per_side, expect=(200, 503)),
        classify_load("classify", concurrency, requests_per_side, expect=(200, 503), image=_image("PNG"), label=b"8"),
    ]
    samplers = [Sampler(server.url, f"/generate?label=1&seed={i}") for i in range(SAMPLERS)]
    for sampler in samplers:
        sampler.start()
    outcomes = run_loads(server.url, loads, cpu, work)
    for sampler in samplers:
        sampler.stop.set()
        sampler.join(timeout=60)
    sampled: Counter[int] = Counter()
    for sampler in samplers:
        sampled.update(sampler.statuses)
    bad_503 = [answer for sampler in samplers for answer in sampler.bad_503]
    after = server.metrics()

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    queue_full = int(delta("fgan_engine_rejected_total", reason="queue_full"))
    admission = int(delta("fgan_engine_rejected_total", reason="in_flight_limit"))
    batch_s = delta("fgan_engine_batch_duration_seconds_sum") / max(
        delta("fgan_engine_batch_duration_seconds_count"), 1
    )
    wall = max(o.wall_s for o in outcomes)
    served = sum(o.statuses.get(200, 0) for o in outcomes)
    statuses: Counter[int] = Counter()
    for outcome in outcomes:
        statuses.update(outcome.statuses)
    count_503 = statuses.get(503, 0) + sampled.get(503, 0)
    p99_accepted = max(o.percentile(99, 200) for o in outcomes)
    admitted = server.models * (QUEUE_LIMIT + MAX_BATCH)  # service.limits.admission_limit
    result = {
        "factor": factor,
        "concurrency_per_endpoint": concurrency,
        "admission_limit": admitted,
        "requests": sum(o.requested for o in outcomes) + sum(sampled.values()),
        "offered_rps": round(sum(o.answered for o in outcomes) / wall, 1),
        "served_rps": round(served / wall, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "sampler_statuses": {str(k): v for k, v in sorted(sampled.items())},
        "failed": sum(o.failed for o in outcomes),
        "unexpected": sum(o.unexpected for o in outcomes) + sum(n for s, n in sampled.items() if s not in (200, 503)),
        "503_without_retry_after_or_json": len(bad_503),
        "503_answers": count_503,
        "rejected_queue_full": queue_full,
        "rejected_admission": admission,
        "mean_batch_ms": round(batch_s * 1000, 2),
        "p50_accepted_ms": round(max(o.percentile(50, 200) for o in outcomes), 1),
        "p99_accepted_ms": round(p99_accepted, 1),
        # Little's law: the admitted requests, served at the measured rate, take this long to drain.
        "drain_admitted_ms": round(admitted / max(served / wall, 1e-9) * 1000, 1),
        "by_endpoint": {o.name: o.summary() for o in outcomes},
    }
    result["ok"] = (
        result["failed"] == 0
        and result["unexpected"] == 0
        and result["503_without_retry_after_or_json"] == 0
        and count_503 > 0
        and queue_full + admission == count_503
        and p99_accepted <= P99_LIMIT_S * 1000
    )
    return result


def bounded(low: dict, high: dict) -> dict:
    """The accepted requests' p99 does not grow with the offered load (it would, without admission)."""
    growth = high["p99_accepted_ms"] / low["p99_accepted_ms"] if low["p99_accepted_ms"] else float("inf")
    return {
        "p99_low_ms": low["p99_accepted_ms"],
        "p99_high_ms": high["p99_accepted_ms"],
        "growth": round(growth, 2),
        "clients_ratio": round(high["concurrency_per_endpoint"] / low["concurrency_per_endpoint"], 2),
        "ok": growth < high["concurrency_per_endpoint"] / low["concurrency_per_endpoint"],
    }


def recovery(server: Server, per_worker: int, cpu: int | None, work: Path, before: dict) -> dict:
    idle_after_s = server.wait_idle()
    ready = server.get("/readyz")[0] == 200
    again = sustained(server, per_worker, cpu, work)
    ratio = again["rps"] / before["rps"] if before["rps"] else 0.0
    return {
        "idle_after_s": round(idle_after_s, 2),
        "ready": ready,
        "sustained_again": again,
        "rps_ratio": round(ratio, 2),
        "ok": ready and again["ok"] and ratio >= RECOVERY_RATIO,
    }


def soak_round(round_no: int, has_explain: bool) -> list[Load]:
    """About 1,000 mixed requests; each load with the status it must get."""
    label = round_no % 10
    png, jpeg = _image("PNG", round_no), _image("JPEG", round_no)
    loads = [
        Load("generate-png", f"/generate?label={label}&seed={round_no}", 12, 300),
        Load("generate-grid-json", "/generate?label=Sneaker&n=4&scale=2&format=json", 4, 60),
        classify_load("classify-png", 12, 300, image=png, label=str(label).encode()),
        classify_load("classify-jpeg", 4, 100, image=jpeg, label=b"Bag"),
        Load("labels", "/labels", 2, 20),
        Load("info", "/info", 2, 20),
        Load("healthz", "/healthz", 2, 20),
        Load("metrics", "/metrics", 1, 10),
        Load("bad-label", "/generate?label=hat", 2, 40, expect=(422,)),
        Load("not-found", "/nowhere", 1, 10, expect=(404,)),
        Load("text-upload", "/classify", 2, 40, expect=(415,), body=b"not an image", content_type="text/plain"),
        classify_load("corrupt-image", 2, 40, expect=(422,), image=png[:60], label=b"1"),
        classify_load("unknown-label", 2, 20, expect=(422,), image=png, label=b"hat"),
    ]
    if has_explain:
        loads.append(classify_load("explain", 2, 20, path="/explain", image=png, label=str(label).encode()))
    # Large uploads: a 1000x1000 noise PNG of about 1 MB, decoded in a worker thread.
    loads.append(classify_load("classify-1000x1000", 2, 10, image=_large_png(), label=b"1"))
    return loads


@cache
def _large_png() -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(1).integers(0, 256, size=(1000, 1000), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def soak(server: Server, total: int, cpu: int | None, work: Path, warmup_rounds: int) -> dict:
    has_explain = "/explain" in server.get("/openapi.json")[1]
    per_round = sum(load.requests for load in soak_round(0, has_explain))
    rounds = max(warmup_rounds + 2, math.ceil(total / per_round))
    samples = []
    outcomes: dict[str, Counter] = {}
    started = time.monotonic()
    for r in range(rounds):
        for outcome in run_loads(server.url, soak_round(r, has_explain), cpu, work):
            tally = outcomes.setdefault(outcome.name, Counter())
            tally.update({"requests": outcome.requested, "failed": outcome.failed, "unexpected": outcome.unexpected})
            tally.update({f"status_{k}": v for k, v in outcome.statuses.items()})
        server.wait_idle()
        samples.append(
            {
                "round": r + 1,
                "requests_so_far": per_round * (r + 1),
                "rss_mb": round(server.rss_bytes() / 2**20, 1),
                "fds": server.wait_fds_settled(),
                "threads": server.threads(),
            }
        )
        print(f"  soak round {r + 1}/{rounds}: {samples[-1]}", flush=True)
    wall = time.monotonic() - started
    base = samples[warmup_rounds - 1]
    last = samples[-1]
    growth = (last["rss_mb"] - base["rss_mb"]) / base["rss_mb"]
    requests = sum(t["requests"] for t in outcomes.values())
    errors = sum(t["failed"] + t["unexpected"] for t in outcomes.values())
    result = {
        "requests": requests,
        "rounds": rounds,
        "warmup_rounds": warmup_rounds,
        "wall_s": round(wall, 1),
        "rps": round(requests / wall, 1),
        "errors": errors,
        "rss_mb_after_warmup": base["rss_mb"],
        "rss_mb_end": last["rss_mb"],
        "rss_mb_max": max(s["rss_mb"] for s in samples[warmup_rounds - 1 :]),
        "rss_growth": round(growth, 4),
        "fds_after_warmup": base["fds"],
        "fds_end": last["fds"],
        "fds_max": max(s["fds"] for s in samples[warmup_rounds - 1 :]),
        "by_load": {name: dict(t) for name, t in sorted(outcomes.items())},
        "samples": samples,
    }
    result["ok"] = errors == 0 and growth < RSS_GROWTH_LIMIT and last["fds"] <= base["fds"]
    return result


# Running it all ----------------------------------------------------------------------------------


def run_all(
    weights: Path,
    work: Path,
    *,
    sustained_per_worker: int,
    overload_requests: int,
    soak_requests: int,
    warmup_rounds: int,
    server_cpu: int | None,
    client_cpu: int | None,
    without: tuple[str, ...] = (),
) -> dict:
    """The phases against one server; returns every figure and a verdict per phase.

    ``without`` names protections to remove (see ABLATIONS): then only the sustained and overload
    phases run, to show what the protection changes.
    """
    if shutil.which("hey") is None:
        raise SystemExit("hey is needed (Debian: apt-get install hey)")
    server = start_server(weights, work, server_cpu, without)
    try:
        phases: dict[str, dict] = {}
        phases["sustained"] = sustained(server, sustained_per_worker, client_cpu, work)
        print(f"sustained: {_brief(phases['sustained'])}", flush=True)
        for factor in OVERLOADS:
            phases[f"overload_{factor}x"] = overload(server, factor, overload_requests * factor // 4, client_cpu, work)
            print(f"overload {factor}x: {_brief(phases[f'overload_{factor}x'])}", flush=True)
            server.wait_idle()
        low, high = (phases[f"overload_{factor}x"] for factor in OVERLOADS)
        phases["overload_bounded"] = bounded(low, high)
        print(f"bounded:  {_brief(phases['overload_bounded'])}", flush=True)
        if without:
            return phases
        phases["recovery"] = recovery(server, sustained_per_worker, client_cpu, work, phases["sustained"])
        print(f"recovery:  {_brief(phases['recovery'])}", flush=True)
        phases["soak"] = soak(server, soak_requests, client_cpu, work, warmup_rounds)
        print(f"soak:      {_brief(phases['soak'])}", flush=True)
        phases["server_alive"] = {"ok": server.process.poll() is None and server.get("/readyz")[0] == 200}
        text = server.log.read_text(errors="replace")
        phases["server_log"] = {"tracebacks": text.count("Traceback"), "ok": "Traceback" not in text}
    finally:
        code = server.stop()
    phases["shutdown"] = {"exit_status": code, "ok": code == 0}
    return phases


def _brief(result: dict) -> str:
    keys = (
        "requests",
        "errors",
        "rps",
        "offered_rps",
        "served_rps",
        "statuses",
        "503_answers",
        "rejected_queue_full",
        "rejected_admission",
        "503_without_retry_after_or_json",
        "p50_accepted_ms",
        "p99_accepted_ms",
        "drain_admitted_ms",
        "p99_low_ms",
        "p99_high_ms",
        "growth",
        "rps_ratio",
        "rss_mb_after_warmup",
        "rss_mb_end",
        "rss_growth",
        "fds_after_warmup",
        "fds_end",
        "ok",
    )
    return ", ".join(f"{k}={result[k]}" for k in keys if k in result)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, help="checkpoint directory (default: shipped, else shipped sizes)")
    parser.add_argument("--tiny", action="store_true", help="tiny random networks instead of the shipped sizes")
    parser.add_argument("--sustained-per-worker", type=int, default=150, help="requests per worker (64 workers)")
    parser.add_argument("--overload-requests", type=int, default=20_000, help="requests per endpoint in overload")
    parser.add_argument("--soak-requests", type=int, default=20_000, help="at least this many mixed requests")
    parser.add_argument("--warmup-rounds", type=int, default=3, help="soak rounds before the memory baseline")
    parser.add_argument("--server-cpu", type=int, default=0, help="pin the server here (-1: no pinning)")
    parser.add_argument("--client-cpu", type=int, default=1, help="pin hey here (-1: no pinning)")
    parser.add_argument(
        "--without",
        nargs="+",
        choices=sorted(ABLATIONS),
        default=[],
        help="remove a protection to see what it buys (sustained and overload phases only)",
    )
    parser.add_argument("--out", type=Path, help="default: bench/results/load_soak[-without-…].json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pin = shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2
    server_cpu = args.server_cpu if pin and args.server_cpu >= 0 else None
    client_cpu = args.client_cpu if pin and args.client_cpu >= 0 else None
    work = Path(tempfile.mkdtemp(prefix="fgan-load-soak-"))
    try:
        import models

        weights, note = args.weights, str(args.weights)
        if weights is None and not args.tiny and (models.WEIGHTS_DIR / "generator").is_dir():
            weights, note = models.WEIGHTS_DIR, f"shipped ({models.WEIGHTS_DIR})"
        elif weights is None:
            weights = make_weights(work / "weights", tiny=args.tiny)
            note = "tiny random networks" if args.tiny else "shipped sizes, fixed random weights"
        print(f"weights: {note}; server CPU {server_cpu}, hey CPU {client_cpu}", flush=True)
        phases = run_all(
            weights,
            work,
            sustained_per_worker=args.sustained_per_worker,
            overload_requests=args.overload_requests,
            soak_requests=args.soak_requests,
            warmup_rounds=args.warmup_rounds,
            server_cpu=server_cpu,
            client_cpu=client_cpu,
            without=tuple(args.without),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = all(phase.get("ok", True) for phase in phases.values())
    result = {
        **header(
            " ".join(["python", "bench/load_soak.py", *(argv if argv is not None else sys.argv[1:])]),
            load_average_at_end=[round(x, 2) for x in os.getloadavg()],
            hey="hey (Debian)",
        ),
        "setup": {
            "weights": note,
            "server": f"FGAN_QUEUE_LIMIT={QUEUE_LIMIT}, FGAN_MAX_BATCH_SIZE={MAX_BATCH}, torch threads 1, access log off",
            "server_cpu": server_cpu,
            "client_cpu": client_cpu,
            "without": args.without,
            "criteria": {
                "sustained": f"concurrency {SUSTAINED_CONCURRENCY}, zero errors",
                "overload": f"{' and '.join(map(str, OVERLOADS))}x (queue limit + batch) clients per endpoint; only "
                "200/503; every 503 with Retry-After and counted as a rejection (queue full or admission); accepted "
                f"p99 <= {P99_LIMIT_S:g} s, growing less than the number of clients from the lower load to the higher",
                "recovery": f"idle, ready, zero errors, throughput >= {RECOVERY_RATIO:.0%} of before",
                "soak": f"zero unexpected answers, RSS growth after warm-up < {RSS_GROWTH_LIMIT:.0%}, no fd growth",
            },
        },
        "phases": phases,
        "ok": ok,
    }
    out = args.out or ROOT / "bench" / "results" / "-".join(["load_soak", *(f"without-{w}" for w in args.without)])
    out = write(out.with_suffix(".json"), result)
    print(f"{'all criteria met' if ok else 'CRITERIA NOT MET'}; wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
