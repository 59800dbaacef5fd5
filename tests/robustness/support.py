"""Helpers for the robustness tests: a real service on loopback (bench/local_service.py), and what every answer
must (not) contain."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote_plus

import httpx

from bench import local_service
from bench.local_service import ROOT, LocalService
from tests.service.support import PROCESS_ENV

__all__ = [
    "ROOT",
    "LocalService",
    "check_answer",
    "check_parts",
    "leaks",
    "metric_total",
    "service_env",
    "start_server",
]

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


def service_env(weights: Path, **env: str) -> dict[str, str]:
    """The environment of a test server (tests/service/support.py's PROCESS_ENV), plus ``env``."""
    return local_service.service_env(weights, PROCESS_ENV | env)


def start_server(weights: Path, log: Path, **env: str) -> LocalService:
    """A test server on a loopback port, not yet ready (``wait_ready``); ``stop`` it afterwards."""
    return local_service.start(weights, log, env=PROCESS_ENV | env)


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
