"""`cvae`: a conditional variational autoencoder; its fakes decode prior noise for a chosen class.

Encoder q(z | x, y) and decoder p(x | z, y) are small CNNs; the class enters both
as a learned embedding. The likelihood is Bernoulli on pixel intensities in 0..1
(the usual choice for Fashion-MNIST) or Gaussian with a fixed scale. A sample is
the decoder's mean for z ~ N(0, I): smooth, as VAE images are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models import NUM_CLASSES, register
from training.zoo.common import Family, FamilyTrainer, ZooOptions

NAME = "cvae"


@dataclass
class CVAEConfig:
    z_dim: int = 16
    num_classes: int = NUM_CLASSES
    channels: int = 32  # width at 14x14; 2x at 7x7
    hidden: int = 256  # width of the fully connected layer on each side
    likelihood: str = "bernoulli"  # bernoulli or gaussian
    sigma: float = 0.1  # the Gaussian likelihood's scale on 0..1 intensities


@register
class CVAE(nn.Module):
    """encode(x, y) -> (mu, logvar), each (B, z_dim); decode(z, y) -> (B, 1, 28, 28) mean image in -1..1."""

    config_class = CVAEConfig

    def __init__(self, config: CVAEConfig) -> None:
        super().__init__()
        if config.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be bernoulli or gaussian, got {config.likelihood!r}")
        self.config = config
        c, h, e = config.channels, config.hidden, 16
        self.embed = nn.Embedding(config.num_classes, e)
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1),  # (B, C, 14, 14)
            nn.ReLU(inplace=True),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),  # (B, 2C, 7, 7)
            nn.ReLU(inplace=True),
            nn.Flatten(),  # (B, 2C * 49)
        )
        self.enc_fc = nn.Sequential(nn.Linear(2 * c * 49 + e, h), nn.ReLU(inplace=True), nn.Linear(h, 2 * config.z_dim))
        self.dec_fc = nn.Sequential(
            nn.Linear(config.z_dim + e, h), nn.ReLU(inplace=True), nn.Linear(h, 2 * c * 49), nn.ReLU(inplace=True)
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),  # (B, C, 14, 14)
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28): logits (Bernoulli) or means
        )

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([self.encoder(x), self.embed(y)], dim=1)  # (B, 2C*49 + E)
        mu, logvar = self.enc_fc(h).chunk(2, dim=1)  # (B, z_dim) each
        return mu, logvar

    def decode_raw(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) Bernoulli logits, or Gaussian means on 0..1."""
        h = self.dec_fc(torch.cat([z, self.embed(y)], dim=1))  # (B, 2C*49)
        return self.decoder(h.view(len(z), 2 * self.config.channels, 7, 7))

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raw = self.decode_raw(z, y)
        mean = torch.sigmoid(raw) if self.config.likelihood == "bernoulli" else raw.clamp(0, 1)  # 0..1
        return mean * 2 - 1

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.decode(z, y)


class Trainer(FamilyTrainer):
    def __init__(self, opts: ZooOptions, device: torch.device, rng: torch.Generator) -> None:
        super().__init__(opts, device, rng)
        self.model = CVAE(CVAEConfig(**opts.arch)).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=opts.lr)

    def step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        self.model.train()
        target = (real + 1) / 2  # (B, 1, 28, 28) intensities 0..1

        # Encode, draw z by the reparameterisation, decode.
        mu, logvar = self.model.encode(real, labels)
        eps = torch.randn(mu.shape, generator=self.rng, device=self.device)
        z = mu + eps * (0.5 * logvar).exp()
        raw = self.model.decode_raw(z, labels)

        # Negative ELBO per image, in nats.
        if self.model.config.likelihood == "bernoulli":
            recon = F.binary_cross_entropy_with_logits(raw, target, reduction="sum") / len(real)
        else:
            recon = 0.5 * ((raw - target) ** 2).sum() / (self.model.config.sigma**2 * len(real))
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum() / len(real)
        loss = recon + kl
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}


def sample(model: nn.Module, labels: torch.Tensor, noise: torch.Tensor | None, reals: torch.Tensor | None):
    return model.decode(noise, labels)


FAMILY = Family(
    name=NAME,
    summary="conditional VAE (conv encoder/decoder, Bernoulli likelihood); samples decode prior noise",
    model_class=CVAE,
    trainer=Trainer,
    sample=sample,
    noise_size=lambda model: model.config.z_dim,
    defaults={"steps": 3000, "minutes": 9.0, "batch_size": 128, "lr": 1e-3},
)
