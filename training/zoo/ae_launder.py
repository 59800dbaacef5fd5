"""`ae-launder`: real images "laundered" through a deterministic convolutional autoencoder.

Its fakes are not drawn from noise: each is a real image (of the split the bank
is for) encoded to a small 7x7 code and decoded again. The result keeps the
image's content and label but carries the decoder's own texture, which a
detector should learn to call fake without leaning on content.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models import register
from training.zoo.common import Family, FamilyTrainer, ZooOptions

NAME = "ae-launder"


@dataclass
class LaunderAutoencoderConfig:
    channels: int = 16  # width at 14x14; 2x at 7x7
    code_channels: int = 4  # the bottleneck is (code_channels, 7, 7): 196 numbers for 784 pixels


@register
class LaunderAutoencoder(nn.Module):
    """AE(x) -> (B, 1, 28, 28) in -1..1: the reconstruction of (B, 1, 28, 28) x in -1..1."""

    config_class = LaunderAutoencoderConfig

    def __init__(self, config: LaunderAutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        c, k = config.channels, config.code_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1),  # (B, C, 14, 14)
            nn.ReLU(inplace=True),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),  # (B, 2C, 7, 7)
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * c, k, 3, padding=1),  # (B, K, 7, 7): the code
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(k, 2 * c, 3, padding=1),  # (B, 2C, 7, 7)
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),  # (B, C, 14, 14)
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c, c, 4, stride=2, padding=1),  # (B, C, 28, 28)
            nn.ReLU(inplace=True),
            nn.Conv2d(c, 1, 3, padding=1),  # (B, 1, 28, 28)
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class Trainer(FamilyTrainer):
    def __init__(self, opts: ZooOptions, device: torch.device, rng: torch.Generator) -> None:
        super().__init__(opts, device, rng)
        self.model = LaunderAutoencoder(LaunderAutoencoderConfig(**opts.arch)).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=opts.lr)

    def step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        self.model.train()
        recon = self.model(real)
        loss = F.mse_loss(recon, real)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        # PSNR on the -1..1 range (peak-to-peak 2): how close the laundering stays to the input.
        return {"loss": loss.detach(), "psnr_db": 10 * torch.log10(4 / loss.detach())}


def sample(model: nn.Module, labels: torch.Tensor, noise: torch.Tensor | None, reals: torch.Tensor | None):
    return model(reals)


FAMILY = Family(
    name=NAME,
    summary="real images passed through a convolutional autoencoder with a 7x7x4 bottleneck",
    model_class=LaunderAutoencoder,
    trainer=Trainer,
    sample=sample,
    noise_size=lambda model: 0,
    defaults={"steps": 2000, "minutes": 9.0, "batch_size": 128, "lr": 1e-3},
    uses_reals=True,
)
