"""The generator's input: one latent vector per seed, the same on every device and in every batch."""

from __future__ import annotations

import torch


def noise(seeds: list[int] | torch.Tensor, z_dim: int) -> torch.Tensor:
    """One latent vector per seed, drawn on the CPU so that a seed means the same on every device.

    Returns (B, z_dim) float32. Each row depends on its own seed only, so an
    image does not change with the batch it is generated in.
    """
    rows = []
    gen = torch.Generator(device="cpu")
    for seed in seeds.tolist() if isinstance(seeds, torch.Tensor) else seeds:
        gen.manual_seed(int(seed))
        rows.append(torch.randn(z_dim, generator=gen))
    return torch.stack(rows) if rows else torch.empty(0, z_dim)
