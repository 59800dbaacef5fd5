"""`upsample-gan`: a class-conditional GAN whose generator upsamples by interpolation + 3x3 convolution.

No transposed convolutions anywhere (the project's own generator is built from
them, and their checkerboard is one artifact a detector may learn): the
generator doubles the resolution by nearest or bilinear interpolation, then
convolves. The discriminator is a plain spectrally normalised CNN with
projection conditioning and a minibatch-spread channel, trained with the hinge loss. The exported generator is
an exponential moving average of the trained one, with batch-norm statistics
recomputed for its own weights ("standing statistics").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from models import NUM_CLASSES, register
from training.zoo.common import Ema, Family, FamilyTrainer, ZooOptions

NAME = "upsample-gan"


@dataclass
class UpsampleGeneratorConfig:
    z_dim: int = 64
    num_classes: int = NUM_CLASSES
    channels: int = 32  # width at 14x14; 2x at 7x7, 1/2 at 28x28
    upsample: str = "nearest"  # nearest or bilinear


@register
class UpsampleGenerator(nn.Module):
    """G(z, y) -> (B, 1, 28, 28) in -1..1: a 7x7 seed grown by two (interpolate, conv 3x3) stages."""

    config_class = UpsampleGeneratorConfig

    def __init__(self, config: UpsampleGeneratorConfig) -> None:
        super().__init__()
        if config.upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be nearest or bilinear, got {config.upsample!r}")
        self.config = config
        c = config.channels
        self.embed = nn.Embedding(config.num_classes, config.z_dim)
        self.fc = nn.Sequential(nn.Linear(2 * config.z_dim, 2 * c * 7 * 7, bias=False), nn.BatchNorm1d(2 * c * 7 * 7))
        self.up1 = self._stage(2 * c, c)  # (B, C, 14, 14)
        self.up2 = self._stage(c, c // 2)  # (B, C/2, 28, 28)
        self.out = nn.Conv2d(c // 2, 1, 3, padding=1)

    def _stage(self, c_in: int, c_out: int) -> nn.Sequential:
        mode = self.config.upsample
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode=mode, **({} if mode == "nearest" else {"align_corners": False})),
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, self.embed(y)], dim=1)  # (B, 2 z_dim)
        h = F.relu(self.fc(h)).view(len(z), 2 * self.config.channels, 7, 7)  # (B, 2C, 7, 7)
        return torch.tanh(self.out(self.up2(self.up1(h))))  # (B, 1, 28, 28)


class ProjectionDiscriminator(nn.Module):
    """D(x, y) -> (B,) logits: a plain strided CNN, plus the projection of its features onto y's embedding."""

    def __init__(self, channels: int = 32, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            spectral_norm(nn.Conv2d(1, c // 2, 3, padding=1)),  # (B, C/2, 28, 28)
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(c // 2, c, 4, stride=2, padding=1)),  # (B, C, 14, 14)
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(c, 2 * c, 4, stride=2, padding=1)),  # (B, 2C, 7, 7)
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Sequential(
            spectral_norm(nn.Conv2d(2 * c + 1, 2 * c, 3, padding=1)),  # (B, 2C, 7, 7), after the batch-std channel
            nn.LeakyReLU(0.2),
            nn.Flatten(),  # (B, 2C * 49)
        )
        features = 2 * c * 49
        self.linear = spectral_norm(nn.Linear(features, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, features))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.body(x)  # (B, 2C, 7, 7)
        # The batch's spread as one more channel: a generator that ignores its noise is easy to tell (ProGAN).
        spread = h.std(dim=0).mean().expand(len(h), 1, 7, 7)  # (B, 1, 7, 7)
        h = self.head(torch.cat([h, spread], dim=1))  # (B, F)
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)  # (B,)


@torch.no_grad()
def refresh_bn_stats(generator: UpsampleGenerator, rng: torch.Generator, *, batches: int = 8, size: int = 256) -> None:
    """Recompute the batch-norm statistics for the generator's own weights from fresh noise and labels."""
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    device = next(generator.parameters()).device
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batches below
    generator.train()
    for _ in range(batches):
        z = torch.randn(size, generator.config.z_dim, generator=rng, device=device)
        y = torch.randint(0, generator.config.num_classes, (size,), generator=rng, device=device)
        generator(z, y)
    for m in norms:
        m.momentum = 0.1
    generator.eval()


class Trainer(FamilyTrainer):
    def __init__(self, opts: ZooOptions, device: torch.device, rng: torch.Generator) -> None:
        super().__init__(opts, device, rng)
        self.model = UpsampleGenerator(UpsampleGeneratorConfig(**opts.arch)).to(device)
        self.D = ProjectionDiscriminator(self.model.config.channels).to(device)
        # Two time-scale updates (D at twice G's rate), Adam as in SNGAN: D keeps up with G in one step.
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=opts.lr, betas=(0.0, 0.9))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2 * opts.lr, betas=(0.0, 0.9))
        self.ema = Ema(self.model, 0.999)

    def step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        B, z_dim = len(real), self.model.config.z_dim
        self.model.train()

        # Update D (hinge loss).
        z = torch.randn(B, z_dim, generator=self.rng, device=self.device)
        y = torch.randint(0, NUM_CLASSES, (B,), generator=self.rng, device=self.device)
        with torch.no_grad():
            fake = self.model(z, y)
        real_logits, fake_logits = self.D(real, labels), self.D(fake, y)
        loss_d = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # Update G.
        z = torch.randn(B, z_dim, generator=self.rng, device=self.device)
        y = torch.randint(0, NUM_CLASSES, (B,), generator=self.rng, device=self.device)
        loss_g = -self.D(self.model(z, y), y).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()

        # Update G_ema.
        self.ema.update(self.model)
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": real_logits.mean().detach(),
            "d_fake": fake_logits.mean().detach(),
        }

    def export(self) -> nn.Module:
        refresh_bn_stats(self.ema.model, torch.Generator(device=self.device).manual_seed(self.opts.seed))
        return self.ema.model


def sample(model: nn.Module, labels: torch.Tensor, noise: torch.Tensor | None, reals: torch.Tensor | None):
    return model(noise, labels)


FAMILY = Family(
    name=NAME,
    summary="class-conditional GAN, nearest-neighbour upsampling + 3x3 conv generator, hinge loss, projection D",
    model_class=UpsampleGenerator,
    trainer=Trainer,
    sample=sample,
    noise_size=lambda model: model.config.z_dim,
    defaults={"steps": 4000, "minutes": 9.0, "batch_size": 32, "lr": 2e-4},
)
