"""The generator's input: one latent vector per seed, the same on every device and in every batch.

The prior is the standard normal N(0, I) (``training.loop`` draws ``torch.randn``), so its mean, the
point that truncation pulls latents toward, is the zero vector.
"""

from __future__ import annotations

import math

import torch

# The accepted truncation psi: 0 < psi <= 1. 1 samples as trained; smaller trades variety for fidelity.
TRUNCATION_RANGE = "a number greater than 0 and at most 1 (0 < psi <= 1; 1 = sample as trained)"


def noise(seeds: list[int] | torch.Tensor, z_dim: int, truncation: float = 1.0) -> torch.Tensor:
    """One latent vector per seed, drawn on the CPU so that a seed means the same on every device.

    Returns (B, z_dim) float32. Each row depends on its own seed (and ``truncation``) only, so an
    image does not change with the batch it is generated in. ``truncation`` < 1 pulls each row
    toward the prior's mean (``truncate``).
    """
    rows = []
    gen = torch.Generator(device="cpu")
    for seed in seeds.tolist() if isinstance(seeds, torch.Tensor) else seeds:
        gen.manual_seed(int(seed))
        rows.append(torch.randn(z_dim, generator=gen))
    z = torch.stack(rows) if rows else torch.empty(0, z_dim)
    return truncate(z, truncation)


def check_truncation(psi: float) -> float:
    """``psi`` as a float when 0 < psi <= 1, else a ValueError that names the accepted range."""
    try:
        value = float(psi)
    except (TypeError, ValueError):
        raise ValueError(f"truncation must be {TRUNCATION_RANGE}; got {psi!r}") from None
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"truncation must be {TRUNCATION_RANGE}; got {psi!r}")
    return value


def prior_mean(z_dim: int) -> torch.Tensor:
    """(z_dim,) float32: the mean latent of the generator's prior N(0, I), the zero vector."""
    return torch.zeros(z_dim)


def truncate(z: torch.Tensor, psi: float) -> torch.Tensor:
    """The truncation trick: (B, z_dim) latents pulled toward the prior's mean, mean + psi * (z - mean).

    psi = 1 returns ``z`` itself, unchanged to the bit (what the generator was trained on); psi < 1
    moves every latent straight toward the mean, its distance to it shrinking by the factor psi:
    cleaner, more typical images, less variety. The one implementation of it: the service and
    ``evaluate`` both sample through here.
    """
    psi = check_truncation(psi)
    if psi == 1.0:
        return z
    mean = prior_mean(z.shape[-1]).to(device=z.device, dtype=z.dtype)
    return mean + psi * (z - mean)
