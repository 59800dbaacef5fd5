"""Judging files with a running service: batches sent to ``POST /classify/batch``, several at once.

Each request carries up to ``batch_size`` files (and their classes, when every file of it has one). A 503
(a full queue, a replica starting or stopping) is retried after the ``Retry-After`` seconds it names, and a
connection that fails is retried too, a few times; what still fails gets an error in its files' places, so
that one bad batch never stops the run. ``concurrency`` requests are in flight at once: behind a load
balancer (compose ``--scale``, a Kubernetes Service) they spread over the replicas, and the proxy's
``X-Upstream`` header, when it sends one, is counted to show how.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from training.classify_files import ClassifyError, Item, Outcome, failed, read

BATCH_PATH = "/classify/batch"
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is waited as this


@dataclass
class ServiceClient:
    """Sends batches of files to a service at ``url`` (e.g. http://127.0.0.1:8000)."""

    url: str
    model: str | None = None
    api_key: str | None = None
    retries: int = 10
    timeout_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    upstreams: Counter[str] = field(default_factory=Counter)  # batches answered, by X-Upstream
    retried: int = 0  # requests sent again (after a 503 or a failed connection)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def judge_all(self, items: Sequence[Item], batch_size: int, concurrency: int) -> Iterator[list[Outcome]]:
        """The outcomes of ``items``, a batch at a time, in order, ``concurrency`` requests in flight."""
        chunks = [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="classify") as pool:
            yield from pool.map(self.judge, chunks)

    def judge(self, items: Sequence[Item]) -> list[Outcome]:
        """One batch: the files that can be read are sent (those with classes apart from those without)."""
        outcomes: dict[int, Outcome] = {}
        sendable: dict[bool, list[tuple[int, bytes]]] = {}
        for i, item in enumerate(items):
            data = read(item)
            if isinstance(data, Outcome):
                outcomes[i] = data
            else:
                sendable.setdefault(item.label is not None, []).append((i, data))
        for labelled, group in sendable.items():
            batch = [items[i] for i, _ in group]
            answers = self._send(batch, [data for _, data in group], labelled)
            for (i, _), answer in zip(group, answers, strict=True):
                outcomes[i] = answer
        return [outcomes[i] for i in range(len(items))]

    def _send(self, items: list[Item], files: list[bytes], labelled: bool) -> list[Outcome]:
        body, content_type = multipart(items, files, labelled, self.model)
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                with self._lock:
                    self.retried += 1
            request = urllib.request.Request(self.url.rstrip("/") + BATCH_PATH, body, headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    answer = json.loads(response.read())
                    upstream = response.headers.get("X-Upstream")
                break
            except urllib.error.HTTPError as exc:
                error = _error_body(exc)
                if exc.code == 503:
                    problem = f"503 {error.get('detail', '')}".strip()
                    self.sleep(_retry_after(exc.headers.get("Retry-After")))
                    continue
                if exc.code in (401, 403, 404, 405):
                    raise ClassifyError(f"{self.url}: {exc.code} {error.get('detail') or exc.reason}") from None
                # The service refused the whole request (e.g. 413, 422): the same answer for each of its files.
                return [failed(item, error.get("error", f"http_{exc.code}"), error.get("detail", "")) for item in items]
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
                problem = f"cannot reach {self.url} ({getattr(exc, 'reason', None) or exc})"
                self.sleep(min(0.25 * 2**attempt, 5.0))
        else:
            detail = f"gave up after {self.retries + 1} tries: {problem}"
            return [failed(item, "service_unavailable", detail) for item in items]
        with self._lock:
            self.upstreams[upstream or "-"] += 1
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(items):
            raise ClassifyError(f"{self.url}{BATCH_PATH}: the answer is not one result per image: {answer!r:.200}")
        return [_outcome(item, result) for item, result in zip(items, results, strict=True)]


def multipart(items: Sequence[Item], files: Sequence[bytes], labelled: bool, model: str | None) -> tuple[bytes, str]:
    """A multipart/form-data body: an 'image' part per file, in order, a 'label' part each when ``labelled``."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for item, data in zip(items, files, strict=True):
        name = item.path.name.replace('"', "%22").replace("\r", "").replace("\n", "")
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
        parts += [head.encode(), b"Content-Type: application/octet-stream\r\n\r\n", data, b"\r\n"]
    fields = [("label", item.label) for item in items] if labelled else []
    fields += [("model", model)] if model else []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _outcome(item: Item, result: object) -> Outcome:
    if isinstance(result, dict) and "label" in result:
        return Outcome(item.path, result["label"], result.get("confidence"))
    if isinstance(result, dict):
        return failed(item, str(result.get("error")), str(result.get("detail")))
    return failed(item, "bad_answer", f"the service answered {result!r:.100} for it")


def _error_body(exc: urllib.error.HTTPError) -> dict:
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        body = None
    finally:
        exc.close()
    return body if isinstance(body, dict) else {}


def _retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds; 1 when absent or a date)."""
    try:
        return min(max(float(value or 1), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return 1.0
