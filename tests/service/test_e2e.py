"""End to end: a real ``python -m service`` on a free loopback port, called with curl as the README does.

Every wait here is bounded in time, and the server is stopped at the end of each test whatever happens.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench import local_service
from bench.local_service import LocalService
from tests.service.support import (
    PROCESS_ENV,
    decode_png,
    expected_garment,
    expected_images,
    make_generator,
    make_translator,
    metric,
    png_bytes,
    sample_pixels,
    sketch_pixels,
    write_weights,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]


def start_service(weights: Path, log: Path, **env: str) -> LocalService:
    # The access log on: the test reads its lines.
    return local_service.start(weights, log, env=PROCESS_ENV | {"FGAN_ACCESS_LOG": "true"} | env)


def curl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args], capture_output=True, timeout=timeout + 5)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LocalService]:
    """A served tiny model that takes one request at a time (batches of 1) behind a queue of one."""
    server = start_service(
        write_weights(tmp_path / "weights"),
        tmp_path / "service.log",
        FGAN_MAX_BATCH_SIZE="1",
        FGAN_QUEUE_LIMIT="1",
        FGAN_MAX_UPLOAD_BYTES="65536",
        FGAN_LOG_FORMAT="json",
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_design_card_calls_over_real_http(service, tmp_path: Path) -> None:
    url, log = service.url, service.log
    # GET /generate?label=3, saved as a file.
    image = tmp_path / "x.png"
    headers = tmp_path / "headers.txt"
    result = curl("-D", str(headers), "-o", str(image), f"{url}/generate?label=3&seed=7")
    assert result.returncode == 0, result.stderr
    head = headers.read_text().lower()
    assert head.startswith("http/1.1 200")
    assert "content-type: image/png" in head and "x-seed: 7" in head and "x-label: 3" in head
    pixels = decode_png(image.read_bytes())
    np.testing.assert_array_equal(pixels, expected_images(make_generator(), [7], 3)[0])
    request_id = next(line.split(":", 1)[1].strip() for line in head.splitlines() if line.startswith("x-request-id"))

    # The reference call: curl -F image=@x.png -F label=8 …/classify
    result = curl("-F", f"image=@{image}", "-F", "label=8", f"{url}/classify")
    verdict = json.loads(result.stdout)
    assert set(verdict) == {"label", "confidence"}
    assert verdict["label"] in ("real", "fake") and 0.5 <= verdict["confidence"] <= 1

    # A body over the upload limit (64 KiB here): 413, whatever the client does next.
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes(sample_pixels()) + b"\0" * 200_000)
    result = curl("-o", "/dev/null", "-w", "%{http_code}", "-F", f"image=@{big}", "-F", "label=8", f"{url}/classify")
    assert result.stdout == b"413"
    # A text file instead of an image: 415 with a message.
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    result = curl("-w", "\n%{http_code}", "-F", f"image=@{text}", "-F", "label=8", f"{url}/classify")
    body, status = result.stdout.decode().rsplit("\n", 1)
    assert status == "415" and "accepted formats" in json.loads(body)["detail"]

    # JSON logs carry the request id of each request.
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry["logger"] == "service.access"]
    assert any(e["request_id"] == request_id and e["path"] == "/generate" and e["status"] == 200 for e in access)

    # SIGTERM (what docker stop and Kubernetes send) stops it cleanly.
    assert service.stop(signal.SIGTERM) == 0


def test_overload_answers_503_with_retry_after(service, tmp_path: Path) -> None:
    url = service.url
    # 24 requests at once for 100 images each: one runs, one waits, and the queue (of one) is full for the rest.
    # On a busy machine the worker may not have taken the first from the queue before the others arrive,
    # so only that one is served: at least one 200 is certain, a second is not.
    targets = [arg for i in range(24) for arg in ("-o", "/dev/null", f"{url}/generate?label=1&n=100&seed={i}")]
    result = curl(
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        "24",
        "-w",
        "%{http_code} %header{retry-after}\n",
        *targets,
    )
    answers = [line.split() for line in result.stdout.decode().splitlines()]
    statuses = [int(answer[0]) for answer in answers]
    assert len(statuses) == 24
    assert set(statuses) == {200, 503}, statuses
    assert statuses.count(200) >= 1
    assert all(answer == ["503", "1"] for answer in answers if answer[0] == "503")  # with Retry-After: 1
    text = curl(f"{url}/metrics").stdout.decode()
    assert metric(text, "fgan_engine_rejected_total", model="generator", reason="queue_full") == statuses.count(503)


def test_bad_checkpoint_exits_nonzero_with_one_clear_line(tmp_path: Path) -> None:
    weights = write_weights(tmp_path / "weights")
    (weights / "generator" / "model.safetensors").write_bytes(b"\0" * 16)
    log = tmp_path / "service.log"
    server = start_service(weights, log)
    try:
        code = server.process.wait(timeout=local_service.START_TIMEOUT_S)
    finally:
        server.stop()
    text = log.read_text()
    assert code != 0
    errors = [line for line in text.splitlines() if "ERROR" in line]
    assert any("generator/model.safetensors" in line for line in errors), text
    assert "Traceback" not in text


def test_a_batch_over_real_http_as_the_readme_sends_it(service, tmp_path: Path) -> None:
    # curl -F image=@a.png -F image=@b.png … /classify/batch: a verdict per image, in order, each as /classify's.
    good, text = tmp_path / "a.png", tmp_path / "notes.txt"
    good.write_bytes(png_bytes(sample_pixels()))
    text.write_text("not an image")
    images = ["-F", f"image=@{good}", "-F", f"image=@{text}", "-F", f"image=@{good}"]
    labels = ["-F", "label=8", "-F", "label=8", "-F", "label=3"]
    result = curl(*images, *labels, f"{service.url}/classify/batch")
    first, middle, last = json.loads(result.stdout)["results"]
    assert first == json.loads(curl("-F", f"image=@{good}", "-F", "label=8", f"{service.url}/classify").stdout)
    assert last == json.loads(curl("-F", f"image=@{good}", "-F", "label=3", f"{service.url}/classify").stdout)
    assert middle["error"] == "unsupported_media_type" and "accepted formats" in middle["detail"]


def test_a_sketch_over_real_http_as_the_readme_sends_it(tmp_path: Path) -> None:
    # curl -o shoe.png -F image=@sketch.png '…/translate?scale=4': the garment, from a file drawn dark on white.
    weights = write_weights(tmp_path / "weights", translator=make_translator())
    with local_service.running(weights, tmp_path / "service.log", env=PROCESS_ENV) as server:
        sketch, garment, headers = tmp_path / "sketch.png", tmp_path / "shoe.png", tmp_path / "headers.txt"
        drawn = sketch_pixels(2, dark_on_light=True)
        sketch.write_bytes(png_bytes(np.kron(drawn, np.ones((8, 8), dtype=np.uint8))))  # 224x224, as drawn
        result = curl(
            "-D", str(headers), "-o", str(garment), "-F", f"image=@{sketch}", f"{server.url}/translate?scale=4"
        )
        assert result.returncode == 0, result.stderr
        head = headers.read_text().lower()
        assert head.startswith("http/1.1 200") and "content-type: image/png" in head
        assert "x-sketch-inverted: true" in head and "x-model: pix2pix@" in head
        pixels = decode_png(garment.read_bytes())
        assert pixels.shape == (112, 112)
        np.testing.assert_array_equal(pixels[::4, ::4], expected_garment(make_translator(), 255 - drawn))
        # A blank sheet: 422, saying so.
        blank = tmp_path / "blank.png"
        blank.write_bytes(png_bytes(np.full((224, 224), 255, dtype=np.uint8)))
        result = curl("-w", "\n%{http_code}", "-F", f"image=@{blank}", f"{server.url}/translate")
        body, status = result.stdout.decode().rsplit("\n", 1)
        assert status == "422" and "the sketch is blank" in json.loads(body)["detail"]
