"""GradCAM (models/gradcam.py), POST /explain, the page's files at / and /static, and the `explain` figure.

The maps are checked against GradCAM computed here by hand (a forward hook and autograd on the
layer's output, no captum), so the library call, the layer, the temperature and the sign are all
pinned; the sign also by a network whose answer is known in advance.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import threading
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import models
from models.gradcam import LAYERS, NoLayer, gradcam, layers_of, overlay
from service.app import create_app
from service.errors import Overloaded
from service.explain import Explainer
from service.loading import ServedModel
from tests.service.support import (
    expected_p_real,
    expected_verdict,
    make_detector,
    make_detector_ensemble,
    make_discriminator,
    png_bytes,
    sample_pixels,
    settings_for,
    write_weights,
)

PIXELS = sample_pixels()


def by_hand(
    module: nn.Module, layer: str, pixels: np.ndarray, label: int | None, temperature: float = 1.0
) -> np.ndarray:
    """GradCAM of the negated logit / temperature at ``layer`` (layers joined by "+": the sum of their terms
    before the ReLU), computed without captum: (h, w)."""
    x = models.to_float(torch.from_numpy(pixels)).view(1, 1, 28, 28)
    y = None if label is None else torch.tensor([label])
    names = layer.split("+")
    seen: dict[str, torch.Tensor] = {}
    handles = [
        module.get_submodule(n).register_forward_hook(lambda m, i, out, n=n: seen.setdefault(n, out)) for n in names
    ]
    try:
        with torch.enable_grad():
            x.requires_grad_(True)  # so the layer's output is in the graph even if the weights are frozen
            score = -module(x, y) / temperature  # (1,)
            grads = torch.autograd.grad(score.sum(), [seen[n] for n in names])
    finally:
        for handle in handles:
            handle.remove()
    terms = [(g.mean(dim=(2, 3), keepdim=True) * seen[n]).sum(dim=1) for n, g in zip(names, grads, strict=True)]
    return torch.relu(sum(terms))[0].detach().numpy()  # (h, w); GradCAM's channel weights: the mean gradients


def explain_call(client, data: bytes, *, query: str = "", filename: str = "x.png", **fields: str):
    return client.post(f"/explain{query}", files={"image": (filename, data, "application/octet-stream")}, data=fields)


# GradCAM itself -------------------------------------------------------------------------------------


def test_captum_is_installed() -> None:
    """captum is a runtime dependency of POST /explain: without it these tests fail, they do not skip."""
    assert importlib.util.find_spec("captum") is not None, "captum is missing: pip install -e . installs it"


@pytest.mark.parametrize(
    ("make", "label", "temperature"),
    [
        (make_discriminator, 3, None),
        (make_detector, 4, None),
        (make_detector, None, 2.5),
        (make_detector_ensemble, 5, 1.5),
        (make_detector_ensemble, None, None),
    ],
    ids=["discriminator", "detector", "detector-no-label-calibrated", "ensemble-calibrated", "ensemble-no-label"],
)
def test_gradcam_matches_a_hand_computation(make, label, temperature) -> None:
    module = make()
    name = "+".join(n for n, _ in layers_of(module))
    expected = by_hand(make(), name, PIXELS, label, temperature or 1.0)
    labels = None if label is None else torch.tensor([label])
    (got,) = gradcam(module, torch.from_numpy(PIXELS)[None], labels, temperature=temperature)
    assert got.layer == name
    assert got.heat.shape == (14, 14)
    assert expected.max() > 0  # a test on an empty map could not fail
    np.testing.assert_allclose(got.heat, expected, rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        logit = make()(models.to_float(torch.from_numpy(PIXELS)).view(1, 1, 28, 28), labels).item()
    assert got.logit == pytest.approx(logit / (temperature or 1.0), rel=1e-5)


def test_an_ensemble_is_read_at_each_members_layer_and_its_map_is_not_one_members() -> None:
    ensemble = make_detector_ensemble()
    names = [n for n, _ in layers_of(ensemble)]
    assert names == ["members.0.features.3", "members.1.features.3"]
    (got,) = gradcam(ensemble, torch.from_numpy(PIXELS)[None], torch.tensor([5]))
    assert got.layer == "members.0.features.3+members.1.features.3"
    for name in names:  # neither member alone gives the ensemble's map
        assert not np.allclose(got.heat, by_hand(make_detector_ensemble(), name, PIXELS, 5), rtol=1e-3, atol=1e-6)


def test_the_chosen_layers_are_the_14x14_ones() -> None:
    assert LAYERS == {"Discriminator": "features.5", "Detector": "features.3"}
    for make in (make_discriminator, make_detector):
        module = make()
        ((_, layer),) = layers_of(module)
        seen: list[torch.Size] = []
        handle = layer.register_forward_hook(lambda m, i, out, seen=seen: seen.append(out.shape))
        module(torch.zeros(1, 1, 28, 28), torch.tensor([0]))
        handle.remove()
        assert seen[0][2:] == (14, 14)


class BrightIsFake(nn.Module):
    """A network whose answer is known: the brighter the image, the more "fake" (lower logit).

    Its 14x14 "features" are the image averaged over 2x2 cells; the logit is minus their sum.
    So the evidence toward fake is exactly the bright cells, and none of the dark ones.
    """

    def __init__(self, sign: float = 1.0) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.AvgPool2d(2), nn.Identity())  # (B, 1, 14, 14)
        self.sign = sign
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the network a device

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return -self.sign * self.features(x).sum(dim=(1, 2, 3)) + self.anchor  # (B,)


def test_the_map_shows_what_pushed_toward_fake(monkeypatch) -> None:
    monkeypatch.setitem(LAYERS, "BrightIsFake", "features.1")
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[8:16, 10:20] = 255  # a bright block on black: 14x14 cells rows 4-7, columns 5-9
    image = torch.from_numpy(pixels)[None]
    (toward_fake,) = gradcam(BrightIsFake(), image, None)
    inside = np.zeros((14, 14), dtype=bool)
    inside[4:8, 5:10] = True
    assert (toward_fake.heat[inside] > 0).all()
    assert (toward_fake.heat[~inside] == 0).all()
    (black,) = gradcam(BrightIsFake(), torch.zeros_like(image), None)
    assert toward_fake.logit < black.logit  # the block did push the verdict toward fake
    assert black.peak == 0
    # The network with the opposite sign finds bright things real, dark ones fake: the map turns inside out.
    (opposite,) = gradcam(BrightIsFake(sign=-1.0), image, None)
    assert (opposite.heat[inside] == 0).all()
    assert (opposite.heat[~inside] > 0).all()


def test_overlay_leaves_cold_pixels_alone_and_colours_hot_ones() -> None:
    heat = np.zeros((14, 14), dtype=np.float32)
    heat[0:7, 0:7] = 1.0  # the top-left quarter is hot
    out = overlay(PIXELS, heat, scale=4)
    assert out.shape == (112, 112, 3) and out.dtype == np.uint8
    gray = np.repeat(np.repeat(PIXELS, 4, axis=0), 4, axis=1)
    # Far from the hot quarter (bilinear spreading reaches a cell or so), the image is unchanged and gray.
    np.testing.assert_array_equal(out[80:, 80:], np.stack([gray[80:, 80:]] * 3, axis=-1))
    # Inside it, colour: the channels differ, unlike any gray pixel.
    hot = out[4:40, 4:40].astype(int)
    assert (np.abs(hot[..., 0] - hot[..., 2]) > 20).mean() > 0.9


# POST /explain -----------------------------------------------------------------------------------------


def read_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def test_explain_answers_an_overlay_with_the_classify_verdict(client) -> None:
    response = explain_call(client, png_bytes(PIXELS), label="8")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = read_png(response.content)
    assert image.mode == "RGB" and image.size == (224, 224)
    verdict = client.post(
        "/classify", files={"image": ("x.png", png_bytes(PIXELS), "image/png")}, data={"label": "8"}
    ).json()
    assert verdict == expected_verdict(expected_p_real(make_discriminator(), PIXELS, 8))
    assert response.headers["x-verdict"] == verdict["label"]
    assert float(response.headers["x-confidence"]) == verdict["confidence"]
    assert response.headers["x-model"] == "discriminator"
    assert response.headers["x-layer"] == "features.5"
    expected = by_hand(make_discriminator(), "features.5", PIXELS, 8)
    assert float(response.headers["x-heatmap-peak"]) == pytest.approx(expected.max(), rel=1e-4)


def test_explain_json_carries_the_map_and_the_same_png(client) -> None:
    png = explain_call(client, png_bytes(PIXELS), query="?scale=3", label="bag").content
    response = explain_call(client, png_bytes(PIXELS), query="?scale=3&format=json", label="bag")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"label", "confidence", "model", "layer", "peak", "heatmap", "image"}
    assert body["label"] == expected_verdict(expected_p_real(make_discriminator(), PIXELS, 8))["label"]
    expected = by_hand(make_discriminator(), "features.5", PIXELS, 8)
    np.testing.assert_allclose(np.array(body["heatmap"]), expected / expected.max(), atol=1e-4)
    assert body["peak"] == pytest.approx(expected.max(), rel=1e-4)
    assert base64.b64decode(body["image"]) == png  # deterministic: the same input, the same bytes
    assert read_png(png).size == (84, 84)


def test_explain_uses_the_detector_and_its_temperature(make_client, tmp_path) -> None:
    weights = write_weights(tmp_path, detector=make_detector(), detector_metrics={"temperature": 2.0})
    client = make_client(weights)
    for label in (None, 4):
        fields = {} if label is None else {"label": str(label)}
        body = explain_call(client, png_bytes(PIXELS), query="?format=json", **fields).json()
        assert body["model"] == "detector" and body["layer"] == "features.3"
        expected_answer = expected_verdict(expected_p_real(make_detector(), PIXELS, label, temperature=2.0))
        assert {k: body[k] for k in ("label", "confidence")} == expected_answer
        expected = by_hand(make_detector(), "features.3", PIXELS, label, temperature=2.0)
        assert body["peak"] == pytest.approx(expected.max(), rel=1e-4)
    # The discriminator stays available through the model field or the query parameter.
    assert explain_call(client, png_bytes(PIXELS), query="?model=discriminator", label="4").headers["x-model"] == (
        "discriminator"
    )


@pytest.mark.parametrize(
    ("data", "fields", "status"),
    [
        (b"hello, I am a text file\n", {"label": "8"}, 415),
        (b"", {"label": "8"}, 422),
        (png_bytes(PIXELS)[:60], {"label": "8"}, 422),
        (png_bytes(PIXELS), {}, 422),
        (png_bytes(PIXELS), {"label": "hat"}, 422),
        (png_bytes(PIXELS), {"label": "8", "model": "oracle"}, 422),
    ],
    ids=["text", "empty", "truncated", "no-label", "bad-label", "bad-model"],
)
def test_explain_refuses_what_classify_refuses_with_the_same_answer(client, data, fields, status) -> None:
    response = explain_call(client, data, **fields)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"]
    refused = client.post("/classify", files={"image": ("x.png", data, "application/octet-stream")}, data=fields)
    assert (refused.status_code, refused.json()) == (status, body)


@pytest.mark.parametrize(
    ("query", "words"),
    [("?scale=40", ["scale", "1 to 16"]), ("?scale=0", ["scale"]), ("?format=gif", ["format"])],
    ids=["scale-too-large", "scale-zero", "bad-format"],
)
def test_explain_options_are_checked(client, query: str, words: list[str]) -> None:
    response = explain_call(client, png_bytes(PIXELS), query=query, label="8")
    assert response.status_code == 422
    for word in words:
        assert word in response.json()["detail"]


def test_explain_form_and_size_problems(make_client) -> None:
    client = make_client(max_upload_bytes=64 * 1024)
    response = client.post("/explain", content=png_bytes(PIXELS), headers={"Content-Type": "image/png"})
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]
    response = explain_call(client, b"\0" * (100 * 1024), label="1")
    assert response.status_code == 413


def test_explaining_leaves_the_served_networks_alone(client) -> None:
    engine = client.app.state.engine
    served = engine.models.classifiers["discriminator"].module
    for _ in range(3):
        assert explain_call(client, png_bytes(PIXELS), label="2").status_code == 200
    # captum's hooks went on a private copy: nothing is registered on the network the batcher runs.
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in served.modules())
    assert not any(p.requires_grad for p in served.parameters())
    explainer = client.app.state.explainer
    assert explainer._replicas["discriminator"].qsize() <= explainer.concurrency


def test_explain_and_classify_run_side_by_side() -> None:
    """Concurrent explanations and batched classifications each get their own right answer."""

    async def main(weights: Path) -> None:
        app = create_app(settings_for(weights))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
                images = [sample_pixels(seed) for seed in range(6)]
                answers: dict[tuple[str, int], httpx.Response] = {}

                async def call(kind: str, i: int) -> None:
                    files = {"image": ("x.png", png_bytes(images[i]), "image/png")}
                    query = "?format=json" if kind == "explain" else ""
                    answers[kind, i] = await client.post(f"/{kind}{query}", files=files, data={"label": str(i)})

                async with anyio.create_task_group() as group:
                    for i in range(len(images)):
                        group.start_soon(call, "explain", i)
                        group.start_soon(call, "classify", i)
                for i, pixels in enumerate(images):
                    want = expected_verdict(expected_p_real(make_discriminator(), pixels, i))
                    assert answers["classify", i].json() == want
                    body = answers["explain", i].json()
                    assert {k: body[k] for k in ("label", "confidence")} == want
                    expected = by_hand(make_discriminator(), "features.5", pixels, i)
                    assert body["peak"] == pytest.approx(expected.max(), rel=1e-4)

    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        anyio.run(main, write_weights(Path(directory)), backend="asyncio")


def test_too_many_waiting_explanations_get_503() -> None:
    served = ServedModel("discriminator", make_discriminator(), Path("."), {})
    explainer = Explainer(object(), concurrency=1, queue_limit=1, retry_after_s=3)  # type: ignore[arg-type]
    gate = threading.Event()
    started = threading.Event()
    ran: list[int] = []

    def blocked(*args: object) -> str:
        started.set()
        gate.wait(10)
        ran.append(1)
        return "done"

    explainer._render = blocked  # type: ignore[method-assign]
    image = torch.from_numpy(PIXELS)

    async def main() -> None:
        results: list[object] = []

        async def call() -> None:
            results.append(await explainer.explain(served, image, 0, 8))

        async with anyio.create_task_group() as group:
            group.start_soon(call)  # runs
            group.start_soon(call)  # waits for the worker
            await anyio.to_thread.run_sync(started.wait, 10)
            await anyio.sleep(0.05)
            with pytest.raises(Overloaded) as caught:
                await explainer.explain(served, image, 0, 8)
            assert caught.value.headers == {"Retry-After": "3"}
            assert "retry" in caught.value.detail
            gate.set()
        assert results == ["done", "done"]

    anyio.run(main, backend="asyncio")
    assert len(ran) == 2


def test_an_unknown_architecture_is_refused_with_the_explainable_ones() -> None:
    with pytest.raises(NoLayer, match="Detector, DetectorEnsemble, Discriminator"):
        layers_of(nn.Linear(2, 2))


# The page's files -------------------------------------------------------------------------------------


def test_the_page_and_its_files_are_served(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    html = response.text
    for control in ('for="gen-class"', 'for="gen-seed"', 'for="gen-count"', 'for="upload"', 'for="check-model"'):
        assert control in html  # every control has a label
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere
    for path, kind in (
        ("/static/app.js", "javascript"),
        ("/static/style.css", "text/css"),
        ("/static/favicon.svg", "svg"),
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"]
    response = client.get("/static/missing.js")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert client.get("/static/../service/settings.py").status_code == 404
    assert client.post("/").status_code == 405
    assert client.head("/").status_code == 200


def test_the_page_opens_without_the_api_key_but_the_api_does_not(make_client) -> None:
    client = make_client(api_key="sesame")
    assert client.get("/").status_code == 200
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/labels").status_code == 401
    assert explain_call(client, png_bytes(PIXELS), label="1").status_code == 401
    response = client.post(
        "/explain",
        files={"image": ("x.png", png_bytes(PIXELS), "image/png")},
        data={"label": "1"},
        headers={"X-API-Key": "sesame"},
    )
    assert response.status_code == 200


def test_explain_is_in_the_openapi_schema(client) -> None:
    schema = client.get("/openapi.json").json()
    assert "post" in schema["paths"]["/explain"]
    assert "/" not in schema["paths"]


# The figure command -------------------------------------------------------------------------------------


def test_explain_command_writes_the_per_class_figure(tmp_path, capsys) -> None:
    from training.cli import main

    weights = write_weights(tmp_path / "weights")
    out = tmp_path / "figure" / "explain.png"
    args = ["explain", "--weights-dir", str(weights), "--out", str(out), "--per-class", "2", "--scale", "2"]
    assert main(args) == 0
    figure = read_png(out.read_bytes())
    assert figure.height > 600 and figure.width > 300  # 10 rows of 2 + 2 cells
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0].strip() for line in lines] == list(models.NAMES)
    assert main([*args[:-4], "--model", "detector"]) == 2  # no detector/ in this folder
    assert "cannot load" in capsys.readouterr().err


def test_explain_command_refuses_a_detector_whose_temperature_is_not_a_positive_number(tmp_path, capsys) -> None:
    from training.cli import main

    weights = write_weights(tmp_path / "weights", detector=make_detector(), detector_metrics={"temperature": "hot"})
    out = tmp_path / "explain.png"
    args = ["explain", "--weights-dir", str(weights), "--model", "detector", "--out", str(out), "--per-class", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "detector/config.json: metrics.temperature must be a positive number" in err
    assert not out.exists()
    write_weights(tmp_path / "weights", detector=make_detector(), detector_metrics={"temperature": 1.5})
    assert main(args) == 0 and out.exists()
