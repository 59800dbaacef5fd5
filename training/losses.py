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


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): the mean over the batch of |grad_x D(x)|^2 on real images.

    ``real`` must require grad and ``real_logits`` be computed from it. Zero-centred: it pulls D's gradient
    on the data toward zero, so D stops pushing G away from the real images it already matches, which
    is what lets a GAN converge instead of circling. The loop adds gamma / 2 times this to D's loss.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(dim=1).mean()


def mode_seeking(fake_a: torch.Tensor, fake_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """Mode-seeking term (MSGAN, Mao et al. 2019) for pairs of fakes of one label from two latents.

    The ratio of the images' mean absolute distance to the latents' is small when G maps different
    latents to the same image (mode collapse); G minimizes its inverse, averaged over the pairs.
    """
    images = (fake_a - fake_b).abs().flatten(1).mean(dim=1)
    latents = (z_a - z_b).abs().flatten(1).mean(dim=1)
    return (1.0 / (images / latents + 1e-5)).mean()
