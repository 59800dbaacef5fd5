"""Batching does not change answers: every row a network computes is the same alone or in any batch.

The service batches concurrent requests and promises byte-identical images for a seed and label, and
a verdict that does not depend on who else was asking. These tests hold the shipped networks to that
exactly (not within a tolerance), for batch sizes around the kernels' block sizes, on inputs like the
ones the service sees; and they pin down the layer that makes it so (models.layers).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models import WEIGHTS_DIR, load_model, noise, quantize, to_float
from models.layers import BatchInvariantConv2d, BatchInvariantLinear

BATCH_SIZES = [2, 3, 5, 7, 8, 9, 16, 17, 31, 32, 40]
ROWS = 120


def rows_in_batches(fn, n: int, size: int) -> torch.Tensor:
    return torch.cat([fn(slice(start, min(start + size, n))) for start in range(0, n, size)])


@pytest.fixture(scope="module")
def generator():
    return load_model(WEIGHTS_DIR / "generator").eval()


@pytest.fixture(scope="module")
def images(generator) -> torch.Tensor:
    """Served-like inputs: half generated, half uniform noise, as floats in -1..1."""
    with torch.inference_mode():
        fake = quantize(generator(noise(range(ROWS // 2), generator.z_dim), torch.arange(ROWS // 2) % 10))
    rng = torch.Generator().manual_seed(0)
    other = (torch.rand(ROWS // 2, 1, 28, 28, generator=rng) * 255).round().to(torch.uint8)
    return to_float(torch.cat([fake, other]))


def test_generated_images_do_not_depend_on_their_batch(generator, one_thread):
    # One intra-op thread: with several, PyTorch's CPU transposed convolution splits a batch over
    # threads and calls BLAS inside that parallel region, which can sum a batch of 3 (of the sizes
    # here) differently from an image alone (docs/service.md, "Same answers, batched or not").
    z, y = noise(range(ROWS), generator.z_dim), torch.arange(ROWS) % 10
    with torch.inference_mode():
        alone = torch.cat([generator(z[i : i + 1], y[i : i + 1]) for i in range(ROWS)])
        for size in BATCH_SIZES:
            batched = rows_in_batches(lambda s: generator(z[s], y[s]), ROWS, size)
            assert torch.equal(batched, alone), f"batch size {size}"


@pytest.mark.parametrize(("name", "labelled"), [("detector", True), ("detector", False), ("discriminator", True)])
def test_logits_do_not_depend_on_their_batch(name, labelled, images):
    model = load_model(WEIGHTS_DIR / name).eval()
    labels = torch.arange(ROWS) % 10 if labelled else None

    def run(s: slice) -> torch.Tensor:
        return model(images[s], None if labels is None else labels[s])

    with torch.inference_mode():
        alone = torch.cat([run(slice(i, i + 1)) for i in range(ROWS)])
        for size in BATCH_SIZES:
            assert torch.equal(rows_in_batches(run, ROWS, size), alone), f"batch size {size}"


def test_batch_invariant_linear_trains_and_loads_like_nn_linear():
    torch.manual_seed(0)
    plain, layer = nn.Linear(16, 4), BatchInvariantLinear(16, 4)
    layer.load_state_dict(plain.state_dict())
    assert layer.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(8, 16, requires_grad=True)
    layer.train()
    layer(x).sum().backward()
    assert torch.allclose(x.grad, plain.weight.sum(0).expand(8, 16))
    layer.eval()
    assert torch.allclose(layer(x), plain(x), atol=1e-6)


def test_batch_invariant_linear_sees_in_place_weight_updates():
    layer = BatchInvariantLinear(3, 2).eval()
    x = torch.ones(1, 3)
    before = layer(x)
    with torch.no_grad():
        layer.weight.add_(1.0)  # what an optimizer step or load_state_dict does
    assert torch.allclose(layer(x), before + 3.0)
    with torch.no_grad():
        layer.bias.sub_(1.0)
    assert torch.allclose(layer(x), before + 2.0)


def test_a_lone_image_takes_the_batched_convolution_path():
    torch.manual_seed(0)
    stack = nn.Sequential(
        nn.Sequential(BatchInvariantConv2d(1, 8, 3, padding=1), nn.LeakyReLU(0.1)),
        BatchInvariantConv2d(8, 16, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(16),
    ).eval()
    x = torch.randn(6, 1, 28, 28)
    with torch.inference_mode():
        batched = stack(x)
        alone = torch.cat([stack(x[i : i + 1]) for i in range(6)])
    assert torch.equal(alone, batched)


def test_lone_images_run_as_given_when_training_or_differentiating(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "mkldnn_convolution", lambda *args: calls.append("onednn"))
    conv, x = BatchInvariantConv2d(1, 1, 3, padding=1), torch.ones(1, 1, 28, 28)
    assert conv.eval()(x.clone().requires_grad_()).shape == (1, 1, 28, 28)  # autograd: as given
    with torch.inference_mode():
        assert conv.train()(x).shape == (1, 1, 28, 28)
    assert calls == []
