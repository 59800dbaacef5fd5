"""The bad-input corpus (tests/robustness/corpus.py) against the service: each case gets its status.

It runs twice: in process (one test per case, so a failure names its case), and against a
real ``python -m service`` over loopback (uvicorn's HTTP parsing included). After each run
the service must still be ready, answer exactly as before, and have answered no 5xx.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from service import sketches
from service.app import create_app
from service.settings import Settings
from tests.robustness.conftest import upload_paths
from tests.robustness.corpus import PIXELS, Case, all_cases, encode
from tests.robustness.support import ROOT, LocalService, check_answer
from tests.service.support import (
    expected_garment,
    expected_images,
    expected_p_real,
    expected_verdict,
    make_discriminator,
    make_generator,
    make_translator,
    settings_for,
    wait_ready,
)

# Pillow warns about the 12000x12000 PNG as it opens the header; the service refuses it right after.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

PATHS = upload_paths(create_app(Settings(device="cpu")))  # the app is built, not started: nothing loads
HAS_PAGE = (ROOT / "service" / "static" / "index.html").is_file()
CASES = all_cases(PATHS, page=HAS_PAGE)


def verdict_for(pixels: np.ndarray, label: int) -> dict:
    return expected_verdict(expected_p_real(make_discriminator(), pixels, label))


def check_case(response: httpx.Response, case: Case) -> None:
    """Everything a case's answer must satisfy."""
    assert response.status_code == case.status, f"{case.id}: {response.status_code} {response.text[:300]}"
    check_answer(response)
    if response.status_code >= 400:
        detail = response.json()["detail"]
        for word in case.words:
            assert word in detail, f"{case.id}: {word!r} not in {detail!r}"
        return
    if case.path == "/classify":
        body = response.json()
        assert set(body) == {"label", "confidence"} and 0.5 <= body["confidence"] <= 1, body
        if case.pixels is not None:
            assert body == verdict_for(case.pixels, case.pixel_label), f"{case.id}: decoded to other pixels"
    elif case.path == "/explain" and "format=json" not in case.path:
        assert response.headers["content-type"] == "image/png"
        Image.open(io.BytesIO(response.content)).verify()
    elif urlsplit(case.path).path == "/translate":
        assert response.headers["content-type"] == "image/png"
        scale = int(parse_qs(urlsplit(case.path).query).get("scale", ["1"])[-1])
        garment = np.asarray(Image.open(io.BytesIO(response.content)))
        assert garment.shape == (28 * scale, 28 * scale), f"{case.id}: {garment.shape}"
        if case.pixels is not None:
            sketch = sketches.prepare(torch.from_numpy(case.pixels)).pixels.numpy()
            expected = expected_garment(make_translator(), sketch)
            np.testing.assert_array_equal(garment, expected, err_msg=f"{case.id}: decoded to other pixels")


def check_alive_and_correct(client: httpx.Client) -> None:
    """Ready, and the reference calls answer exactly what the networks say."""
    assert client.get("/readyz").status_code == 200
    png = encode(Image.fromarray(PIXELS), "PNG")
    response = client.post("/classify", files={"image": ("x.png", png, "image/png")}, data={"label": "8"})
    assert response.status_code == 200 and response.json() == verdict_for(PIXELS, 8)
    response = client.get("/generate?label=3&seed=7")
    assert response.status_code == 200
    got = np.asarray(Image.open(io.BytesIO(response.content)))
    np.testing.assert_array_equal(got, expected_images(make_generator(), [7], 3)[0])
    metrics = client.get("/metrics").text
    # /readyz answers 503 while warming up, by design; nothing else may answer 5xx.
    server_errors = [
        line
        for line in metrics.splitlines()
        if line.startswith("fgan_http_requests_total") and 'status="5' in line and 'route="/readyz"' not in line
    ]
    assert not server_errors, f"the service answered 5xx: {server_errors}"


@pytest.fixture(scope="module")
def corpus_client(weights_dir: Path) -> Iterator[TestClient]:
    """One in-process service for the whole corpus (default limits), so its state carries from case to case."""
    with TestClient(create_app(settings_for(weights_dir)), raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case_gets_its_status(corpus_client: TestClient, case: Case) -> None:
    response = corpus_client.request(case.method, case.path, **case.request_kwargs())
    check_case(response, case)


def test_in_process_service_is_alive_and_correct_after_the_corpus(corpus_client: TestClient) -> None:
    check_alive_and_correct(corpus_client)


@pytest.mark.slow
def test_corpus_over_real_http(served: LocalService) -> None:
    failures = []
    with httpx.Client(base_url=served.url, timeout=30) as client:
        for case in CASES:
            try:
                check_case(client.request(case.method, case.path, **case.request_kwargs()), case)
            except (AssertionError, httpx.HTTPError) as exc:
                failures.append(f"{case.id}: {exc}")
        assert not failures, "\n".join(failures)
        assert served.process.poll() is None, "the service died"
        check_alive_and_correct(client)
    assert "Traceback" not in served.log_text()
