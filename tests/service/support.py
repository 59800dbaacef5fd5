"""Helpers for the service tests: tiny seeded checkpoints, test settings, images, and expected answers.

The networks are small (a few thousand weights) so that every test runs the
real loading, batching and inference code in milliseconds on the CPU, and the
expected answer of every request can be computed by calling the network directly.
"""

from __future__ import annotations

import dataclasses
import io
import re
import time
from pathlib import Path

import numpy as np
import torch
from fastapi.testclient import TestClient
from PIL import Image

import models
from service.settings import Settings


def make_generator(num_classes: int = models.NUM_CLASSES, seed: int = 0) -> models.Generator:
    """A tiny generator with fixed weights, class embeddings that differ, and non-trivial batch-norm statistics."""
    torch.manual_seed(seed)
    generator = models.Generator(models.GeneratorConfig(z_dim=8, channels=4, num_classes=num_classes))
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
            if isinstance(module, torch.nn.Embedding):  # freshly built, every class is the identity
                module.weight.add_(torch.randn_like(module.weight) * 0.5)
    return generator.eval()


def make_discriminator(num_classes: int = models.NUM_CLASSES, seed: int = 1) -> models.Discriminator:
    torch.manual_seed(seed)
    return models.Discriminator(models.DiscriminatorConfig(channels=4, num_classes=num_classes)).eval()


def make_detector(seed: int = 2) -> torch.nn.Module:
    """The project's Detector when models registers one (small), else a discriminator standing in for it."""
    torch.manual_seed(seed)
    cls = models.registered().get("Detector")
    if cls is None:
        return make_discriminator(seed=seed)
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    return cls(cls.config_class(**({"channels": 4} if "channels" in fields else {}))).eval()


def make_detector_ensemble(seed: int = 3) -> models.DetectorEnsemble:
    """Two tiny detectors of different widths judging together (the mean of their logits)."""
    torch.manual_seed(seed)
    members = [models.Detector(models.DetectorConfig(channels=c)) for c in (4, 6)]
    return models.DetectorEnsemble.of(members).eval()


def make_translator(seed: int = 4) -> models.Pix2PixGenerator:
    """A small sketch-to-clothing U-Net (8 channels at 14x14) with fixed weights and non-trivial GroupNorm affines."""
    torch.manual_seed(seed)
    translator = models.Pix2PixGenerator(models.Pix2PixGeneratorConfig(channels=8))
    with torch.no_grad():
        for module in translator.modules():
            if isinstance(module, torch.nn.GroupNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return translator.eval()


def write_weights(
    directory: Path,
    *,
    generator: torch.nn.Module | None = None,
    discriminator: torch.nn.Module | None = None,
    detector: torch.nn.Module | None = None,
    detector_metrics: dict | None = None,
    translator: torch.nn.Module | None = None,
) -> Path:
    """A weights directory in the service's layout (a translator, pix2pix/, only when given)."""
    models.save_model(generator or make_generator(), directory / "generator", training={"epochs": 0})
    models.save_model(discriminator or make_discriminator(), directory / "discriminator", metrics={"note": "test"})
    if detector is not None:
        models.save_model(detector, directory / "detector", metrics=detector_metrics or {})
    if translator is not None:
        models.save_model(translator, directory / "pix2pix", training={"epochs": 0})
    return directory


# The settings of a test server process (bench/local_service.py starts it): the CPU, one torch thread, quiet.
PROCESS_ENV = {"FGAN_DEVICE": "cpu", "FGAN_TORCH_THREADS": "1", "FGAN_ACCESS_LOG": "false"}


def settings_for(weights_dir: Path, **overrides: object) -> Settings:
    """Settings for a test app: CPU, quiet, the given weights; explicit values, never the environment's."""
    values: dict[str, object] = {
        "weights_dir": weights_dir,
        "device": "cpu",
        "torch_threads": 1,
        "access_log": False,
        "batch_timeout_ms": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


def wait_ready(client: TestClient, timeout_s: float = 10.0) -> None:
    """Wait for /readyz to say ready (the warm-up runs in the background)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"not ready within {timeout_s}s")


def png_bytes(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(pixels) if mode is None else Image.fromarray(pixels).convert(mode)
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_bytes(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def sample_pixels(seed: int = 0) -> np.ndarray:
    """A (28, 28) uint8 test image: a bright block on a dark noisy background."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 40, size=(28, 28)).astype(np.uint8)
    pixels[6:22, 8:20] = 200
    return pixels


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> (H, W) uint8, checking that it is 8-bit grayscale."""
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    assert image.mode == "L"
    return np.asarray(image)


def expected_images(
    generator: torch.nn.Module, seeds: list[int], label: int | None, truncation: float = 1.0
) -> np.ndarray:
    """What the service must answer, computed one image at a time (so batching cannot hide in it).

    ``truncation``: the latent scaled by psi, written out here (the prior's mean is 0), not models.truncate."""
    rows = []
    with torch.no_grad():
        for seed in seeds:
            z = models.noise([seed], generator.config.z_dim)
            if truncation != 1.0:
                z = truncation * z
            y = None if label is None else torch.tensor([label])
            rows.append(models.quantize(generator(z, y))[0, 0].numpy())
    return np.stack(rows)


def expected_garment(translator: torch.nn.Module, sketch: np.ndarray) -> np.ndarray:
    """What /translate must answer for a (28, 28) uint8 sketch, light strokes on dark (after any inversion).

    Computed as a batch of two copies: PyTorch's CPU convolution takes another path for a lone image, which the
    service avoids the same way (service/engine.py); tests/service/test_translate.py checks that batches agree."""
    with torch.no_grad():
        x = models.to_float(torch.from_numpy(sketch)).view(1, 1, 28, 28)
        return models.quantize(translator(torch.cat([x, x])))[0, 0].numpy()


def sketch_pixels(seed: int = 0, *, dark_on_light: bool = False) -> np.ndarray:
    """A (28, 28) uint8 sketch: the outline of a rectangle and a few random strokes, light on a dark background
    (or dark on light)."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((28, 28), dtype=np.uint8)
    top, left = rng.integers(3, 9, size=2)
    pixels[top, left:24] = pixels[24, left:24] = 255
    pixels[top:25, left] = pixels[top:25, 23] = 255
    for _ in range(3):
        row, col = rng.integers(4, 24, size=2)
        pixels[row, col : col + 6] = rng.integers(150, 256)
    return 255 - pixels if dark_on_light else pixels


def expected_p_real(model: torch.nn.Module, pixels: np.ndarray, label: int | None, temperature: float = 1.0) -> float:
    with torch.no_grad():
        x = models.to_float(torch.from_numpy(pixels)).view(1, 1, 28, 28)
        y = None if label is None else torch.tensor([label])
        return torch.sigmoid(model(x, y).double() / temperature).item()


def expected_verdict(p_real: float) -> dict:
    if p_real > 0.5:  # a probability of exactly 0.5 (a logit of 0) says "fake", as in the metrics
        return {"label": "real", "confidence": round(p_real, 4)}
    return {"label": "fake", "confidence": round(1 - p_real, 4)}


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from the Prometheus text format (0 when absent); labels in any order."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            if found == labels:
                return float(match.group(3))
    return 0.0
