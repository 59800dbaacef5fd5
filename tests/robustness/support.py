"""Helpers for the robustness tests: a real service on loopback, and what every answer must (not) contain.

Every wait is bounded in time, and a started server is always stopped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_plus

import httpx

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0  # importing torch on a busy 2-core machine takes a while

# What must never appear in an answer: traces, source locations, this machine's paths.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "site-packages",
    '.py"',
    ".py,",
    ".py:",
    str(ROOT),
    sys.prefix,
    tempfile.gettempdir() + "/",
    "/root/",
    "/home/",
    "safetensors",
    "config.json",
)


def leaks(text: str, echo: str = "") -> list[str]:
    """The leak markers found in ``text``, except those the request itself sent (echoed input is no leak)."""
    return [marker for marker in LEAK_MARKERS if marker and marker in text and marker not in echo]


def _request_text(request: httpx.Request) -> str:
    try:
        body = request.content.decode("utf-8", "replace")
    except Exception:  # a streamed body: RequestNotRead, of httpx or of httpx2 (the TestClient's)
        body = ""
    return f"{request.url}\n{unquote_plus(str(request.url))}\n{body}"


def check_answer(response: httpx.Response) -> None:
    """What every answer must satisfy: a request id, and for an error a JSON {error, detail} without leaks."""
    request = response.request
    check_parts(
        response.status_code, dict(response.headers), response.content, str(request.url), _request_text(request)
    )


def check_parts(status: int, headers: dict[str, str], content: bytes, where: str = "", echo: str = "") -> None:
    """``check_answer`` on the parts of an answer (headers with lower-case names; ``echo``: what was sent)."""
    assert headers.get("x-request-id"), f"no X-Request-ID on {where}"
    head = "\n".join(f"{k}: {v}" for k, v in headers.items())
    assert not leaks(head, echo), f"headers leak {leaks(head, echo)}: {head}"
    content_type = headers.get("content-type", "")
    text = content.decode("utf-8", "replace")
    if status >= 400:
        assert content_type.startswith("application/json"), f"{where}: {status} {text[:200]}"
        body = json.loads(content)
        assert set(body) == {"error", "detail"}, body
        assert isinstance(body["error"], str) and isinstance(body["detail"], str) and body["detail"], body
        assert not leaks(text, echo), f"answer leaks {leaks(text, echo)}: {text[:300]}"
    elif content_type.startswith(("application/json", "text/")):
        assert not leaks(text, echo), f"answer leaks {leaks(text, echo)}: {text[:300]}"
    if status == 503:
        assert headers.get("retry-after", "").isdigit(), "a 503 without Retry-After"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A ``python -m service`` process on a loopback port."""

    process: subprocess.Popen
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def service_env(weights: Path, **env: str) -> dict[str, str]:
    """The environment of a test server: the parent's without its FGAN_* variables, plus ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FGAN_")}
    environment |= {
        "FGAN_WEIGHTS_DIR": str(weights),
        "FGAN_DEVICE": "cpu",
        "FGAN_TORCH_THREADS": "1",
        "FGAN_ACCESS_LOG": "false",
        "PYTHONUNBUFFERED": "1",
    }
    return environment | env


def start_server(weights: Path, log: Path, *, cwd: Path = ROOT, **env: str) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=service_env(weights, **env) | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    return Server(process, f"http://127.0.0.1:{port}", log)


def wait_ready(server: Server, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"the service exited with {server.process.returncode}:\n{server.log_text()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready within {timeout_s}s:\n{server.log_text()}")


def stop(server: Server, sig: int = signal.SIGINT) -> int:
    process = server.process
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def metric_total(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        found = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if "=" in part)
        if all(json.loads(found.get(k, "null")) == v for k, v in labels.items()):
            total += float(value)
    return total
