"""`ddpm`: a small class-conditional diffusion model, trained as DDPM and sampled with DDIM.

The network is a small U-Net (28 -> 14 -> 7 and back, residual blocks with
group norm, skips added rather than concatenated: it must train and sample on two CPU cores) that predicts the noise added at step t, given t and the class.
Training drops the class to a learned "no class" token now and then, so the
exported model can also sample with classifier-free guidance (``guidance`` > 1:
two passes per step). Sampling is deterministic DDIM (eta 0) from the bank's
noise, over ``sample_steps`` of the ``timesteps`` training steps. The exported
network is an exponential moving average of the trained one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models import NUM_CLASSES, register
from training.zoo.common import Ema, Family, FamilyTrainer, ZooOptions

NAME = "ddpm"


@dataclass
class DiffusionUNetConfig:
    num_classes: int = NUM_CLASSES
    channels: int = 16  # width at 28x28; 2x at 14x14 and 7x7
    embed_dim: int = 128  # time and class embedding width
    groups: int = 8  # group norm groups
    timesteps: int = 1000  # T of the forward process
    schedule: str = "cosine"  # cosine (Nichol & Dhariwal) or linear (Ho et al.: 1e-4 .. 0.02)
    sample_steps: int = 25  # DDIM steps when sampling
    guidance: float = 1.0  # classifier-free guidance scale (1: the conditional model alone, one pass)
    class_dropout: float = 0.1  # training: share of labels replaced by the "no class" token


def alpha_bars(timesteps: int, schedule: str) -> torch.Tensor:
    """(T,) cumulative products of (1 - beta_t), float64, for t = 1..T."""
    if schedule == "linear":
        betas = torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64)
        return torch.cumprod(1 - betas, dim=0)
    if schedule == "cosine":
        s = 0.008
        t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)  # the clamp keeps the last steps finite
        return torch.cumprod(1 - betas, dim=0)
    raise ValueError(f"schedule must be cosine or linear, got {schedule!r}")


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) integer steps -> (B, dim) sinusoidal features."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([args.sin(), args.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, embed_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(embed_dim, c_out)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = h + self.emb(emb)[:, :, None, None]  # time + class, per channel
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


@register
class DiffusionUNet(nn.Module):
    """eps(x_t, t, y) -> (B, 1, 28, 28): the noise in x_t. y == num_classes is the "no class" token."""

    config_class = DiffusionUNetConfig

    def __init__(self, config: DiffusionUNetConfig) -> None:
        super().__init__()
        alpha_bars(2, config.schedule)  # checks the schedule's name
        if config.timesteps < 2 or not 1 <= config.sample_steps <= config.timesteps:
            raise ValueError(f"need 2 <= timesteps and 1 <= sample_steps <= timesteps, got {config}")
        self.config = config
        c, e, g = config.channels, config.embed_dim, config.groups
        self.time_mlp = nn.Sequential(nn.Linear(c, e), nn.SiLU(), nn.Linear(e, e))
        self.class_embed = nn.Embedding(config.num_classes + 1, e)
        self.inc = nn.Conv2d(1, c, 3, padding=1)  # (B, C, 28, 28)
        self.down1 = ResBlock(c, c, e, g)  # (B, C, 28, 28)
        self.pool1 = nn.Conv2d(c, c, 3, stride=2, padding=1)  # (B, C, 14, 14)
        self.down2 = ResBlock(c, 2 * c, e, g)  # (B, 2C, 14, 14)
        self.pool2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)  # (B, 2C, 7, 7)
        self.mid = ResBlock(2 * c, 2 * c, e, g)  # (B, 2C, 7, 7)
        self.up2 = ResBlock(2 * c, 2 * c, e, g)  # (B, 2C, 14, 14)
        self.reduce = nn.Conv2d(2 * c, c, 1)  # (B, C, 28, 28)
        self.up1 = ResBlock(c, c, e, g)  # (B, C, 28, 28)
        self.out = nn.Sequential(nn.GroupNorm(min(g, c), c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))
        self.register_buffer("alpha_bar", alpha_bars(config.timesteps, config.schedule).float(), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.channels)) + self.class_embed(y)  # (B, E)
        h0 = self.down1(self.inc(x), emb)  # (B, C, 28, 28)
        h1 = self.down2(self.pool1(h0), emb)  # (B, 2C, 14, 14)
        h = self.mid(self.pool2(h1), emb)  # (B, 2C, 7, 7)
        h = F.interpolate(h, scale_factor=2, mode="nearest")  # (B, 2C, 14, 14)
        h = self.up2(h + h1, emb)  # (B, 2C, 14, 14): skips are added, not concatenated, to save compute
        h = self.reduce(F.interpolate(h, scale_factor=2, mode="nearest"))  # (B, C, 28, 28)
        h = self.up1(h + h0, emb)  # (B, C, 28, 28)
        return self.out(h)

    @torch.no_grad()
    def ddim(self, noise: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Deterministic DDIM from (B, 1, 28, 28) standard normal noise to images in -1..1."""
        cfg = self.config
        ts = torch.linspace(cfg.timesteps - 1, 0, cfg.sample_steps).round().long().tolist()  # descending
        x = noise
        null = torch.full_like(y, cfg.num_classes)
        for i, t in enumerate(ts):
            a_t = self.alpha_bar[t]
            a_prev = self.alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.ones((), device=x.device)
            tt = torch.full_like(y, t)
            if cfg.guidance == 1.0:
                eps = self(x, tt, y)
            else:  # both passes in one batch
                eps_c, eps_u = self(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, null])).chunk(2)
                eps = eps_u + cfg.guidance * (eps_c - eps_u)
            x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
            eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()  # consistent with the clamped x0
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        return x.clamp(-1, 1)


class Trainer(FamilyTrainer):
    def __init__(self, opts: ZooOptions, device: torch.device, rng: torch.Generator) -> None:
        super().__init__(opts, device, rng)
        self.model = DiffusionUNet(DiffusionUNetConfig(**opts.arch)).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=opts.lr)
        self.ema = Ema(self.model, 0.999)

    def step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, B, dev = self.model.config, len(real), self.device
        self.model.train()

        # Noise the batch at random steps; drop some labels to the "no class" token.
        t = torch.randint(0, cfg.timesteps, (B,), generator=self.rng, device=dev)
        eps = torch.randn(real.shape, generator=self.rng, device=dev)
        a = self.model.alpha_bar[t][:, None, None, None]  # (B, 1, 1, 1)
        x_t = a.sqrt() * real + (1 - a).sqrt() * eps
        drop = torch.rand(B, generator=self.rng, device=dev) < cfg.class_dropout
        y = torch.where(drop, torch.full_like(labels, cfg.num_classes), labels)

        # Update the network on the epsilon loss; then its average.
        loss = F.mse_loss(self.model(x_t, t, y), eps)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.ema.update(self.model)
        return {"loss": loss.detach()}

    def export(self) -> nn.Module:
        return self.ema.model


def sample(model: nn.Module, labels: torch.Tensor, noise: torch.Tensor | None, reals: torch.Tensor | None):
    return model.ddim(noise.view(-1, 1, 28, 28), labels)


FAMILY = Family(
    name=NAME,
    summary="class-conditional diffusion: small U-Net, DDPM epsilon training (cosine, T=1000), DDIM sampling",
    model_class=DiffusionUNet,
    trainer=Trainer,
    sample=sample,
    noise_size=lambda model: 28 * 28,
    defaults={"steps": 6000, "minutes": 9.0, "batch_size": 32, "lr": 1e-3},
    sample_batch=250,
)
