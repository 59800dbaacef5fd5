"""Faults: bad checkpoints and devices at startup, models that fail during a batch, clients that misbehave.

Startup faults run the real ``python -m service``: it must exit non-zero with one line that
says what is wrong (naming the file), and no traceback. Runtime faults use an in-process
service whose networks are wrapped to raise on demand: the requests they hit get a JSON
error, the others in the same batches their exact answers, and the service stays up.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

from tests.robustness.corpus import PIXELS, encode
from tests.robustness.support import ROOT, check_answer, service_env, start_server
from tests.service.support import (
    expected_images,
    expected_p_real,
    expected_verdict,
    make_discriminator,
    make_generator,
    png_bytes,
    write_weights,
)

# Startup ------------------------------------------------------------------------------------------


def _break_config(weights: Path, **changes: object) -> None:
    path = weights / "generator" / "config.json"
    config = json.loads(path.read_text())
    config["config"].update(changes)
    path.write_text(json.dumps(config))


def _startup_faults(root: Path, weights_dir: Path) -> dict[str, tuple[dict[str, str], str]]:
    """name -> (environment overrides, words the one error line must hold)."""
    corrupt = write_weights(root / "corrupt")
    (corrupt / "discriminator" / "model.safetensors").write_bytes(b"\x08\0\0\0\0\0\0\0{}garbage")
    mismatch = write_weights(root / "mismatch")
    _break_config(mismatch, channels=8)  # the weights were saved with 4
    negative = write_weights(root / "negative")
    _break_config(negative, channels=-4)  # torch itself refuses this one (RuntimeError)
    not_json = write_weights(root / "not-json")
    (not_json / "discriminator" / "config.json").write_text("{not json")
    bad_metrics = write_weights(root / "bad-metrics")
    config_path = bad_metrics / "discriminator" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "metrics": [0.9]}))
    wrong_class = write_weights(root / "wrong-class")
    shutil.rmtree(wrong_class / "generator")
    shutil.copytree(wrong_class / "discriminator", wrong_class / "generator")
    # The translator is optional, but one that is there must load: a broken one is not silently left out.
    wrong_translator = write_weights(root / "wrong-translator")
    shutil.copytree(wrong_translator / "generator", wrong_translator / "pix2pix")
    faults = {
        "missing-weights-dir": (
            {"FGAN_WEIGHTS_DIR": str(root / "nowhere")},
            ["nowhere", "weights directory not found"],
        ),
        "corrupt-safetensors": ({"FGAN_WEIGHTS_DIR": str(corrupt)}, ["discriminator/model.safetensors", "corrupt"]),
        "config-not-matching-weights": ({"FGAN_WEIGHTS_DIR": str(mismatch)}, ["generator/model.safetensors", "shape"]),
        "config-negative-size": ({"FGAN_WEIGHTS_DIR": str(negative)}, ["generator", "negative"]),
        "config-not-json": ({"FGAN_WEIGHTS_DIR": str(not_json)}, ["discriminator/config.json", "not valid JSON"]),
        "metrics-not-an-object": (
            {"FGAN_WEIGHTS_DIR": str(bad_metrics)},
            ["discriminator/config.json", "'metrics' must be a JSON object"],
        ),
        "wrong-class": ({"FGAN_WEIGHTS_DIR": str(wrong_class)}, ["generator/config.json", "expected a Generator"]),
        "wrong-translator": (
            {"FGAN_WEIGHTS_DIR": str(wrong_translator)},
            ["pix2pix/config.json", "expected a Pix2PixGenerator"],
        ),
    }
    if not torch.cuda.is_available():
        faults["cuda-without-cuda"] = (
            {"FGAN_DEVICE": "cuda", "FGAN_WEIGHTS_DIR": str(weights_dir)},
            ["cuda", "not available"],
        )
    return faults


@pytest.mark.slow
def test_startup_faults_exit_nonzero_with_one_clear_line(tmp_path: Path, weights_dir: Path) -> None:
    faults = _startup_faults(tmp_path, weights_dir)
    processes = {}
    for name, (env, _) in faults.items():  # all at once: each one mostly waits for imports
        log = (tmp_path / f"{name}.log").open("w")
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", "service", "--port", "1"],  # never listens: startup fails before
            cwd=ROOT,
            env=service_env(weights_dir) | env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    failures = []
    for name, process in processes.items():
        try:
            code = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            failures.append(f"{name}: still running after 120 s")
            continue
        text = (tmp_path / f"{name}.log").read_text()
        lines = [line for line in text.splitlines() if "cannot start:" in line]
        words = faults[name][1]
        if code == 0:
            failures.append(f"{name}: exit status 0")
        elif len(lines) != 1 or not all(word in lines[0] for word in words):
            failures.append(f"{name}: expected one 'cannot start' line with {words}:\n{text}")
        elif "Traceback" in text:
            failures.append(f"{name}: a traceback:\n{text}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_invalid_setting_exits_2_naming_the_variable(weights_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=ROOT,
        env=service_env(weights_dir, FGAN_MAX_BATCH_SIZE="0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("invalid setting") == 1 and "FGAN_MAX_BATCH_SIZE" in done.stderr
    assert "Traceback" not in done.stderr


# A model that raises during a batch -----------------------------------------------------------------


class Faulty(nn.Module):
    """Wraps a network; raises while ``failing`` is set, or for any row whose label is ``bad_label``."""

    def __init__(self, inner: nn.Module, error: type[Exception] = RuntimeError) -> None:
        super().__init__()
        self.inner = inner
        self.failing = False
        self.bad_label: int | None = None
        self.error = error
        self.calls = 0

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        if self.failing:
            raise self.error("injected failure: the model is broken")
        if self.bad_label is not None and y is not None and bool((y == self.bad_label).any()):
            raise self.error(f"injected failure on label {self.bad_label}")
        return self.inner(x, y)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_modules"]["inner"], name)


def _install(client: TestClient, which: str) -> Faulty:
    models = client.app.state.engine.models
    served = models.generator if which == "generator" else models.classifiers["discriminator"]
    faulty = Faulty(served.module)
    served.module = faulty
    return faulty


def _concurrently(client: TestClient, requests: list[tuple[str, dict]]) -> list[httpx.Response]:
    """Send the requests at once from threads (the in-process app batches what arrives together)."""
    results: list[httpx.Response | None] = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def run(i: int, url: str, kwargs: dict) -> None:
        barrier.wait(timeout=10)
        results[i] = client.request(kwargs.pop("method", "GET"), url, **kwargs)

    threads = [threading.Thread(target=run, args=(i, url, dict(kw))) for i, (url, kw) in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(r is not None for r in results), "a request did not finish"
    return results  # type: ignore[return-value]


def test_generator_failing_for_some_requests_fails_only_those(make_client) -> None:
    client = make_client(batch_timeout_ms=50.0)  # a long window, so the requests share batches
    faulty = _install(client, "generator")
    faulty.bad_label = 7
    labels = [i % 10 for i in range(20)]
    responses = _concurrently(client, [(f"/generate?label={label}&seed={i}", {}) for i, label in enumerate(labels)])
    generator = make_generator()
    for i, (label, response) in enumerate(zip(labels, responses, strict=True)):
        check_answer(response)
        if label == 7:
            assert response.status_code == 500, response.text
            assert response.json()["error"] == "internal_error"
            assert "injected" not in response.text  # the exception's text stays in the logs
        else:
            assert response.status_code == 200, response.text
            got = np.asarray(Image.open(io.BytesIO(response.content)))
            np.testing.assert_array_equal(got, expected_images(generator, [i], label)[0])
    # Later requests, label 7 included, succeed once the model works again.
    faulty.bad_label = None
    assert client.get("/generate?label=7&seed=1").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_classifier_failing_for_a_while_then_recovering(make_client) -> None:
    client = make_client()
    faulty = _install(client, "discriminator")
    files = {"image": ("x.png", png_bytes(PIXELS), "image/png")}
    faulty.failing = True
    responses = _concurrently(client, [("/classify", {"method": "POST", "files": files, "data": {"label": "3"}})] * 8)
    for response in responses:
        check_answer(response)
        assert response.status_code == 500 and response.json()["error"] == "internal_error"
    assert client.get("/readyz").status_code == 200  # still up
    faulty.failing = False
    expected = expected_verdict(expected_p_real(make_discriminator(), PIXELS, 3))
    for _ in range(3):
        response = client.post("/classify", files=files, data={"label": "3"})
        assert response.status_code == 200 and response.json() == expected


def test_a_model_answering_nan_gets_a_json_error_not_a_bogus_verdict(make_client) -> None:
    client = make_client()
    served = client.app.state.engine.models.classifiers["discriminator"]
    inner = served.module

    class Nan(nn.Module):
        config = inner.config

        def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
            return torch.full((x.shape[0],), float("nan"))

    served.module = Nan()
    files = {"image": ("x.png", png_bytes(PIXELS), "image/png")}
    response = client.post("/classify", files=files, data={"label": "3"})
    check_answer(response)
    assert response.status_code == 500
    served.module = inner
    assert client.post("/classify", files=files, data={"label": "3"}).status_code == 200


# Clients that misbehave, against a real server ------------------------------------------------------


def _raw(url: str, payload: bytes, *, close_after: float = 0.0) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(payload)
        if close_after:
            time.sleep(close_after)


@pytest.mark.slow
def test_vanishing_and_stalling_clients_leave_nothing_behind(tmp_path: Path, weights_dir: Path) -> None:
    server = start_server(weights_dir, tmp_path / "service.log", FGAN_REQUEST_TIMEOUT_S="2")
    try:
        server.wait_ready()
        body = encode(Image.fromarray(PIXELS), "PNG")
        head = (
            "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {len(body) + 200}\r\n\r\n"
        ).encode()
        part = b'--b\r\nContent-Disposition: form-data; name="image"\r\n\r\n' + body[: len(body) // 2]
        # 50 clients that send half a body and hang up, 50 that hang up right after their headers.
        for i in range(100):
            _raw(server.url, head + (part if i % 2 else b""))

        # 50 requests for large grids whose clients give up before the answer.
        async def give_up() -> None:
            async with httpx.AsyncClient(timeout=0.05) as client:
                await asyncio.gather(
                    *(client.get(f"{server.url}/generate?n=100&scale=4&seed={i}") for i in range(50)),
                    return_exceptions=True,
                )

        asyncio.run(give_up())
        # A client that stalls mid-body gets 504 at the deadline, not a connection held forever.
        # (The socket's own timeout is the hang guard: no answer within 60 s fails the test.)
        with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=60) as sock:
            sock.sendall(head + part)
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 504"), answer[:200]
        # Afterwards: nothing in flight, nothing queued, and requests succeed.
        deadline = time.monotonic() + 15
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while time.monotonic() < deadline:
                metrics = client.get("/metrics").text
                in_flight = [
                    float(line.split()[-1])
                    for line in metrics.splitlines()
                    if line.startswith("fgan_http_requests_in_flight ")
                ]
                depth = sum(
                    float(line.split()[-1])
                    for line in metrics.splitlines()
                    if line.startswith("fgan_engine_queue_depth{")
                )
                if in_flight == [1.0] and depth == 0:  # only the /metrics request itself
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"requests left behind:\n{metrics}")
            response = client.post("/classify", files={"image": ("x.png", body, "image/png")}, data={"label": "3"})
            assert response.status_code == 200
            assert response.json() == expected_verdict(expected_p_real(make_discriminator(), PIXELS, 3))
        assert server.process.poll() is None
        assert "Traceback" not in server.log_text()
    finally:
        server.stop()
