"""The reference classifier's view of a set of uint8 images: penultimate features and logits.

Only uint8 images are accepted: every figure is measured on images as they are
stored or served, never on a generator's unquantized floats.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from models.classifier import Classifier
from models.pixels import to_float


@dataclass
class Embedding:
    """One forward pass of the reference classifier over a set of images."""

    features: torch.Tensor  # (N, feature_dim) float32, on the CPU
    logits: torch.Tensor  # (N, num_classes) float32, on the CPU

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def predictions(self) -> torch.Tensor:
        """(N,) int64 predicted classes."""
        return self.logits.argmax(dim=1)


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Put a module in eval mode for the block, then restore its mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def check_uint8_images(images: torch.Tensor, what: str = "images") -> None:
    if images.dtype != torch.uint8 or images.dim() != 3 or images.shape[1:] != (28, 28):
        raise TypeError(
            f"{what}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {tuple(images.shape)}"
            " (quantize generated images with models.quantize first)"
        )


@torch.no_grad()
def embed(
    classifier: Classifier,
    images: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1000,
) -> Embedding:
    """uint8 (N, 28, 28) -> the classifier's features and logits, in eval mode, batch by batch."""
    check_uint8_images(images)
    feats, logits = [], []
    with evaluating(classifier):
        for start in range(0, images.shape[0], batch_size):
            x = to_float(images[start : start + batch_size].to(device)).unsqueeze(1)  # (b, 1, 28, 28)
            out, h = classifier(x, return_features=True)  # (b, C), (b, feature_dim)
            logits.append(out.float().cpu())
            feats.append(h.float().cpu())
    if not feats:
        cfg = classifier.config
        return Embedding(torch.empty(0, cfg.feature_dim), torch.empty(0, cfg.num_classes))
    return Embedding(torch.cat(feats), torch.cat(logits))
