"""Image-to-image translation (pix2pix, Isola et al. 2017): sketch in, garment out, both 28x28.

- ``Pix2PixGenerator``: a U-Net. Each encoder stage halves the size and its decoder twin doubles it
  back; the decoder also receives the encoder's feature map of the same size (skip connection), so
  the outline's position reaches the output without squeezing through the bottleneck.
- ``PatchDiscriminator``: judges (sketch, image) pairs patch by patch. It outputs a 7x7 map of logits,
  each seeing an 18x18 patch of the input pair (two 4x4 stride-2 convolutions and a 3x3 one), so
  it penalizes local texture and stroke placement rather than whole-image layout (the L1 term of the
  training loss takes care of that).

Sizes: 28 = 4 * 7, and 7 is odd, so two 4x4 stride-2 convolutions take 28 -> 14 -> 7, a 3x3 stride-2
convolution takes 7 -> 4 and a 4x4 valid convolution 4 -> 1 (the bottleneck). The decoder mirrors each
step with the transposed convolution of the same kernel, stride and padding, which gives exactly
1 -> 4 -> 7 -> 14 -> 28 without cropping or output padding.

Normalization is GroupNorm: it normalizes each image on its own, so an output never depends on what
it was batched with (the service batches requests; the convolutions are models.layers' batch-invariant
ones for the same reason), and training and inference behave alike (batch
norm's running statistics would differ from pix2pix's per-batch statistics). Pixels are -1..1 in
and out, as everywhere in the project (``models.pixels``): a sketch is light strokes (+1) on a dark
background (-1), like the garments themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.checkpoint import register
from models.layers import BatchInvariantConv2d, BatchInvariantConvTranspose2d

IMAGE_SIZE = 28


@dataclass
class Pix2PixGeneratorConfig:
    channels: int = 32  # width at 14x14; 2x at 7x7, 4x at 4x4 and 1x1
    dropout: float = 0.5  # on the two innermost decoder stages during training (pix2pix's noise source)


@dataclass
class PatchDiscriminatorConfig:
    channels: int = 32  # width at 14x14; 2x at 7x7


def _groups(channels: int) -> int:
    return 8 if channels % 8 == 0 else 1


def _down(c_in: int, c_out: int, kernel: int, stride: int, padding: int, norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [BatchInvariantConv2d(c_in, c_out, kernel, stride, padding, bias=not norm)]
    if norm:
        layers.append(nn.GroupNorm(_groups(c_out), c_out))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def _up(c_in: int, c_out: int, kernel: int, stride: int, padding: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        BatchInvariantConvTranspose2d(c_in, c_out, kernel, stride, padding, bias=False),
        nn.GroupNorm(_groups(c_out), c_out),
    ]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@register
class Pix2PixGenerator(nn.Module):
    """G(sketch) -> image: (B, 1, 28, 28) in -1..1 to (B, 1, 28, 28) in -1..1."""

    config_class = Pix2PixGeneratorConfig

    def __init__(self, config: Pix2PixGeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c, p = config.channels, config.dropout
        self.e1 = _down(1, c, 4, 2, 1, norm=False)  # (B, C, 14, 14)
        self.e2 = _down(c, 2 * c, 4, 2, 1)  # (B, 2C, 7, 7)
        self.e3 = _down(2 * c, 4 * c, 3, 2, 1)  # (B, 4C, 4, 4)
        self.e4 = nn.Sequential(BatchInvariantConv2d(4 * c, 4 * c, 4, 1, 0), nn.ReLU())  # (B, 4C, 1, 1) bottleneck
        self.d4 = _up(4 * c, 4 * c, 4, 1, 0, p)  # (B, 4C, 4, 4)
        self.d3 = _up(8 * c, 2 * c, 3, 2, 1, p)  # (B, 2C, 7, 7)
        self.d2 = _up(4 * c, c, 4, 2, 1, 0.0)  # (B, C, 14, 14)
        self.d1 = BatchInvariantConvTranspose2d(2 * c, 1, 4, 2, 1)  # (B, 1, 28, 28)

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        if sketch.dim() != 4 or sketch.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"expected sketches of shape (B, 1, 28, 28), got {tuple(sketch.shape)}")
        h1 = self.e1(sketch)
        h2 = self.e2(h1)
        h3 = self.e3(h2)
        h = self.d4(self.e4(h3))
        h = self.d3(torch.cat([h, h3], 1))
        h = self.d2(torch.cat([h, h2], 1))
        return torch.tanh(self.d1(torch.cat([h, h1], 1)))


@register
class PatchDiscriminator(nn.Module):
    """D(sketch, image) -> (B, 7, 7) logits, positive meaning "a real pair"."""

    config_class = PatchDiscriminatorConfig

    def __init__(self, config: PatchDiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.net = nn.Sequential(
            _down(2, c, 4, 2, 1, norm=False),  # (B, C, 14, 14)
            _down(c, 2 * c, 4, 2, 1),  # (B, 2C, 7, 7)
            BatchInvariantConv2d(2 * c, 1, 3, 1, 1),  # (B, 1, 7, 7)
        )

    def forward(self, sketch: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if sketch.shape != image.shape:
            raise ValueError(f"sketch {tuple(sketch.shape)} and image {tuple(image.shape)} must have one shape")
        return self.net(torch.cat([sketch, image], 1)).squeeze(1)
