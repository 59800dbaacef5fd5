"""The reference classifier: the measuring instrument of every image-quality figure.

Standard FID embeds images with an ImageNet InceptionV3, whose weights cannot be
downloaded here and which was never trained on 28x28 grey clothing anyway. The
project trains this small Fashion-MNIST CNN instead, and measures in its space:
- FID and precision/recall use its penultimate features (``feature_dim`` wide,
  after the ReLU, like Inception's pool3 features);
- GAN-test uses its predictions; GAN-train trains fresh copies of it.

Input is the networks' convention, float -1..1 of shape (B, 1, 28, 28).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.checkpoint import register
from models.labels import NUM_CLASSES


@dataclass
class ClassifierConfig:
    num_classes: int = NUM_CLASSES
    channels: int = 32  # width at 28x28; 2x at 14x14, 4x at 7x7
    feature_dim: int = 128  # width of the penultimate layer: the feature space of FID and precision/recall
    dropout: float = 0.3  # before each fully connected layer, in training only


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    # No conv bias: the batch norm's shift replaces it.
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


@register
class Classifier(nn.Module):
    """C(x) -> (B, num_classes) logits; ``C(x, return_features=True)`` also gives the (B, feature_dim) features."""

    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        if config.num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {config.num_classes}")
        if not 0.0 <= config.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {config.dropout}")
        self.config = config
        c = config.channels
        self.body = nn.Sequential(
            *_conv_block(1, c),  # (B, C, 28, 28)
            nn.MaxPool2d(2),  # (B, C, 14, 14)
            *_conv_block(c, 2 * c),  # (B, 2C, 14, 14)
            nn.MaxPool2d(2),  # (B, 2C, 7, 7)
            *_conv_block(2 * c, 4 * c),  # (B, 4C, 7, 7)
            nn.Flatten(),  # (B, 4C * 49): keeps where things are, which tells a sandal from a sneaker
        )
        self.embed = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(4 * c * 7 * 7, config.feature_dim),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in -1..1 -> (B, feature_dim) penultimate features (non-negative, post-ReLU)."""
        return self.embed(self.body(x))

    def forward(
        self, x: torch.Tensor, *, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"expected images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
        h = self.features(x)  # (B, feature_dim)
        logits = self.head(h)  # (B, num_classes)
        return (logits, h) if return_features else logits
