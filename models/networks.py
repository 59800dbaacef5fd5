"""The GAN's networks: a conditional (or unconditional) generator and discriminator.

How the label enters:
- Generator: class-conditional batch norm (a per-class gain and bias after every
  normalization, as in SNGAN/BigGAN). The label modulates every layer instead of
  only the input, which is what keeps Shirt, T-shirt/top and Pullover apart.
- Discriminator: the projection discriminator of Miyato & Koyama (2018): the
  logit is psi(h) + <embed(y), h> for the pooled features h. It trains more
  stably than feeding the label as an extra input channel (one original project's
  way), because the label acts on the final features rather than on pixels, and
  it pairs with spectral normalization on every layer.
With ``num_classes = 0`` both become the unconditional DCGAN-style pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from models.checkpoint import register
from models.labels import NUM_CLASSES
from models.layers import BatchInvariantConv2d, BatchInvariantLinear, TapSumConv2d

IMAGE_SIZE = 28


@dataclass
class GeneratorConfig:
    z_dim: int = 128  # latent size
    num_classes: int = NUM_CLASSES  # 0: unconditional
    channels: int = 32  # width at 28x28; 2x at 14x14, 4x at 7x7


@dataclass
class DiscriminatorConfig:
    num_classes: int = NUM_CLASSES  # 0: unconditional
    channels: int = 32  # width at 28x28; 2x at 14x14, 4x at 7x7
    aux_classifier: bool = False  # also a class head for an AC-GAN-style loss (training only; see Discriminator)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose affine gain and bias are looked up per class (plain affine when unconditional)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(channels, affine=num_classes == 0)
        if num_classes:
            self.embed = nn.Embedding(num_classes, 2 * channels)
            nn.init.ones_(self.embed.weight[:, :channels])
            nn.init.zeros_(self.embed.weight[:, channels:])

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if not self.num_classes:
            return self.bn(x)
        gain, bias = self.embed(y).chunk(2, dim=1)  # (B, C) each
        if self.training or self.bn.running_var is None:
            h = self.bn(x)
            return h * gain[:, :, None, None] + bias[:, :, None, None]
        # Eval: fold the running statistics into the per-class gain and bias, so that the
        # normalization and the affine step are one multiply-add over the feature map.
        scale = gain * torch.rsqrt(self.bn.running_var + self.bn.eps)  # (B, C)
        shift = bias - self.bn.running_mean * scale
        return torch.addcmul(shift[:, :, None, None], x, scale[:, :, None, None])


def _check_labels(y: torch.Tensor | None, num_classes: int, batch: int) -> None:
    if num_classes and (y is None or y.shape != (batch,)):
        raise ValueError(f"a conditional network needs one label per image, shape ({batch},)")


@register
class Generator(nn.Module):
    """G(z, y) -> (B, 1, 28, 28) in -1..1."""

    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c, k = config.channels, config.num_classes
        # Batch-invariant in eval mode: a served image must not depend on what it was batched with.
        self.fc = BatchInvariantLinear(config.z_dim, 4 * c * 7 * 7)
        self.bn0 = ConditionalBatchNorm2d(4 * c, k)
        # Transposed 4x4 stride-2 convolutions: the same upsampling as nearest+3x3 conv at 4/9 the cost.
        self.up1 = nn.ConvTranspose2d(4 * c, 2 * c, 4, stride=2, padding=1, bias=False)
        self.bn1 = ConditionalBatchNorm2d(2 * c, k)
        self.up2 = nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False)
        self.bn2 = ConditionalBatchNorm2d(c, k)
        self.out = TapSumConv2d(c, 1, 3, padding=1)  # 3x faster than nn.Conv2d in inference (models.layers)

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        _check_labels(y, self.config.num_classes, z.shape[0])
        c = self.config.channels
        h = self.fc(z).view(-1, 4 * c, 7, 7)  # (B, 4C, 7, 7)
        h = torch.relu(self.bn0(h, y))
        h = torch.relu(self.bn1(self.up1(h), y))  # (B, 2C, 14, 14)
        h = torch.relu(self.bn2(self.up2(h), y))  # (B, C, 28, 28)
        return torch.tanh(self.out(h))  # (B, 1, 28, 28)


@register
class Discriminator(nn.Module):
    """D(x, y) -> (B,) logit; positive means "real". Spectral norm on every weight."""

    config_class = DiscriminatorConfig

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        # Batch-invariant convolutions and linear layer: a verdict must not depend on its batch (models.layers).
        self.features = nn.Sequential(
            spectral_norm(BatchInvariantConv2d(1, c, 3, padding=1)),  # (B, C, 28, 28)
            nn.LeakyReLU(0.1),
            spectral_norm(BatchInvariantConv2d(c, 2 * c, 4, stride=2, padding=1)),  # (B, 2C, 14, 14)
            nn.LeakyReLU(0.1),
            spectral_norm(BatchInvariantConv2d(2 * c, 2 * c, 3, padding=1)),
            nn.LeakyReLU(0.1),
            spectral_norm(BatchInvariantConv2d(2 * c, 4 * c, 4, stride=2, padding=1)),  # (B, 4C, 7, 7)
            nn.LeakyReLU(0.1),
            spectral_norm(BatchInvariantConv2d(4 * c, 4 * c, 3, padding=1)),
            nn.LeakyReLU(0.1),
        )
        self.linear = spectral_norm(BatchInvariantLinear(4 * c, 1))
        if config.num_classes:
            self.embed = spectral_norm(nn.Embedding(config.num_classes, 4 * c))
        # Optional auxiliary class head (AC-GAN, Odena et al. 2017) beside the projection. The
        # projection only asks whether image and label agree, which a young generator satisfies with
        # blurred look-alikes of the upper-body classes (T-shirt, Pullover, Coat, Shirt); a cross-entropy
        # on this head (D learns it on real images only, G is scored on its fakes) gives G a direct
        # push toward class-distinct images. Trained with a small weight, as a strong one trades
        # diversity for easy-to-classify samples. Real/fake logits never use it.
        if config.aux_classifier:
            if not config.num_classes:
                raise ValueError("an auxiliary class head needs a conditional discriminator")
            self.aux = spectral_norm(nn.Linear(4 * c, config.num_classes))

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._logit(self._pooled(x, y), y)

    def forward_with_classes(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(real/fake logit (B,), class logits (B, num_classes)) from one pass; needs aux_classifier."""
        if not self.config.aux_classifier:
            raise ValueError("this discriminator has no auxiliary class head")
        h = self._pooled(x, y)
        return self._logit(h, y), self.aux(h)

    def _pooled(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        _check_labels(y, self.config.num_classes, x.shape[0])
        return self.features(x).sum(dim=(2, 3))  # (B, 4C): global sum pooling

    def _logit(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        logit = self.linear(h).squeeze(1)  # (B,)
        if self.config.num_classes:
            logit = logit + (self.embed(y) * h).sum(dim=1)  # projection term
        return logit
