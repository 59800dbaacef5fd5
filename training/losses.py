"""GAN losses on discriminator logits (positive = real)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("hinge", "bce")


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """Discriminator loss: push real logits up and fake logits down."""
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if kind == "bce":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    raise ValueError(f"unknown loss {kind!r}; expected one of {LOSSES}")


def g_loss(fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """Generator loss: make fakes look real (non-saturating form for BCE)."""
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "bce":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"unknown loss {kind!r}; expected one of {LOSSES}")
