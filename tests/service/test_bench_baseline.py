"""The benchmark's plain handler (bench/plain_app.py) answers as the service does.

bench/service_bench.py compares the service's requests/s with this handler's, which is only a
comparison of serving designs if both run the same model: /classify's default (the detector when the
weights hold one, else the discriminator, with the detector's temperature) and the same generator.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.service.support import (
    decode_png,
    make_detector,
    make_translator,
    png_bytes,
    sample_pixels,
    sketch_pixels,
    write_weights,
)

PLAIN_APP = Path(__file__).resolve().parents[2] / "bench" / "plain_app.py"


def load_plain_app():
    spec = importlib.util.spec_from_file_location("plain_app_under_test", PLAIN_APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("with_detector", [True, False], ids=["detector", "discriminator"])
def test_plain_handler_gives_the_services_answers(
    with_detector: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_client: Callable[..., TestClient],
) -> None:
    detector = make_detector() if with_detector else None
    weights = write_weights(
        tmp_path, detector=detector, detector_metrics={"temperature": 0.25}, translator=make_translator()
    )
    monkeypatch.setenv("FGAN_WEIGHTS_DIR", str(weights))
    service = make_client(weights)
    with TestClient(load_plain_app().app) as plain:
        for seed in range(4):
            image = png_bytes(sample_pixels(seed=seed))
            files = {"image": ("x.png", image, "image/png")}
            ours = service.post("/classify", files=files, data={"label": "8"})
            theirs = plain.post("/classify", files=files, data={"label": "8"})
            assert ours.status_code == theirs.status_code == 200
            assert ours.json()["label"] == theirs.json()["label"]
            # Only the last digit may differ: the service runs the frozen, batch-invariant copy of the model.
            assert ours.json()["confidence"] == pytest.approx(theirs.json()["confidence"], abs=2e-4)
        query = {"label": 3, "seed": 42}
        assert service.get("/generate", params=query).content == plain.get("/generate", params=query).content
        for seed in range(4):  # sketches light on dark and dark on light: both invert alike
            files = {"image": ("s.png", png_bytes(sketch_pixels(seed, dark_on_light=seed % 2 == 1)), "image/png")}
            ours = service.post("/translate", files=files, params={"scale": 2})
            theirs = plain.post("/translate", files=files, params={"scale": 2})
            assert ours.status_code == theirs.status_code == 200
            # At most a grey level apart: the plain handler runs a lone sketch by PyTorch's lone-image path.
            difference = decode_png(ours.content).astype(int) - decode_png(theirs.content)
            assert difference.shape == (56, 56) and abs(difference).max() <= 1
